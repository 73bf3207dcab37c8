"""Messaging settings: defaults, `settings.MESSAGING` (MESSAGING_SETTINGS JSON) and single
`MESSAGING_<KEY>` environment variables read as the type of their default."""
import re
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from messaging import conf
from messaging.checks import check_settings


@pytest.fixture
def no_overrides(settings):
    settings.MESSAGING = {}


def test_default_without_overrides(no_overrides, monkeypatch):
    monkeypatch.delenv("MESSAGING_PER_MINUTE", raising=False)
    assert conf.get("PER_MINUTE") == 30


@pytest.mark.parametrize("key,raw,value", [
    ("PER_MINUTE", "20", 20),
    ("MIN_INTERVAL_S", "1.5", 1.5),
    ("CHECK_MEDIA_URLS", "0", False),
    ("CHECK_MEDIA_URLS", "yes", True),
    ("MAX_RECEIVERS_PER_TASK", " 50000 ", 50000),
])
def test_environment_variable_read_as_the_defaults_type(no_overrides, monkeypatch, key, raw, value):
    monkeypatch.setenv(f"MESSAGING_{key}", raw)
    assert conf.get(key) == value and type(conf.get(key)) is type(value)


def test_settings_win_over_the_environment(settings, monkeypatch):
    monkeypatch.setenv("MESSAGING_PER_MINUTE", "20")
    settings.MESSAGING = {"PER_MINUTE": 7}
    assert conf.get("PER_MINUTE") == 7


def test_an_empty_variable_is_not_set(no_overrides, monkeypatch):
    monkeypatch.setenv("MESSAGING_DAILY", "")
    assert conf.get("DAILY") == conf.DEFAULTS["DAILY"]


@pytest.mark.parametrize("key,raw,fragment", [
    ("PER_MINUTE", "many", "MESSAGING_PER_MINUTE must be a whole number"),
    ("PER_MINUTE", "2.5", "whole number"),
    ("JITTER_S", "-1", "must not be negative"),
    ("CHECK_MEDIA_URLS", "perhaps", "must be 1 or 0"),
])
def test_a_bad_variable_is_a_sentence_naming_it(no_overrides, monkeypatch, key, raw, fragment):
    monkeypatch.setenv(f"MESSAGING_{key}", raw)
    with pytest.raises(ImproperlyConfigured, match=fragment):
        conf.get(key)
    assert any(fragment in e.msg for e in check_settings())


def test_check_reports_unknown_variables_and_keys(settings, monkeypatch):
    monkeypatch.setenv("MESSAGING_PER_MINUT", "20")
    settings.MESSAGING = {"PER_MINUTE": 5, "DAYLY": 1}
    found = {(e.id, e.msg) for e in check_settings()}
    assert ("messaging.W001", "MESSAGING_PER_MINUT is not a messaging setting (see docs/deployment.md).") in found
    assert any(i == "messaging.W002" and "'DAYLY'" in m for i, m in found)


def test_manage_check_fails_on_a_bad_variable(no_overrides, monkeypatch):
    monkeypatch.setenv("MESSAGING_CLAIM_BATCH", "lots")
    with pytest.raises(SystemCheckError, match="MESSAGING_CLAIM_BATCH"):
        call_command("check", "messaging", tags=["compatibility"])


def test_every_default_is_a_plain_number_or_flag():
    """What the environment can set: each default's type decides how its variable is read."""
    assert all(type(v) in (int, float, bool) for v in conf.DEFAULTS.values())


def test_every_setting_is_documented_with_its_default():
    """docs/deployment.md lists each MESSAGING_<KEY> with the default of messaging/conf.py."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "deployment.md").read_text(encoding="utf-8")
    for key, default in conf.DEFAULTS.items():
        shown = ("1" if default else "0") if isinstance(default, bool) else str(default)
        assert re.search(rf"\| `MESSAGING_{key}` \| `{re.escape(shown)}` \|", doc), key
