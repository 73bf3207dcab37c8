"""The primary/replica router: pure reads only on healthy replicas, everything else on the
primary; a failed replica read runs again on the primary; read-your-writes across requests.

The same behaviour on a real lagging replica: tests/topology/test_replica_pair.py."""
import pytest
from django.db import OperationalError, ProgrammingError, connections
from django.test import RequestFactory

from accounts.tests.factories import UserFactory
from wework import routers
from wework.db.layout import alias_for_app, is_split
from wework.db.replicas import ReplicaHealth, ReplicaStatus, health


class _Meta:
    def __init__(self, app_label):
        self.app_label = app_label


class _Model:
    def __init__(self, app_label):
        self._meta = _Meta(app_label)


MESSAGES = _Model("messaging")
# Messaging's primary: "default" on one database, its own alias in a per-module layout
# (wework.db.layout); the replica below is that primary's.
PRIMARY = alias_for_app("messaging")


@pytest.fixture
def replica(monkeypatch):
    """One replica alias, in rotation unless a test says otherwise."""
    monkeypatch.setattr(routers, "replica_aliases", lambda primary_alias=None: ["replica_0"] if primary_alias in (None, PRIMARY) else [])
    health.force("replica_0", True)
    yield "replica_0"
    health.force("replica_0", None)


def test_router_does_nothing_without_replicas():
    router = routers.PrimaryReplicaRouter()
    # One database: Django's own choice (None); several: the module's alias, never a hint's.
    expected = PRIMARY if is_split() else None
    assert router.db_for_read(MESSAGES) == expected
    with routers.replica_reads():
        assert router.db_for_read(MESSAGES) == expected


def test_reads_go_to_the_primary_unless_declared_pure(replica):
    router = routers.PrimaryReplicaRouter()
    # Services, tasks, claims, update views: no declaration, so the primary.
    assert router.db_for_read(MESSAGES) == PRIMARY
    with routers.replica_reads():
        assert router.db_for_read(MESSAGES) == replica
        # Auth, sessions, permissions and the shard registry are read from the primary always.
        for label in ("accounts", "auth", "sessions", "shards"):
            assert router.db_for_read(_Model(label)) == alias_for_app(label)
        with routers.primary():
            assert router.db_for_read(MESSAGES) == PRIMARY
        assert router.db_for_read(MESSAGES) == replica
    assert router.db_for_read(MESSAGES) == PRIMARY


def test_pure_reads_stay_on_the_primary_in_a_transaction_and_after_a_write(replica, monkeypatch):
    router = routers.PrimaryReplicaRouter()
    with routers.request_scope() as state, routers.replica_reads():
        assert router.db_for_read(MESSAGES) == replica
        # A session's last activity is no reason to pin: that table is read from the primary.
        router.db_for_write(_Model("accounts"))
        assert state.wrote is False
        assert router.db_for_read(MESSAGES) == replica
        assert router.db_for_write(MESSAGES) == PRIMARY
        assert state.wrote is True
        assert router.db_for_read(MESSAGES) == PRIMARY
    with routers.request_scope(), routers.replica_reads():
        assert router.db_for_read(MESSAGES) == replica
        monkeypatch.setattr(connections[PRIMARY], "in_atomic_block", True)
        assert router.db_for_read(MESSAGES) == PRIMARY


def test_an_unhealthy_replica_is_out_of_rotation(replica):
    router = routers.PrimaryReplicaRouter()
    health.force(replica, False)
    with routers.replica_reads():
        assert router.db_for_read(MESSAGES) == PRIMARY
    health.force(replica, True)
    with routers.replica_reads():
        assert router.db_for_read(MESSAGES) == replica


def test_request_scope_does_not_leak_replica_reads(replica):
    router = routers.PrimaryReplicaRouter()
    with routers.replica_reads():
        with routers.request_scope():
            assert router.db_for_read(MESSAGES) == PRIMARY
        assert router.db_for_read(MESSAGES) == replica


def _read(router, failure):
    """A pure read that fails like `failure` when it lands on a replica."""
    calls = []

    def read():
        alias = router.db_for_read(MESSAGES)
        calls.append(alias)
        if alias != PRIMARY:
            raise failure
        return "rows from the primary"

    return read, calls


