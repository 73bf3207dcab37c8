"""Celery on RabbitMQ, the production broker (docs/deployment.md, "Redis Cluster and RabbitMQ"):
a worker and beat carry tasks, and task priorities order the queue (x-max-priority).

`WEWORK_TEST_AMQP_URL` names the broker (default: the vhost `/` on 127.0.0.1:5672; a vhost in
the URL is created with rabbitmqctl when it is missing); each test uses a queue of its own,
deleted at its end. Skipped when
RabbitMQ cannot be reached, failed instead with REQUIRE_SERVICES=1 (CI)."""
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from urllib.parse import urlsplit

import pytest

from tests.test_celery_roundtrip import ROOT, _env, _roundtrip, _stop

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672//"

PRODUCE_BY_PRIORITY = textwrap.dedent(
    """
    import os, django
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "wework.settings")
    django.setup()
    from messaging.dispatch.leases import celery_priority
    from wework.celery import app
    for n in range(101, 106):
        app.send_task("celery.accumulate", args=(n,), priority=celery_priority(3))  # low
    app.send_task("celery.accumulate", args=(7,), priority=celery_priority(1))  # high, sent last
    print("SENT")
    """
)


@pytest.fixture
def amqp_url():
    url = os.environ.get("WEWORK_TEST_AMQP_URL", DEFAULT_URL)
    parts = urlsplit(url)
    try:
        socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), 3).close()
    except OSError as exc:
        if os.environ.get("REQUIRE_SERVICES") in ("1", "true", "yes"):
            pytest.fail(f"RabbitMQ at {parts.hostname}:{parts.port or 5672} cannot be reached ({exc}).")
        pytest.skip("RabbitMQ is not reachable")
    vhost = parts.path[1:] or "/"
    if vhost != "/" and shutil.which("rabbitmqctl"):
        subprocess.run(["rabbitmqctl", "add_vhost", vhost], capture_output=True, timeout=60)
        subprocess.run(["rabbitmqctl", "set_permissions", "-p", vhost, parts.username or "guest", ".*", ".*", ".*"],
                       capture_output=True, timeout=60)
    return url


@pytest.fixture
def amqp_env(tmp_path, amqp_url):
    queue = f"wework-test-{uuid.uuid4().hex[:10]}"
    yield _env(tmp_path, CELERY_BROKER_URL=amqp_url, CELERY_RESULT_BACKEND="rpc://", CELERY_QUEUE=queue)
    from kombu import Connection

    with Connection(amqp_url) as conn:  # durable queues outlive the test: delete this one
        conn.default_channel.queue_delete(queue)


@pytest.mark.slow
def test_rabbitmq_broker_roundtrip_with_worker_and_beat(tmp_path, amqp_env):
    _roundtrip(tmp_path, amqp_env)


@pytest.mark.slow
def test_rabbitmq_runs_the_high_priority_task_first(tmp_path, amqp_env):
    env = {**amqp_env, "CELERY_RESULT_BACKEND": "disabled"}  # no reply queue left behind
    produced = subprocess.run([sys.executable, "-c", PRODUCE_BY_PRIORITY], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=90)
    assert "SENT" in produced.stdout, produced.stderr
    log_path = tmp_path / "worker.log"
    with open(log_path, "w") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "wework", "worker", "--pool=solo", "--loglevel=INFO",
             "--without-mingle", "--without-gossip", "--hostname", f"prio-{os.getpid()}@%h"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and log_path.read_text().count("succeeded") < 6:
            time.sleep(0.5)
    finally:
        _stop(worker)
    done = [line.rsplit(":", 1)[-1].strip() for line in log_path.read_text().splitlines() if "succeeded" in line]
    assert len(done) == 6, log_path.read_text()
    assert done[0] == "(7,)", done  # the high-priority task, sent last, ran first
