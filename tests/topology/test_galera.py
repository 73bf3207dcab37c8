"""Three Galera nodes behind HAProxy (scripts/services up galera): the platform runs on the
write port with its replica URL on the read port; what Galera does differently is handled:
certification conflicts (a deadlock error at COMMIT) are retried for idempotent work, shard
DDL replicates in total order, SKIP LOCKED claims work on the write node, and a killed write
node costs 503s for a few seconds, never a 500 or a 200 for what was not stored.
Run by `scripts/test-topology galera`."""
import threading
import time

import pytest
from django.db import close_old_connections, connection, connections, transaction
from django.db.models import F
from django.utils import timezone

from wework.testing.concurrency import run_at_once
from wework.testing.fixtures import login_verified
from messaging.models import MessageTemplate
from messaging.tests.factories import MessageTemplateFactory
from wework import shards
from wework.db import errors as db_errors
from wework.db.retry import run_idempotent

from .conftest import (
    GALERA_PORTS, HAPROXY_WRITE_PORT, connect, database_name, eventually, haproxy, services, sql,
)

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def _write_node_port():
    with connection.cursor() as cursor:
        cursor.execute("SELECT @@port")
        return cursor.fetchone()[0]


def _other_node(port):
    return next(p for p in GALERA_PORTS if p != port)


def test_the_platform_runs_through_the_proxy_on_a_synced_cluster(replica_health):
    with connection.cursor() as cursor:
        cursor.execute("SELECT @@wsrep_on, @@port")
        wsrep_on, port = cursor.fetchone()
        cursor.execute("SHOW STATUS LIKE 'wsrep_cluster_size'")
        size = int(cursor.fetchone()[1])
    assert wsrep_on == 1 and port in GALERA_PORTS and size == 3
    assert connection.settings_dict["PORT"] in (HAPROXY_WRITE_PORT, str(HAPROXY_WRITE_PORT))
    status = replica_health.status("replica_0")
    assert status.healthy and status.kind == "galera", status
    # A row written through the write port is on every node (synchronous replication).
    template = MessageTemplateFactory(name="everywhere")
    for node in GALERA_PORTS:
        conn = connect(node, db=database_name())
        try:
            cursor = conn.cursor()
            cursor.execute("SET SESSION wsrep_sync_wait = 1")  # causal read on that node
            cursor.execute("SELECT name FROM message_templates WHERE id = %s", [template.pk])
            assert cursor.fetchone() == ("everywhere",)
        finally:
            conn.close()


def test_a_certification_conflict_surfaces_at_commit_as_a_deadlock():
    template = MessageTemplateFactory()
    first, second = (connect(p, db=database_name()) for p in GALERA_PORTS[:2])
    try:
        a, b = first.cursor(), second.cursor()
        for cursor in (a, b):
            cursor.execute("SET SESSION wsrep_sync_wait = 7")  # see the row written through the proxy
        a.execute("BEGIN")
        b.execute("BEGIN")
        # Row locks are local to a node: both updates go through at once ...
        a.execute("UPDATE message_templates SET use_count = use_count + 1 WHERE id = %s", [template.pk])
        b.execute("UPDATE message_templates SET use_count = use_count + 10 WHERE id = %s", [template.pk])
        a.execute("COMMIT")
        # ... and the second to commit loses at certification.
        with pytest.raises(Exception) as raised:
            b.execute("COMMIT")
        assert db_errors.classify(raised.value) == db_errors.CONFLICT
        assert raised.value.args[0] == 1213
    finally:
        first.close()
        second.close()
    template.refresh_from_db()
    assert template.use_count == 1


