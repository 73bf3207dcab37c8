"""Shared fixtures for tests that drive instances (a pytest plugin, registered in conftest.py):
a simulator on a free local port, a registered instance, and helpers to post signed webhook
deliveries."""
import json
import uuid

import pytest

from instances import protocol
from simulator.server import Simulator
from simulator.testing import unused_port

SECRET = "test-webhook-secret"
TOKEN = "sim-token"


@pytest.fixture
def platform_url(settings):
    """Webhook URLs point at a port nothing listens on unless a test uses live_server."""
    settings.PLATFORM_BASE_URL = f"http://127.0.0.1:{unused_port()}"
    return settings.PLATFORM_BASE_URL


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123")


@pytest.fixture
def simulator():
    sim = Simulator(port=0, token=TOKEN, accounts=2, contacts=30, rooms=4, members=6, seed=7,
                    duplicate_rate=0.0, chatter_per_min=0, history_on_login=0,
                    heartbeat_interval_s=3600, webhook_timeout_s=2.0, retry_max_s=1.0,
                    max_delivery_attempts=2)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def make_sim():
    """make_sim(**overrides) starts a simulator (small, fast retries, no duplicates); all are
    stopped at the end of the test."""
    started = []

    def factory(**kw):
        kw.setdefault("token", TOKEN)
        kw.setdefault("accounts", 2)
        kw.setdefault("contacts", 20)
        kw.setdefault("rooms", 3)
        kw.setdefault("members", 5)
        kw.setdefault("send_delay_ms", 10)
        kw.setdefault("retry_base_s", 0.05)
        kw.setdefault("duplicate_rate", 0.0)
        s = Simulator(**kw)
        s.start()
        started.append(s)
        return s

    yield factory
    for s in started:
        s.stop()


@pytest.fixture
def signed_instance(platform_url):
    """An offline instance never heard from, with its webhook secret (SECRET) set."""
    # imported here: the plugin is loaded before Django's settings
    from instances import services
    from instances.models import InstanceStatus
    from instances.tests.factories import WeworkInstanceFactory

    inst = WeworkInstanceFactory(status=InstanceStatus.OFFLINE, last_heartbeat=None,
                                 version=None)
    services.set_config(inst, services.WEBHOOK_SECRET_KEY, SECRET, encrypted=True, system=True)
    return inst


@pytest.fixture
def registered(simulator, admin_user, platform_url):
    from instances import services

    result = services.register_instance(
        name="sim", api_url=simulator.url, token=TOKEN, webhook_secret=SECRET,
        max_accounts=5, created_by=admin_user,
    )
    assert result.pushed, result.push_error
    return result.instance


def make_event(instance, type_, data, *, seq, account_id=None, event_id=None):
    return {
        "event_id": event_id or f"evt_{uuid.uuid4().hex}",
        "type": type_,
        "instance_id": instance.instance_uuid,
        "account_id": account_id,
        "seq": seq,
        "ts_ms": 1_700_000_000_000,
        "data": data,
    }


def heartbeat_data(**overrides):
    data = {
        "uptime_s": 10, "accounts": [], "queue_depth": 0, "client_version": "4.1.22",
        "client_running": True, "metrics": {"cpu": 12.5, "memory": 256.0, "queue_depth": 0},
    }
    data.update(overrides)
    return data


def post_event(client, instance, event, *, secret=SECRET, timestamp=None, raw=None,
               headers=None):
    body = raw if raw is not None else json.dumps(event).encode()
    signed = protocol.signature_headers(
        body, secret, event_id=event["event_id"] if event else "x", timestamp=timestamp
    )
    signed.update(headers or {})
    signed.pop("Content-Type", None)
    return client.post(
        f"/api/v1/instances/{instance.instance_uuid}/events", data=body,
        content_type="application/json", headers=signed,
    )
