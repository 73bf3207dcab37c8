"""Project templates follow Django 6's admin markup, which the admin CSS styles."""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP = {".venv", "venv", "node_modules", "data", "staticfiles", ".git"}


def _templates():
    for path in ROOT.rglob("*.html"):
        if not SKIP.intersection(path.relative_to(ROOT).parts):
            yield path


def test_breadcrumbs_use_the_ordered_list_markup():
    # Django >= 4.1 styles <ol class="breadcrumbs"><li>...; a <div class="breadcrumbs"> renders
    # as bare text outside the breadcrumb bar.
    offenders = [str(p.relative_to(ROOT)) for p in _templates()
                 if 'div class="breadcrumbs"' in p.read_text(encoding="utf-8")]
    assert not offenders, offenders