def test_the_retry_helper_repeats_a_transaction_that_lost_certification():
    template = MessageTemplateFactory()
    other = connect(_other_node(_write_node_port()), db=database_name())
    # Causal: that node applies what the write node committed before it updates (without it, a
    # node that is still applying the INSERT above updates nothing, and nothing conflicts).
    other.cursor().execute("SET SESSION wsrep_sync_wait = 7")
    attempts = []

    def use_template():
        attempts.append(1)
        MessageTemplate.objects.filter(pk=template.pk).update(use_count=F("use_count") + 1)
        if len(attempts) == 1:
            # Another node commits a change of the same row before this transaction does.
            other.cursor().execute("UPDATE message_templates SET use_count = use_count + 100 WHERE id = %s",
                                   [template.pk])

    try:
        run_idempotent(use_template, sleep=lambda s: None)
    finally:
        other.close()
    assert len(attempts) == 2
    template.refresh_from_db()
    assert template.use_count == 101


def test_shard_ddl_replicates_in_total_order_to_every_node():
    from monitoring.models import SystemLog

    day = timezone.now()
    errors = []

    def create():
        try:
            # Two writers need the same new shard at once.
            shards.create(SystemLog, level="INFO", service="t", module="t", message="x", context={},
                          log_uuid=shards.new_uuid(), created_at=day)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=create) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    table = shards.model_for(SystemLog, when=day)._meta.db_table
    for node in GALERA_PORTS:
        rows = sql(node, "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = %s AND table_name = %s",
                   [database_name(), table], causal=True)
        assert rows[0][0] == 1, f"{table} missing on node {node}"
        assert sql(node, f"SELECT COUNT(*) FROM `{table}`", db=database_name(), causal=True)[0][0] == 2
    # A shard created inside a transaction (on a separate connection, see shards/ddl.py).
    with transaction.atomic():
        later = shards.model_for(SystemLog, when=day + timezone.timedelta(days=1))
        later._default_manager.count()
    assert sql(GALERA_PORTS[2], "SELECT COUNT(*) FROM information_schema.tables WHERE table_name = %s",
               [later._meta.db_table], causal=True)[0][0] >= 1


def test_a_shard_created_through_another_node_is_applied_on_the_callers_node_before_it_is_used(
        monkeypatch, caplog):
    """Shard DDL runs on a dedicated connection. When that connection reaches another node than
    the caller's (the proxy moved the write node between the two connects), the caller's node
    may not have applied the CREATE yet: creating the shard waits for it (a causal read) rather
    than letting the caller's next statement fail with "table doesn't exist". The caller's node
    is held back on purpose here: its applier is paused (FLUSH TABLES WITH READ LOCK) for 1.5 s,
    with HAProxy's checks of it suspended so that the proxy keeps the caller's session."""
    from monitoring.models import SystemLog

    caller_port = _write_node_port()
    other_port = _other_node(caller_port)
    create_connection = connections.create_connection

    def on_the_other_node(alias):
        wrapper = create_connection(alias)
        wrapper.settings_dict = {**wrapper.settings_dict, "HOST": "127.0.0.1", "PORT": str(other_port)}
        return wrapper

    day = timezone.now() + timezone.timedelta(days=1)
    server = f"galera_nodes/node{GALERA_PORTS.index(caller_port) + 1}"
    pause = connect(caller_port)
    haproxy(f"disable health {server}")
    try:
        pause.cursor().execute("FLUSH TABLES WITH READ LOCK")  # pauses the node's applier
        resume = threading.Timer(1.5, lambda: pause.cursor().execute("UNLOCK TABLES"))
        monkeypatch.setattr(connections, "create_connection", on_the_other_node)
        started = time.monotonic()
        resume.start()
        with caplog.at_level("WARNING", logger="wework.shards"):
            model = shards.model_for(SystemLog, when=day)
        waited = time.monotonic() - started
        monkeypatch.undo()
        resume.join()
        # The caller's connection (through the proxy, on the paused node) uses it at once.
        assert model._default_manager.count() == 0
        shards.create(SystemLog, level="INFO", service="t", module="t", message="x", context={},
                      log_uuid=shards.new_uuid(), created_at=day)
    finally:
        resume.cancel()
        pause.close()
        haproxy(f"enable health {server}")
    assert _write_node_port() == caller_port
    assert waited >= 1.0, waited  # it did wait for the node
    assert any("not yet applied on this connection's Galera node" in r.getMessage() for r in caplog.records)
    assert sql(other_port, f"SELECT COUNT(*) FROM `{model._meta.db_table}`", db=database_name(), causal=True) == ((1,),)


