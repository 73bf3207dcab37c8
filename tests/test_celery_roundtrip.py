"""A real Celery worker and beat, in subprocesses, on the embedded folder broker and on Redis.

The rest of the suite runs tasks eagerly; these tests check that the configured broker and
result backend really carry a task from a producer (and from beat) to a worker and back.
"""
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

PRODUCER = textwrap.dedent(
    """
    import os, django
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wework.settings")
    django.setup()
    from wework.celery import app
    result = app.send_task("celery.accumulate", args=(1, 2, 3))
    print("RESULT", result.get(timeout=40))
    """
)
BEAT = textwrap.dedent(
    """
    import os, django
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wework.settings")
    django.setup()
    from wework.celery import app
    app.loader.import_default_modules()
    app.conf.beat_schedule = {
        "roundtrip-probe": {"task": "celery.accumulate", "schedule": 1.0, "args": (42,)},
    }
    app.conf.beat_schedule_filename = os.path.join(os.environ["WEWORK_DATA_DIR"], "beat-test")
    app.Beat(loglevel="INFO").run()
    """
)


def _env(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND",
                        "CELERY_TASK_ALWAYS_EAGER", "DJANGO_SETTINGS_MODULE")
           and not k.startswith("DATABASE_URL_")}  # the modules' databases too: embedded default
    # CELERY_ROUTINE_LOG_LEVEL=INFO: the worker's "Task ... succeeded" lines are what this test
    # reads (they are at WARNING by default, routine noise in production)
    env.update(DJANGO_SETTINGS_MODULE="wework.settings", DJANGO_DEBUG="1", CELERY_ROUTINE_LOG_LEVEL="INFO",
               WEWORK_DATA_DIR=str(tmp_path), SYSTEM_LOG_DB="0", PYTHONUNBUFFERED="1", **extra)
    return env


def _stop(proc):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _roundtrip(tmp_path, env):
    celery = [sys.executable, "-m", "celery", "-A", "wework"]
    log_path = tmp_path / "worker.log"
    with open(log_path, "w") as log:
        worker = subprocess.Popen(
            [*celery, "worker", "--pool=solo", "--loglevel=INFO", "--without-mingle",
             "--without-gossip", "--hostname", f"roundtrip-{os.getpid()}@%h"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    beat = None
    try:
        produced = subprocess.run([sys.executable, "-c", PRODUCER], cwd=ROOT, env=env,
                                  capture_output=True, text=True, timeout=90)
        assert "RESULT [1, 2, 3]" in produced.stdout, (produced.stdout, produced.stderr,
                                                         log_path.read_text())
        with open(tmp_path / "beat.log", "w") as beat_log:
            beat = subprocess.Popen([sys.executable, "-c", BEAT], cwd=ROOT, env=env,
                                    stdout=beat_log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if log_path.read_text().count("succeeded") >= 3:  # the producer's task + 2 from beat
                break
            time.sleep(0.5)
        text = log_path.read_text()
        assert text.count("succeeded") >= 3, (text, (tmp_path / "beat.log").read_text())
        assert "(42,)" in text  # beat's task ran on the worker
    finally:
        if beat is not None:
            _stop(beat)
        _stop(worker)


@pytest.mark.slow
def test_folder_broker_roundtrip_with_worker_and_beat(tmp_path):
    _roundtrip(tmp_path, _env(tmp_path))
    # the folder broker keeps its files under the data folder, nothing in the working directory
    assert (tmp_path / "celery" / "queue").is_dir()
    assert any((tmp_path / "celery" / "results").iterdir())


@pytest.mark.slow
@pytest.mark.redis
def test_redis_broker_roundtrip_with_worker_and_beat(tmp_path):
    redis_url = os.environ.get("REDIS_URL", "")
    if not redis_url:
        if os.environ.get("REQUIRE_SERVICES") in ("1", "true", "yes"):
            pytest.fail("REDIS_URL is required")
        pytest.skip("REDIS_URL is not set")
    _roundtrip(tmp_path, _env(tmp_path, REDIS_URL=redis_url))
