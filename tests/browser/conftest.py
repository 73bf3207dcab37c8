"""The browser suite's machinery: Debian's chromium driven by Playwright, a real Celery worker on
the test database, and a screenshot of the page when a test fails.

Collected only when asked (WEWORK_BROWSER=1, set by scripts/test-browser; the root conftest
ignores this folder otherwise). A missing chromium or Playwright fails the suite, never skips it:
run scripts/setup-browser.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from wework.testing.databases import database_env

# Playwright's sync API keeps an event loop on the test's thread; Django would then refuse the
# test's own database calls as "async" (they are not: the loop only waits for the browser).
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "1")

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("WEWORK_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = ROOT / "var" / "browser-screenshots"

# Messaging as the worker runs it: no global pacing (a broadcast is slowed by its own "seconds
# between receivers"), no HEAD requests to the example media URLs, quick acknowledgements.
WORKER_MESSAGING = {
    "MIN_INTERVAL_S": 0, "JITTER_S": 0, "PER_MINUTE": 0, "DAILY": 0, "CONVERSATION_INTERVAL_S": 0,
    "CHECK_MEDIA_URLS": False, "FLUSH_INTERVAL_S": 0.2, "ACK_POLL_AFTER_S": 0.3,
    "CLAIM_BATCH": 50, "DISPATCH_SLICE_S": 20,
}


def wait_for(predicate, timeout=45.0, step=0.2, what=None, state=None):
    """predicate()'s first true value, polled; the timeouts are generous (CI machines are shared
    and busy) and cost nothing when things are quick. `state()` describes what was seen instead."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    seen = f" (seen: {state()})" if state else ""
    raise AssertionError(f"not within {timeout}s: {what or predicate.__doc__ or predicate}{seen}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="session", autouse=True)
def playwright_browser():
    """Headless chromium (Debian's, through executable_path; Playwright's own download is not
    used). Missing: the suite fails with what to run, before anything else is set up."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup-browser (as root, it installs chromium).",
                    pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright for Python is missing: run scripts/setup-browser (requirements-browser.txt).",
                    pytrace=False)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield browser
        browser.close()


@pytest.fixture
def new_page(request, playwright_browser):
    """new_page(locale) → a page in a fresh browser context (its own cookies) speaking `locale`
    (navigator language and Accept-Language). On failure each page's screenshot is saved under
    var/browser-screenshots/."""
    from playwright.sync_api import Error as PlaywrightError

    contexts = []

    def factory(locale):
        context = playwright_browser.new_context(locale=locale, viewport={"width": 1280, "height": 900})
        context.set_default_timeout(30_000)
        contexts.append(context)
        return context.new_page()

    yield factory
    failed = any(getattr(request.node, f"rep_{when}", None) is not None
                 and getattr(request.node, f"rep_{when}").failed for when in ("setup", "call"))
    for number, context in enumerate(contexts):
        if failed:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            name = re.sub(r"[^\w.-]+", "_", request.node.name)
            for index, page in enumerate(context.pages):
                path = SCREENSHOTS / f"{name}-{number}-{index}.png"
                try:
                    page.screenshot(path=str(path), full_page=True)
                    print(f"screenshot: {path} ({page.url})")
                except PlaywrightError as exc:  # a crashed page: say so, keep the test's own failure
                    print(f"no screenshot of {page.url}: {exc}")
        context.close()


@pytest.fixture
def celery_worker(django_db_setup, django_db_blocker, live_server, tmp_path_factory):
    """A real Celery worker (one process, four threads) on the test database and the broker of
    the settings (Redis, or the embedded folder), so that the pages' tasks run as in production:
    the web request returns, the worker sends. One per test: the shard tables a test created
    are dropped after it, and a worker remembers the tables it saw."""
    from wework.celery import app

    with django_db_blocker.unblock():
        if connection.vendor == "sqlite" and ("memory" in str(connection.settings_dict["NAME"])
                                               or not connection.settings_dict["NAME"]):
            pytest.fail("the browser suite's worker needs a database file: run it through "
                        "scripts/test-browser (it sets TEST_SQLITE_NAME) or on MariaDB.", pytrace=False)
        db_env = database_env()
    if settings.CELERY_BROKER_URL.startswith("filesystem://"):
        folder = Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"])
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
    else:
        with app.connection_for_write() as conn:
            conn.default_channel.queue_purge(app.conf.task_default_queue)
    env = dict(os.environ)
    env.update({
        "DJANGO_SETTINGS_MODULE": "wework.test_settings", **db_env,
        "CELERY_TASK_ALWAYS_EAGER": "0", "MESSAGING_SETTINGS": json.dumps(WORKER_MESSAGING),
        "FIELD_ENCRYPTION_KEYS": ",".join(settings.FIELD_ENCRYPTION_KEYS),
        "PLATFORM_BASE_URL": live_server.url,
    })
    if settings.REDIS_URL:
        env["REDIS_URL"] = settings.REDIS_URL
    log_path = tmp_path_factory.mktemp("worker") / "worker.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "wework", "worker", "-P", "threads", "-c", "4",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "warning"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    eager = app.conf.task_always_eager
    app.conf.task_always_eager = False
    try:
        yield proc
    finally:
        app.conf.task_always_eager = eager
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()
        tail = log_path.read_text()[-4000:]
        if tail.strip():
            print("celery worker log (end):\n" + tail)