def _open_transaction_writing(table, pk):
    """A connection of its own on the write node with an open transaction that updated one row
    of `table` (it holds the table's metadata lock until it ends)."""
    conn = connect(_write_node_port(), db=database_name())
    cursor = conn.cursor()
    cursor.execute("BEGIN")
    cursor.execute(f"UPDATE `{table}` SET updated_at = updated_at WHERE id = %s", [pk])
    return conn


def _still_commits(conn):
    """The transaction was not brute-force aborted: it reads and commits (else 1213)."""
    try:
        cursor = conn.cursor()
        cursor.execute("SELECT 1")
        cursor.execute("COMMIT")
    finally:
        conn.close()


def test_creating_a_shard_aborts_no_transaction_on_the_tables_its_foreign_keys_reference():
    """An ALTER TABLE (CREATE INDEX and ADD FOREIGN KEY included) of a table with foreign keys
    runs in total-order isolation and brute-force aborts every open transaction on the node
    that wrote a table those keys point at: Django's CREATE TABLE + ALTERs + the alignment with
    the base table failed such transactions with 1213 (whole-suite runs on Galera failed a
    different shard test each time). A new shard is one CREATE TABLE with its foreign keys
    inline (wework/shards/create_table.py), which aborts nobody."""
    from contacts.tests.factories import WeworkAccountFactory
    from instances.models import InstanceMonitor
    from messaging.models import Message
    from wework.shards import ddl, fidelity, router
    from wework.shards.conf import config_for, period_of

    account, own = WeworkAccountFactory(), WeworkAccountFactory()
    cases = [(Message, "wework_accounts", account.pk, own.pk),
             (InstanceMonitor, "wework_instances", account.instance_id, own.instance_id)]
    for base, parent, pk, own_pk in cases:
        conf = config_for(base)
        period = period_of(conf.by, timezone.now() - timezone.timedelta(days=300))
        table = router._time_model(base, conf, period)[1]
        assert not ddl.table_exists(table)
        writer = _open_transaction_writing(parent, pk)
        # Outside a transaction (a rotation creating shards ahead) ...
        model = router.ensure_time_shard(base, period, check_range=False)
        _still_commits(writer)
        assert ddl.missing_foreign_keys(model, connection) == []
        assert fidelity.align(model, connection, apply=False) == []
        # ... and inside a transaction that wrote the parent table itself (a request that
        # stores an account, then its first message), foreign keys included.
        later = period.next()
        writer = _open_transaction_writing(parent, pk)
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(f"UPDATE `{parent}` SET updated_at = updated_at WHERE id = %s", [own_pk])
            model = router.ensure_time_shard(base, later, check_range=False)
            model._default_manager.count()
        _still_commits(writer)
        assert ddl.missing_foreign_keys(model, connection) == []
    # No scratch table is left behind.
    leftovers = sql(_write_node_port(), "SELECT table_name FROM information_schema.tables "
                    "WHERE table_schema = %s AND table_name LIKE %s", [database_name(), "%\\_\\_new\\_%"])
    assert leftovers == ()


def test_concurrent_writers_create_a_shard_without_a_deadlock(monkeypatch):
    """Six writers need the same missing shard at once: no statement is aborted (the retry of
    router._retry_aborted is switched off here, so any 1213 would fail the test)."""
    from contacts.tests.factories import WeworkAccountFactory
    from messaging.models import Message
    from wework.shards import router

    monkeypatch.setattr(router, "ABORT_RETRIES", 1)
    account = WeworkAccountFactory()
    when = timezone.now() - timezone.timedelta(days=200)
    made = []

    def writer(n):
        for i in range(3):
            made.append(shards.create(Message, account_id=account.pk, chat_type=1, chat_wxid=f"c{n}",
                                      message_type="text", message_content=f"{n}-{i}",
                                      created_at=when).id)

    assert run_at_once(writer, 6) == []
    assert shards.model_for(Message, when=when, create=False)._default_manager.count() == 18 == len(set(made))


