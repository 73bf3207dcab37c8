"""Claims: concurrent workers never take the same receiver; stale claims come back."""
import threading

import pytest
from django.db import close_old_connections, connection
from django.utils import timezone

from messaging import dispatch, services
from messaging.models import MessageReceiver, ReceiverSendStatus as RS

pytestmark = pytest.mark.django_db(transaction=True)


def _task(world, n):
    receivers = [{"wxid": w} for w in world.contacts[:n]]
    return services.create_task(world.admin, account=world.account, message_type="text", content="x",
                                receivers=receivers, start=False)


def test_concurrent_claims_are_disjoint(world):
    if connection.vendor == "sqlite" and connection.is_in_memory_db():
        pytest.skip("in-memory SQLite (shared cache) locks tables instead of waiting: set TEST_SQLITE_NAME")
    task = _task(world, 60)
    got, errors = [], []
    lock = threading.Lock()

    def worker():
        try:
            while True:
                rows = dispatch.claim(task.pk, 7)
                if not rows:
                    break
                with lock:
                    got.extend(r["id"] for r in rows)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert len(got) == len(set(got)) == 60
    assert MessageReceiver.objects.filter(task=task, send_status=RS.SENDING).count() == 60


def test_stale_claims_reclaimed_and_resent_with_same_uuid(world, sim):
    task = _task(world, 3)
    # A worker claimed and prepared the messages, sent one, then died.
    d = dispatch.Dispatcher(task.pk)
    d._load()
    d.client = dispatch.client_factory(d.instance)
    d.batch = 10
    prepared, _ = d._claim(0)
    d._send(prepared[0])
    before = dict(sim.receipts)
    assert len(before) == 1
    from messaging.models import MessageTask, TaskStatus

    MessageTask.objects.filter(pk=task.pk).update(status=TaskStatus.RUNNING)
    assert dispatch.reclaim_stale(now=timezone.now() + timezone.timedelta(hours=1)) == 3
    dispatch.run(task.pk)
    task.refresh_from_db()
    assert task.status == TaskStatus.COMPLETED and task.success_count == 3
    # the first message was re-sent with its uuid (a duplicate the instance ignored)
    assert len(sim.messages) == 3
    uuid0 = prepared[0].message_uuid
    assert sim.receipts[uuid0] == 2


def test_late_outcome_after_reclaim_counts_once(world):
    task = _task(world, 1)
    rows = dispatch.claim(task.pk, 1)
    out = dispatch.Outcome(rows[0]["id"], None, "success")
    assert dispatch.apply_outcomes(task.pk, [out])["success"] == 1
    assert dispatch.apply_outcomes(task.pk, [out])["success"] == 0
    task.refresh_from_db()
    assert task.success_count == 1


def test_cancel_during_dispatch_skips_released_receivers(world):
    from messaging.models import MessageTask, TaskStatus

    task = _task(world, 4)
    MessageTask.objects.filter(pk=task.pk).update(status=TaskStatus.RUNNING)
    rows = dispatch.claim(task.pk, 4)  # a dispatcher holds them
    services.cancel_task(task)
    # it notices the cancel and hands back what it did not send
    dispatch.apply_outcomes(task.pk, [dispatch.Outcome(r["id"], None, "release") for r in rows[1:]])
    assert MessageReceiver.objects.filter(task=task, send_status=RS.SKIPPED).count() == 3
    # the one it died holding (no message yet) is skipped by the reclaim
    dispatch.reclaim_stale(now=timezone.now() + timezone.timedelta(hours=1))
    assert MessageReceiver.objects.filter(task=task, send_status=RS.SKIPPED).count() == 4


def test_rows_locked_for_a_moment_by_another_claim_do_not_idle_the_dispatcher(world, sim):
    """SKIP LOCKED skips rows another transaction holds (a concurrent claim scanning the same
    index locks rows it then rejects): the dispatcher looks again instead of going idle until
    beat's next kick."""
    if not connection.features.has_select_for_update_skip_locked:
        pytest.skip("no SKIP LOCKED on this database")
    from messaging.models import MessageTask, TaskStatus

    task = _task(world, 3)
    MessageTask.objects.filter(pk=task.pk).update(status=TaskStatus.RUNNING)
    locked, release = threading.Event(), threading.Event()

    def hold():
        from django.db import transaction

        try:
            with transaction.atomic():
                list(MessageReceiver.objects.select_for_update().filter(task=task))
                locked.set()
                release.wait(5)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    assert locked.wait(5)
    threading.Timer(0.5, release.set).start()
    try:
        result = dispatch.run(task.pk)
    finally:
        release.set()
        holder.join()
    task.refresh_from_db()
    assert result == "completed" and task.success_count == 3
