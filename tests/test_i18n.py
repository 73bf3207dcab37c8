"""Chinese by default, English on request; the committed catalogues are complete and compiled."""
import ast
import gettext
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

LOCALE = Path(__file__).resolve().parent.parent / "locale"


@pytest.fixture
def login_url(settings):
    # The product's default language (the test settings use English for readable assertions).
    settings.LANGUAGE_CODE = "zh-hans"
    return reverse("admin:login")


def test_product_default_language_is_simplified_chinese(monkeypatch):
    import importlib

    import wework.settings as product_settings

    monkeypatch.delenv("LANGUAGE_CODE", raising=False)
    assert importlib.reload(product_settings).LANGUAGE_CODE == "zh-hans"
    assert [code for code, _ in settings.LANGUAGES] == ["zh-hans", "en"]


def _text(response):
    assert response.status_code == 200
    return response.content.decode()


@pytest.mark.django_db
def test_admin_login_is_chinese_by_default(client, login_url):
    html = _text(client.get(login_url))
    assert '<html lang="zh-hans"' in html
    assert "一次性验证码" in html  # our catalogue ("One-time code")
    assert "登录" in html  # Django's own ("Log in")
    assert "One-time code" not in html


@pytest.mark.django_db
def test_admin_login_in_english_with_accept_language(client, login_url):
    html = _text(client.get(login_url, HTTP_ACCEPT_LANGUAGE="en-US,en;q=0.9"))
    assert '<html lang="en"' in html
    assert "One-time code" in html
    assert "一次性验证码" not in html


@pytest.mark.django_db
def test_language_cookie_wins_over_accept_language(client, login_url):
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "en"
    html = _text(client.get(login_url, HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9"))
    assert "One-time code" in html
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "zh-hans"
    html = _text(client.get(login_url, HTTP_ACCEPT_LANGUAGE="en"))
    assert "一次性验证码" in html


@pytest.mark.django_db
def test_set_language_view_switches_to_english(client, login_url):
    response = client.post(reverse("set_language"), {"language": "en", "next": login_url})
    assert response.status_code == 302
    assert "One-time code" in _text(client.get(login_url))


def _po_entries(path):
    """(msgid, [msgstr...], fuzzy) of a .po file; enough of the format for Django's output."""
    entries, current, key, fuzzy = [], None, None, False

    def flush():
        if current is not None and current.get("msgid"):
            strs = [v for k, v in sorted(current.items()) if k.startswith("msgstr")]
            entries.append((current["msgid"], strs, current.get("fuzzy", False)))

    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#~"):
            continue  # obsolete
        if line.startswith("#,"):
            fuzzy = "fuzzy" in line
            continue
        if line.startswith("#") or not line.strip():
            continue
        if line.startswith("msgid "):
            flush()
            current, key = {"fuzzy": fuzzy}, "msgid"
            fuzzy = False
            current[key] = ast.literal_eval(line[6:])
        elif line.startswith("msgctxt "):
            flush()
            current, key = {"fuzzy": fuzzy}, "msgctxt"
            fuzzy = False
            current[key] = ast.literal_eval(line[8:])
        elif line.startswith("msgid_plural "):
            key = "msgid_plural"
            current[key] = ast.literal_eval(line[13:])
        elif line.startswith("msgstr"):
            head, _, value = line.partition(" ")
            key = head
            current[key] = ast.literal_eval(value)
        elif line.startswith('"'):
            current[key] += ast.literal_eval(line)
    flush()
    return entries


def test_chinese_catalogue_is_complete_and_compiled():
    po = LOCALE / "zh_Hans" / "LC_MESSAGES" / "django.po"
    entries = _po_entries(po)
    assert len(entries) > 100
    untranslated = [msgid for msgid, strs, fuzzy in entries if fuzzy or not all(strs)]
    assert not untranslated, f"untranslated or fuzzy in {po}: {untranslated[:10]}"
    with open(po.with_suffix(".mo"), "rb") as handle:
        catalog = gettext.GNUTranslations(handle)
    stale = [msgid for msgid, strs, _ in entries
             if catalog.gettext(msgid) != strs[0] and catalog.ngettext(msgid, msgid, 1) != strs[0]]
    assert not stale, f"django.mo is older than django.po (run compilemessages): {stale[:10]}"


PROJECT_PACKAGES = ("accounts", "contacts", "instances", "messaging", "monitoring", "scrm", "wework", "bridge")
EAGER_GETTEXT = {"gettext", "ngettext", "pgettext", "npgettext"}


def _eager_aliases(tree):
    """Names bound to django.utils.translation's eager gettext functions in a module."""
    aliases = set()
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module == "django.utils.translation":
            aliases |= {a.asname or a.name for a in node.names if a.name in EAGER_GETTEXT}
    return aliases


def _module_level_calls(tree, aliases):
    """Calls of `aliases` evaluated at import time (outside any function or lambda)."""
    found = []

    def visit(node, in_function):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            in_function = True
        if (not in_function and isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                and node.func.id in aliases):
            found.append(node.lineno)
        for child in ast.iter_child_nodes(node):
            visit(child, in_function)

    visit(tree, False)
    return found


def test_no_text_is_translated_at_import_time():
    """A gettext() at module level is translated once, in the language of the process's start:
    the task actions' messages were Chinese in the English UI. Module-level texts use
    gettext_lazy (or gettext_noop and a gettext at use)."""
    root = LOCALE.parent
    offenders = []
    for package in PROJECT_PACKAGES:
        for path in (root / package).rglob("*.py"):
            if "tests" in path.parts or "migrations" in path.parts or "_stubs" in path.parts:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"))
            aliases = _eager_aliases(tree)
            offenders += [f"{path.relative_to(root)}:{line}" for line in _module_level_calls(tree, aliases)]
    assert offenders == [], "texts translated at import time (use gettext_lazy): " + ", ".join(offenders)