def test_skip_locked_claims_are_disjoint_on_the_write_node():
    db = database_name()
    sql(HAPROXY_WRITE_PORT, "CREATE TABLE claim_queue (id INT PRIMARY KEY, owner VARCHAR(10) NULL)", db=db)
    try:
        sql(HAPROXY_WRITE_PORT, "INSERT INTO claim_queue (id) VALUES " + ",".join(f"({i})" for i in range(1, 11)), db=db)
        # Two workers, each with its own connection through the write port (so the same node).
        w1, w2 = connect(HAPROXY_WRITE_PORT, db=db), connect(HAPROXY_WRITE_PORT, db=db)
        claimed = {}
        for name, conn in (("w1", w1), ("w2", w2)):
            cursor = conn.cursor()
            cursor.execute("BEGIN")
            cursor.execute("SELECT id FROM claim_queue WHERE owner IS NULL ORDER BY id LIMIT 5 FOR UPDATE SKIP LOCKED")
            claimed[name] = [row[0] for row in cursor.fetchall()]
            cursor.execute("UPDATE claim_queue SET owner = %s WHERE id IN (" + ",".join(["%s"] * len(claimed[name])) + ")",
                           [name, *claimed[name]])
        for conn in (w1, w2):
            conn.cursor().execute("COMMIT")
            conn.close()
        assert claimed == {"w1": [1, 2, 3, 4, 5], "w2": [6, 7, 8, 9, 10]}
    finally:
        sql(HAPROXY_WRITE_PORT, "DROP TABLE claim_queue", db=db)


def test_claims_through_two_nodes_are_disjoint_and_retried_at_commit(caplog):
    """SKIP LOCKED sees the locks of one node only. When claimers reach two nodes (the proxy
    moved the write node while older connections stayed), two claims can lock the same PENDING
    rows; Galera commits one and fails the other at COMMIT (1213). claims.claim runs the loser
    again: every receiver is claimed exactly once and no claimer fails."""
    import logging

    from messaging.dispatch import claims
    from messaging.models import MessageReceiver, ReceiverSendStatus as RS
    from messaging.tests.factories import MessageTaskFactory

    caplog.set_level(logging.INFO, logger="wework.db.retry")
    db, nodes = database_name(), GALERA_PORTS[:2]
    conflicts = 0
    for round_ in range(10):
        task = MessageTaskFactory(target_count=60)
        MessageReceiver.objects.bulk_create(
            [MessageReceiver(task=task, receiver_type=1, receiver_wxid=f"w{round_}-{i}") for i in range(60)])
        for port in nodes:  # both nodes have the rows before the claimers start
            assert sql(port, "SELECT COUNT(*) FROM message_receivers WHERE task_id = %s", [task.pk], db=db,
                       causal=True)[0][0] == 60
        got, errors, lock = [], [], threading.Lock()

        def claimer(port):
            connection.settings_dict = {**connection.settings_dict, "PORT": port}
            try:
                while rows := claims.claim(task.pk, 7):
                    with lock:
                        got.extend(r["id"] for r in rows)
            except Exception as exc:  # noqa: BLE001
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=claimer, args=(nodes[i % 2],)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors, errors
        assert len(got) == len(set(got)) == 60
        assert MessageReceiver.objects.filter(task=task, send_status=RS.SENDING).count() == 60
        conflicts = sum("claims.claim: conflict" in r.getMessage() for r in caplog.records)
        if conflicts:
            break
    # The case happened (the claims did meet on two nodes) and was retried.
    assert conflicts, "no claim met another on the other node in 10 rounds"


def _server_name(port):
    return f"node{GALERA_PORTS.index(port) + 1}"


