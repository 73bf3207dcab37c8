"""Code-health figures of the project (docs/development.md, "Code health"):

    python tools/structure_report.py [ROOT]

prints the modules over 600 lines (migrations and generated stubs aside), the ten longest
functions, imports of another project package made inside a function, and `except ImportError`
handlers around imports of the project's own packages. CI runs the checks that matter
(import-linter, ruff); this report gives the figures a review or a closing note quotes."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGES = ("accounts", "instances", "contacts", "messaging", "monitoring", "wework", "bridge", "simulator")
MAX_LINES = 600
SKIP_PARTS = {"migrations", "_stubs", ".venv", "node_modules", "__pycache__"}


def modules(root: Path):
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            if not SKIP_PARTS & set(path.parts):
                yield path


def top_package(name: str | None) -> str | None:
    return name.split(".", 1)[0] if name else None


def report(root: Path) -> dict:
    big, functions, inner_imports, import_errors = [], [], [], []
    for path in modules(root):
        text = path.read_text(encoding="utf-8")
        rel = path.relative_to(root)
        own = rel.parts[0]
        lines = text.count("\n") + 1
        if lines > MAX_LINES:
            big.append((lines, str(rel)))
        tree = ast.parse(text)
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                functions.append((node.end_lineno - node.lineno + 1, f"{rel}:{node.lineno} {node.name}"))
                for inner in ast.walk(node):
                    if isinstance(inner, ast.ImportFrom) and inner.level == 0:
                        target = top_package(inner.module)
                    elif isinstance(inner, ast.Import):
                        target = top_package(inner.names[0].name)
                    else:
                        continue
                    if target in PACKAGES and target != own and "tests" not in rel.parts:
                        inner_imports.append(f"{rel}:{inner.lineno} {target}")
            if isinstance(node, ast.Try):
                imports_project = any(
                    isinstance(n, ast.Import | ast.ImportFrom)
                    and top_package(getattr(n, "module", None) or n.names[0].name) in PACKAGES
                    for n in ast.walk(ast.Module(body=node.body, type_ignores=[])))
                catches = any(isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError")
                              for h in node.handlers)
                if imports_project and catches:
                    import_errors.append(f"{rel}:{node.lineno}")
    return {"big": sorted(big, reverse=True), "functions": sorted(functions, reverse=True)[:10],
            "inner_imports": inner_imports, "import_errors": import_errors}


def main(argv: list[str]) -> int:
    root = Path(argv[1] if len(argv) > 1 else Path(__file__).resolve().parents[1])
    figures = report(root)
    print(f"Modules over {MAX_LINES} lines: {len(figures['big'])}")
    for lines, name in figures["big"]:
        print(f"  {lines:5d}  {name}")
    print("Longest functions:")
    for lines, name in figures["functions"]:
        print(f"  {lines:5d}  {name}")
    print(f"Cross-package imports inside functions (tests aside): {len(figures['inner_imports'])}")
    for line in figures["inner_imports"]:
        print(f"  {line}")
    print(f"`except ImportError` around the project's own imports: {len(figures['import_errors'])}")
    for line in figures["import_errors"]:
        print(f"  {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