@pytest.mark.parametrize("failure", [
    OperationalError(2013, "Lost connection to server during query"),
    OperationalError(2003, "Can't connect to server on '127.0.0.1' (111)"),
    ProgrammingError(1146, "Table 'wework.messages_202612' doesn't exist"),
])
def test_a_failed_replica_read_runs_again_on_the_primary(replica, failure):
    router = routers.PrimaryReplicaRouter()
    read, calls = _read(router, failure)
    health.force(replica, None)
    health._status[replica] = ReplicaStatus(replica, True, 0.0, "ok", health.clock())
    try:
        assert routers.read_only_call(read) == "rows from the primary"
        assert calls == [replica, PRIMARY]
        assert health.status(replica).healthy is False  # out until its next check
    finally:
        health.reset()


def test_other_errors_of_a_replica_read_are_not_hidden(replica):
    router = routers.PrimaryReplicaRouter()
    read, calls = _read(router, ProgrammingError(1064, "You have an error in your SQL syntax"))
    with pytest.raises(ProgrammingError):
        routers.read_only_call(read)
    assert calls == [replica]


@pytest.mark.django_db
def test_a_user_who_wrote_reads_from_the_primary_for_a_while(replica, settings, monkeypatch):
    settings.DATABASE_REPLICA_MAX_LAG_S = 2
    settings.DATABASE_REPLICA_CHECK_INTERVAL_S = 1
    router = routers.PrimaryReplicaRouter()
    user = UserFactory()
    other = UserFactory()
    # As outside the test case's transaction (a request in autocommit).
    monkeypatch.setattr(connections[PRIMARY], "in_atomic_block", False)

    def read():
        return router.db_for_read(MESSAGES)

    assert routers.read_only_call(read, user=user) == replica
    routers.pin_user(user)
    assert routers.read_only_call(read, user=user) == PRIMARY
    assert routers.read_only_call(read, user=other) == replica
    # Longer than the worst lag a replica in rotation may have, plus one check interval.
    assert routers.pin_seconds() == 4.0


@pytest.mark.django_db
def test_middleware_pins_the_user_after_a_request_that_wrote(replica):
    from wework.middleware import DatabaseRoutingMiddleware

    router = routers.PrimaryReplicaRouter()
    user = UserFactory()

    def writing_view(request):
        router.db_for_write(MESSAGES)
        from django.http import HttpResponse

        return HttpResponse("ok")

    request = RequestFactory().post("/api/v1/templates/1")
    request.user = user
    assert routers.user_pinned(user) is False
    DatabaseRoutingMiddleware(writing_view)(request)
    assert routers.user_pinned(user) is True


# --- health -------------------------------------------------------------------------------------

class _Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def _scripted_health(statuses):
    clock = _Clock()
    checked = []
    tracker = ReplicaHealth(clock=clock)

    def check(alias):
        healthy, reason = statuses.pop(0)
        checked.append(clock.now)
        return ReplicaStatus(alias, healthy, 0.0 if healthy else None, reason, clock.now)

    tracker._check = check
    return tracker, clock, checked


def test_health_is_checked_once_per_interval_and_follows_the_replica(settings):
    settings.DATABASE_REPLICA_CHECK_INTERVAL_S = 1
    tracker, clock, checked = _scripted_health([
        (True, "lag 0 s"), (False, "replication SQL thread is not running"), (True, "lag 0 s"),
    ])
    assert tracker.healthy(["replica_0"]) == ["replica_0"]
    clock.now += 0.5
    assert tracker.healthy(["replica_0"]) == ["replica_0"]  # cached within the interval
    clock.now += 0.6
    assert tracker.healthy(["replica_0"]) == []  # out within one interval of the change
    clock.now += 1.1
    assert tracker.healthy(["replica_0"]) == ["replica_0"]  # and back when healthy
    assert checked == pytest.approx([100.0, 101.1, 102.2])


def test_mark_failed_takes_a_replica_out_until_its_next_check(settings):
    settings.DATABASE_REPLICA_CHECK_INTERVAL_S = 1
    tracker, clock, _checked = _scripted_health([(True, "ok"), (True, "ok")])
    assert tracker.healthy(["replica_0"]) == ["replica_0"]
    tracker.mark_failed("replica_0", "a read failed")
    assert tracker.healthy(["replica_0"]) == []
    clock.now += 1.01
    assert tracker.healthy(["replica_0"]) == ["replica_0"]


@pytest.mark.django_db
def test_a_server_that_replicates_from_nothing_counts_as_healthy():
    status = ReplicaHealth()._check("default")
    if connections["default"].vendor == "mysql":
        # The test database server replicates from nothing; it is a Galera node when the
        # suite runs through HAProxy (CI's Galera section).
        assert status.healthy and status.kind in ("standalone", "galera"), status
    else:
        assert status.healthy and status.reason == "not a MySQL/MariaDB server"