def test_after_a_failover_every_connection_reaches_the_node_that_took_over():
    """The write port's stick table keeps the node that took over, also when the old node is
    back and many clients connect at once. With a one-entry table, HAProxy made room for each
    connection's store by evicting the entry, and a connection arriving meanwhile was balanced
    to the returned first node: a second writer (CI saw a shard missing, then a task's pause
    not seen)."""
    old = _write_node_port()
    connections.close_all()
    haproxy(f"set server galera_write/{_server_name(old)} state maint")
    try:
        first = connect(HAPROXY_WRITE_PORT)
        try:
            cursor = first.cursor()
            cursor.execute("SELECT @@port")
            took_over = cursor.fetchone()[0]
        finally:
            first.close()
        assert took_over != old
    finally:
        haproxy(f"set server galera_write/{_server_name(old)} state ready")
    try:
        reached = []

        def connect_many(_n):
            for _ in range(40):
                conn = connect(HAPROXY_WRITE_PORT)
                try:
                    cursor = conn.cursor()
                    cursor.execute("SELECT @@port")
                    reached.append(cursor.fetchone()[0])
                finally:
                    conn.close()

        assert run_at_once(connect_many, threads=12) == []
        counts = {port: reached.count(port) for port in set(reached)}
        assert counts == {took_over: 480}, f"write port connections by node port: {counts}"
    finally:
        # Back to the first node as writer, as the other tests expect a fresh cluster to be.
        haproxy("clear table galera_write")
        connections.close_all()


def test_a_killed_write_node_costs_503s_for_seconds_never_a_500_or_a_lost_write(client, django_user_model, replica_health):
    """Requests keep coming while the write node is killed: each is a 201 (stored) or a 503
    (maybe stored: the client retries); none is a 500; writes resume on another node."""
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw-root-123")
    login_verified(client, admin)
    # As a server answers: the 503 is returned, not re-raised into the test.
    client.raise_request_exception = False
    victim = _write_node_port()
    node = f"galera{GALERA_PORTS.index(victim) + 1}"
    answers = []  # (time, status, name)
    stop = threading.Event()

    def traffic():
        try:
            n = 0
            while not stop.is_set():
                n += 1
                name = f"drill-{n}"
                # What Django's handler does at every request start (the test client does not):
                # a connection that broke is replaced, through the proxy, to a healthy node.
                close_old_connections()
                try:
                    response = client.post("/api/v1/messaging/templates/", {
                        "name": name, "message_type": "text", "content": "Hello"},
                        content_type="application/json")
                    answers.append((time.monotonic(), response.status_code, name, response))
                except Exception as exc:  # noqa: BLE001 - the test client re-raises what a server would turn into a 500
                    answers.append((time.monotonic(), 500, name, exc))
                time.sleep(0.05)
        finally:
            connections.close_all()

    thread = threading.Thread(target=traffic)
    thread.start()
    try:
        eventually(lambda: sum(1 for a in answers if a[1] == 201) >= 5, timeout=20, message="traffic")
        killed_at = time.monotonic()
        services("kill", node)
        eventually(lambda: any(a[0] > killed_at and a[1] == 201 for a in answers), timeout=30,
                   message="writes resuming on another node")
        time.sleep(1.0)
    finally:
        stop.set()
        thread.join(timeout=60)
        close_old_connections()
        connections.close_all()  # this thread's connection went down with the node too
    try:
        statuses = {a[1] for a in answers}
        assert statuses <= {201, 503}, [(a[1], a[3]) for a in answers if a[1] not in (201, 503)][:3]
        for _t, status, _name, response in answers:
            if status == 503:
                assert response["Content-Type"] == "application/json" and response["Retry-After"]
        stored = set(MessageTemplate.objects.filter(name__startswith="drill-").values_list("name", flat=True))
        created = {a[2] for a in answers if a[1] == 201}
        assert created <= stored  # every 201 is stored
        resumed = next(a[0] for a in answers if a[0] > killed_at and a[1] == 201) - killed_at
        unavailable = sum(1 for a in answers if a[1] == 503)
        assert _write_node_port() != victim
        print(f"\nwrite node {node} killed: {unavailable} requests answered 503, writes resumed after {resumed:.2f} s; "
              f"{len(created)} created, {len(stored)} stored")
    finally:
        services("up", "galera")
