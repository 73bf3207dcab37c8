"""Drill: inbound messages under injected faults (issue 12), counted end to end.

N `message.received` events are stored in the inbox and processed by `process_event` as the
Celery task does, while faults are injected:
* deadlock  -- every 5th counter update (after the message insert) raises error 1213, as the
               counter-row deadlocks of the load runs did;
* early     -- every 10th event names an account whose `account.online` is applied only after
               the first pass (events processed in parallel);
* long      -- every 50th text is 1 MB.
Then the events left pending are processed again (the retry task / the sweep). Counted: lost
(an event DONE without its message), duplicated (two rows for one message id), stuck (events
PROCESSING or PENDING at the end), failed; and the time the second pass took.

Run: `BENCH_REDIS_URL=redis://127.0.0.1:6379/6 .venv/bin/python bench/drill_inbound_faults.py [--quick]`
(a database `wework_bench` is created and dropped; BENCH_DATABASE_URL overrides it).
"""
import sys
import time
from collections import Counter
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import bench_args, report, setup_django


def main():
    args = bench_args(__doc__.splitlines()[0])
    setup_django(args)
    from django.db import OperationalError

    from contacts.models import AccountStatus, WeworkAccount
    from instances import services
    from instances.models import EventState, InstanceEvent
    from instances.tests.factories import WeworkInstanceFactory
    from messaging import inbound
    from messaging.models import Message
    from wework import shards

    n = 100 if args.quick else 1000
    instance = WeworkInstanceFactory()
    WeworkAccount.objects.create(instance=instance, wxid="wxid_main", nickname="main", status=AccountStatus.ONLINE,
                                 is_logged_in=True)
    now = int(time.time() * 1000)
    pks = []
    for i in range(n):
        account = "wxid_late" if i % 10 == 0 else "wxid_main"
        text = ("长" * 350_000) if i % 50 == 1 else f"message {i}"
        event = {"event_id": f"drill-{i}", "type": "message.received", "instance_id": instance.instance_uuid,
                 "account_id": account, "seq": i + 1, "ts_ms": now,
                 "data": {"message_id": f"m{i}", "conversation_id": f"wxid_c{i}", "conversation_type": "single",
                          "sender": {"id": f"wxid_c{i}", "name": "C"}, "type": "text", "content": {"text": text},
                          "mentions": None, "mentions_self": False, "sent_at_ms": now + i, "is_self": False,
                          "is_history": False}}
        row, _dup = services.store_event(instance.pk, event)
        pks.append(row.pk)

    real = inbound.count_messages
    calls = Counter()

    def deadlocking(*a, **kw):
        calls["count"] += 1
        if calls["count"] % 5 == 0:
            raise OperationalError(1213, "Deadlock found when trying to get lock; try restarting transaction")
        return real(*a, **kw)

    # The retry task is eager here: let the first pass leave early events pending instead.
    with mock.patch.object(inbound, "count_messages", deadlocking), \
            mock.patch("instances.event_failures.transaction.on_commit", lambda fn: None):
        t0 = time.perf_counter()
        for pk in pks:
            services.process_event(pk)
        first_pass = time.perf_counter() - t0
    pending_after_first = InstanceEvent.objects.filter(pk__in=pks).exclude(state=EventState.DONE).count()
    WeworkAccount.objects.create(instance=instance, wxid="wxid_late", nickname="late", status=AccountStatus.ONLINE,
                                 is_logged_in=True)
    t0 = time.perf_counter()
    for pk in InstanceEvent.objects.filter(pk__in=pks, state=EventState.PENDING).values_list("pk", flat=True):
        services.process_event(pk)
    resume = time.perf_counter() - t0

    ids = Counter()
    truncated = 0
    for model in shards.shard_models(Message):
        for meta in model._base_manager.filter(account__instance=instance).values_list("message_metadata", flat=True):
            ids[meta["instance_message_id"]] += 1
            truncated += bool(meta.get("truncated"))
    states = Counter(InstanceEvent.objects.filter(pk__in=pks).values_list("state", flat=True))
    lost = sum(1 for i in range(n) if ids[f"m{i}"] == 0)
    report("events", n, "events")
    report("deadlocks injected", calls["count"] // 5, "deadlocks")
    report("not done after the first pass (early account)", pending_after_first, "events")
    report("lost (no message row)", lost, "messages", note="expected 0")
    report("duplicated", sum(1 for v in ids.values() if v > 1), "messages", note="expected 0")
    report("stored cut with truncated=true", truncated, "messages")
    report("stuck (pending or processing)", states[EventState.PENDING] + states[EventState.PROCESSING], "events",
           note="expected 0")
    report("failed", states[EventState.FAILED], "events", note="expected 0")
    report("first pass", first_pass, "s")
    report("time to resume the early events", resume, "s")


if __name__ == "__main__":
    main()
