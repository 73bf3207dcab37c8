"""Generate the Python gRPC stubs of Wechaty's puppet-service from the pinned npm package.

    .venv/bin/python tools/puppet-service/gen_stubs.py   # after `npm ci` in tools/puppet-service

Reads the proto files of `wechaty-grpc` (pinned by tools/puppet-service/package-lock.json) and
writes `bridge/_stubs/` (git-ignored). Two files the protos import are not in that package
(`google/api/annotations.proto`, `protoc-gen-openapiv2/options/annotations.proto`): they only
add HTTP-gateway and OpenAPI options, so their imports and the options that use them are
stripped before generating. The wire format (packages, messages, field numbers, services) is
unchanged. The event messages get the two fields of the WeCom providers' fork `@juzi/wechaty-grpc`
(`EventRequest.seq`/`account_id`: resume after this event; `EventResponse.seq`): proto3 ignores
unknown fields, so an upstream server reads the request as before and its responses carry seq 0,
which is how the bridge tells that a provider cannot resume (docs/bridge.md). Generated modules import each other as `wechaty.puppet...`; they are rewritten to
`bridge._stubs.wechaty...` so the stubs live inside the bridge package.

Idempotent: a stamp of the inputs (the lockfile and this script) skips regeneration when they
did not change.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
PROTO_ROOT = HERE / "node_modules" / "wechaty-grpc" / "dist" / "cjs" / "proto"
OUT = ROOT / "bridge" / "_stubs"
PACKAGE = "bridge._stubs"
MISSING_IMPORTS = ("google/api/annotations.proto", "protoc-gen-openapiv2/options/annotations.proto")
# Options whose types come from the missing files: `option (google.api.http) = {...};` and
# `option (grpc.gateway.protoc_gen_openapiv2.options.X) = {...};`, with nested braces.
OPTION_START = re.compile(r"option\s*\((google\.api\.|grpc\.gateway\.)[^)]*\)\s*=\s*")


def strip_options(text: str) -> str:
    for name in MISSING_IMPORTS:
        text = text.replace(f'import "{name}";', "")
    out, pos = [], 0
    while match := OPTION_START.search(text, pos):
        out.append(text[pos : match.start()])
        i = match.end()
        if text[i] == "{":
            depth = 0
            while True:
                if text[i] == "{":
                    depth += 1
                elif text[i] == "}":
                    depth -= 1
                    if depth == 0:
                        break
                i += 1
            i += 1
        else:  # a scalar option value
            i = text.index(";", i)
        # the closing semicolon of the option statement
        while text[i] in " \t\n":
            i += 1
        if text[i] == ";":
            i += 1
        pos = i
    out.append(text[pos:])
    return "".join(out)


# The fork's additions (field numbers as in @juzi/wechaty-grpc 1.0.x, dist/*/proto/.../event.proto).
FORK_PATCHES = {
    "message EventRequest {}": "message EventRequest {\n  int32 seq = 1;\n  string account_id = 2;\n}",
    "string payload = 2; // JSON.stringify({ ... })": "string payload = 2; // JSON.stringify({ ... })\n  int32 seq = 3;",
}


def patch_fork(text: str) -> str:
    for old, new in FORK_PATCHES.items():
        text = text.replace(old, new)
    return text


def stamp() -> str:
    digest = hashlib.sha256()
    for path in (HERE / "package-lock.json", Path(__file__)):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def generate() -> int:
    if not PROTO_ROOT.is_dir():
        print(f"error: {PROTO_ROOT} is missing: run `npm ci` in {HERE} first.", file=sys.stderr)
        return 1
    wanted = stamp()
    stamp_file = OUT / ".stamp"
    if stamp_file.exists() and stamp_file.read_text() == wanted:
        print(f"stubs up to date in {OUT}")
        return 0
    from grpc_tools import protoc  # imported here: only setup needs grpcio-tools

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "proto"
        shutil.copytree(PROTO_ROOT, src)
        protos = sorted(src.rglob("*.proto"))
        for proto in protos:
            text = strip_options(proto.read_text())
            if proto.name == "event.proto":
                patched = patch_fork(text)
                if patched.count("int32 seq") != 2:
                    print("error: event.proto changed upstream; update FORK_PATCHES", file=sys.stderr)
                    return 1
                text = patched
            proto.write_text(text)
        gen = Path(tmp) / "gen"
        gen.mkdir()
        include = Path(protoc.__file__).parent / "_proto"
        rel = [str(p.relative_to(src)) for p in protos]
        status = protoc.main(
            ["grpc_tools.protoc", f"-I{src}", f"-I{include}", f"--python_out={gen}", f"--grpc_python_out={gen}", *rel]
        )
        if status != 0:
            print("error: protoc failed", file=sys.stderr)
            return status
        for module in gen.rglob("*.py"):
            code = module.read_text()
            code = re.sub(r"^from wechaty(\.| )", lambda m: f"from {PACKAGE}.wechaty{m.group(1)}", code, flags=re.M)
            module.write_text(code)
        for folder in [gen, *[d for d in gen.rglob("*") if d.is_dir()]]:
            (folder / "__init__.py").touch()
        if OUT.exists():
            shutil.rmtree(OUT)
        shutil.copytree(gen, OUT)
    (OUT / "README").write_text("Generated by tools/puppet-service/gen_stubs.py; git-ignored. Do not edit.\n")
    stamp_file.write_text(wanted)
    print(f"stubs generated in {OUT} from {len(rel)} proto files")
    return 0


if __name__ == "__main__":
    sys.exit(generate())
