"""The embedded default's cache is shared by the platform's processes (QA Q2).

`scripts/run` without REDIS_URL runs the web server, the Celery worker and beat as separate
processes. With an in-process cache each had its own: the contact sync queued by the web server
after a QR login stayed "queued" on the account page, and its lock refused a manual sync for
15 minutes, although the worker had finished it.
"""
import os
import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parents[2]

SETUP = ("import django; django.setup(); from django.core.cache import cache; "
         "from django.conf import settings; ")


def _embedded_env(data_dir):
    env = {k: v for k, v in os.environ.items()
           if k not in ("EMBEDDED_CACHE", "PYTEST_XDIST_WORKER", "WEWORK_TEST_REDIS_URL_SHIFTED")}
    env.update({
        "DJANGO_SETTINGS_MODULE": "wework.settings",
        "REDIS_URL": "",  # the embedded default (set: not overridden by .env)
        "DATABASE_URL": f"sqlite:///{data_dir}/wework.sqlite3",
        "WEWORK_DATA_DIR": str(data_dir),
        "DJANGO_DEBUG": "1",
        "DJANGO_SECRET_KEY": "tests-only-secret-key-" + "x" * 40,
        "FIELD_ENCRYPTION_KEYS": "dGVzdHMtb25seS1maWVsZC1lbmNyeXB0aW9uLWtleSE=",
        "SYSTEM_LOG_DB": "0",
    })
    return env


def _run(code, env):
    return subprocess.run([sys.executable, "-c", SETUP + code], env=env, cwd=BASE_DIR,
                          capture_output=True, text=True, timeout=120)


def test_embedded_cache_is_shared_between_processes(tmp_path):
    env = _embedded_env(tmp_path)
    first = _run("cache.set('q2-shared', 'from another process', 60); "
                 "print(settings.CACHES['default']['BACKEND'])", env)
    assert first.returncode == 0, first.stderr[-2000:]
    assert "locmem" not in first.stdout.lower()
    second = _run("print(cache.get('q2-shared'))", env)
    assert second.returncode == 0, second.stderr[-2000:]
    assert second.stdout.strip() == "from another process"
    assert (tmp_path / "cache").is_dir()


def test_locmem_on_request(tmp_path):
    env = {**_embedded_env(tmp_path), "EMBEDDED_CACHE": "locmem"}
    result = _run("print(settings.CACHES['default']['BACKEND'])", env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("LocMemCache")
