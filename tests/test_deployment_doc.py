"""docs/deployment.md documents every environment variable the settings read."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ENV_CALL = re.compile(r"\benv(?:\.\w+)?\(\s*\"([A-Z][A-Z0-9_]+)\"", re.S)
OS_ENV = re.compile(r"os\.environ(?:\.get)?[(\[]\s*\"([A-Z][A-Z0-9_]+)\"")


def settings_variables():
    text = (ROOT / "wework" / "settings.py").read_text(encoding="utf-8")
    return set(ENV_CALL.findall(text)) | set(OS_ENV.findall(text))


def test_settings_read_variables():
    names = settings_variables()
    # The parser finds calls spread over several lines too.
    assert {"DJANGO_SECRET_KEY", "DATABASE_URL", "DJANGO_ALLOWED_HOSTS", "REDIS_URL"} <= names


def test_every_settings_variable_is_documented():
    doc = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    missing = sorted(name for name in settings_variables() if f"`{name}`" not in doc)
    assert not missing, f"document these in docs/deployment.md: {', '.join(missing)}"
