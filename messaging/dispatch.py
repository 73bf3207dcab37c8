"""Dispatch: workers claim receivers in batches, pace per account, send, record results.

Guarantees (see docs/messaging.md):
- **No two workers send the same receiver.** A claim moves receivers PENDING → SENDING in one
  transaction, selected with `SELECT ... FOR UPDATE SKIP LOCKED` on MariaDB 10.6+/MySQL 8
  (concurrent claimers skip each other's rows instead of waiting), and under SQLite's
  IMMEDIATE transactions (one writer at a time) elsewhere.
- **Nothing is sent twice.** Before anything is sent, the claim transaction creates the
  receiver's message row (in the monthly shard) with its `message_uuid` and links it
  (`message_receivers.message_id`). The uuid is the instance's `client_msg_id`: a repeated send
  after a crash or a reclaimed claim returns the first result and sends nothing.
- **Nothing is lost.** A worker killed at any moment leaves its receivers in SENDING; a claim
  older than CLAIM_TIMEOUT_S is handed back (PENDING) by `reclaim_stale()` (beat), and the next
  claim re-sends with the same uuid. Celery runs with acks_late + reject_on_worker_lost, and
  beat re-enqueues dispatchers for running tasks whose dispatchers vanished (leases in Redis).
- **Results are exact.** Every state change is a conditional UPDATE (`WHERE send_status =
  SENDING`); task counters grow by the number of rows that actually changed, in the same
  transaction; `services.rebuild_counters()` recomputes them from the rows at any time.
- **Acknowledgements.** The instance answers a send with `queued` and reports the outcome as a
  `message.status` event (inbound.handle_message_status). A dispatcher also polls the status
  of its in-flight messages that are still unconfirmed after ACK_POLL_AFTER_S, so a lost
  webhook delays nothing.
"""
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import ExpressionWrapper, F, FloatField, Q, Value
from django.db.models.functions import Least, Round
from django.utils import timezone
from django.utils.translation import gettext as _

from instances import protocol
from wework import shards

from . import conf, content as content_mod, pacing, rendering
from .models import (
    ChatType,
    Message,
    MessageReceiver,
    MessageTask,
    ReceiverSendStatus as RS,
    ReceiverType,
    SendStatus,
    TaskStatus,
)

log = logging.getLogger("messaging.dispatch")

def _lease_ttl():
    return int(conf.get("LEASE_TTL_S"))

PROGRESS = Least(
    Round(
        ExpressionWrapper(
            (F("success_count") + F("fail_count")) * Value(100.0) / F("target_count"), output_field=FloatField()
        ),
        2,
    ),
    Value(100.0),
    output_field=FloatField(),
)

# Error codes of the protocol, by what the dispatcher does with them.
STOP_ACCOUNT = {"risk_control"}
PAUSE_TASK = {"not_logged_in", "account_offline", "unauthorized", "client_version_mismatch",
              "unsupported_protocol_version"}
RETRY_SAME_UUID = {"unreachable", "timeout", "invalid_response"}  # the instance may have it
RETRY_NEW_UUID = {"rate_limited", "internal"}  # a definite refusal: a repeat needs a new uuid
# everything else (target_not_found, unsupported_type, media_fetch_failed, invalid_request,
# failed without a code, template_error) fails the receiver for good.


def _setting(name):
    return conf.get(name)


# ------------------------------------------------------------------------------------------
# Outcomes and applying them
# ------------------------------------------------------------------------------------------

@dataclass
class Outcome:
    receiver_id: int
    message_id: int | None
    kind: str  # success | queued | failed | retry | release | defer | touch
    code: str | None = None
    error: str | None = None
    keep_message: bool = True
    delay_s: float = 0.0
    retry_count: int = 0
    instance_message_id: str | None = None


def classify(code, retry_count, max_retry):
    """(kind, keep_message) for an error code."""
    if code in RETRY_SAME_UUID or code in RETRY_NEW_UUID:
        if retry_count < max_retry:
            return "retry", code in RETRY_SAME_UUID
        return "failed", True
    return "failed", True


def backoff_s(retry_count, retry_after_s=None):
    base = float(_setting("RETRY_BASE_S"))
    value = min(float(_setting("RETRY_MAX_S")), base * (2 ** retry_count))
    if retry_after_s:
        value = max(value, float(retry_after_s))
    return value


def _msg_updates(message_ids, **fields):
    """UPDATE messages (in their monthly shards) by id."""
    if not message_ids:
        return 0
    n = 0
    for model, ids in shards.group_ids_by_shard(Message, message_ids).items():
        n += model._base_manager.filter(pk__in=ids).update(**fields)
    return n


def apply_outcomes(task_id, outcomes, account_id=None, instance_id=None, now=None):
    """Record outcomes in one transaction; returns {"success": n, "failed": n, "retry": n}.

    Receiver rows change only while they are SENDING, so a late or repeated outcome (two
    workers after a reclaim, a webhook after a poll) changes nothing and counts nothing.
    """
    from . import services

    if not outcomes:
        return {"success": 0, "failed": 0, "retry": 0}
    now = now or timezone.now()
    # An acknowledgement read before the flush supersedes the "queued" answer of the same send:
    # one write with the final state instead of two.
    final = {o.receiver_id for o in outcomes if o.kind not in ("queued", "touch")}
    if final:
        outcomes = [o for o in outcomes if o.kind not in ("queued", "touch") or o.receiver_id not in final]
    by_kind = {}
    for o in outcomes:
        by_kind.setdefault(o.kind, []).append(o)
    done = {"success": 0, "failed": 0, "retry": 0}
    R = MessageReceiver.objects
    with transaction.atomic():
        ok = by_kind.get("success", [])
        if ok:
            n = R.filter(pk__in=[o.receiver_id for o in ok], send_status=RS.SENDING).update(
                send_status=RS.SUCCESS, send_time=now, error_code=None, error_message=None, updated_at=now
            )
            done["success"] = n
            _msg_updates([o.message_id for o in ok if o.message_id], send_status=SendStatus.SUCCESS,
                         send_time=now, receive_time=now, error_code=None, error_message=None)
        groups = {}
        for o in by_kind.get("failed", []):
            groups.setdefault((o.code, o.error), []).append(o)
        for (code, error), items in groups.items():
            n = R.filter(pk__in=[o.receiver_id for o in items], send_status=RS.SENDING).update(
                send_status=RS.FAILED, send_time=now, error_code=(code or "failed")[:50],
                error_message=error, updated_at=now,
            )
            done["failed"] += n
            _msg_updates([o.message_id for o in items if o.message_id], send_status=SendStatus.FAILED,
                         error_code=(code or "failed")[:50], error_message=error)
        groups = {}
        for o in by_kind.get("retry", []):
            groups.setdefault((o.code, o.error, o.keep_message, round(o.delay_s)), []).append(o)
        for (code, error, keep, delay), items in groups.items():
            fields = dict(
                send_status=RS.PENDING, retry_count=F("retry_count") + 1,
                send_time=now + timedelta(seconds=delay), error_code=(code or "")[:50] or None,
                error_message=error, updated_at=now,
            )
            if not keep:
                fields["message_id"] = None
            n = R.filter(pk__in=[o.receiver_id for o in items], send_status=RS.SENDING).update(**fields)
            done["retry"] += n
            if not keep:
                _msg_updates([o.message_id for o in items if o.message_id], send_status=SendStatus.FAILED,
                             error_code=(code or "")[:50] or None, error_message=error)
        queued = by_kind.get("queued", []) + by_kind.get("touch", [])
        if queued:
            R.filter(pk__in=[o.receiver_id for o in queued], send_status=RS.SENDING).update(updated_at=now)
        q = by_kind.get("queued", [])
        if q:
            _msg_updates([o.message_id for o in q if o.message_id], send_status=SendStatus.SENDING, send_time=now)
        groups = {}
        for o in by_kind.get("defer", []):
            # rounded up to the second: send_time is a DATETIME without fractions (the design),
            # and a truncated due time would come back before the conversation is free
            due = now + timedelta(seconds=o.delay_s)
            if due.microsecond:
                due = due.replace(microsecond=0) + timedelta(seconds=1)
            groups.setdefault(due, []).append(o)
        for due, items in groups.items():
            # waiting for its conversation: back to PENDING, due later; no retry is used
            R.filter(pk__in=[o.receiver_id for o in items], send_status=RS.SENDING).update(
                send_status=RS.PENDING, send_time=due, updated_at=now
            )
        rel = by_kind.get("release", [])
        if rel:
            cancelled = MessageTask.objects.filter(pk=task_id, status=TaskStatus.CANCELLED).exists()
            # Released receivers were never handed to the instance: in a cancelled task they are
            # skipped, otherwise they wait for the next claim.
            fields = (dict(send_status=RS.SKIPPED, error_code="cancelled", error_message=_("Task cancelled."))
                      if cancelled else dict(send_status=RS.PENDING))
            R.filter(pk__in=[o.receiver_id for o in rel], send_status=RS.SENDING).update(updated_at=now, **fields)
        if done["success"] or done["failed"]:
            MessageTask.objects.filter(pk=task_id).update(
                success_count=F("success_count") + done["success"],
                fail_count=F("fail_count") + done["failed"],
                updated_at=now,
            )
            MessageTask.objects.filter(pk=task_id, target_count__gt=0).update(progress=PROGRESS)
        if done["success"] and account_id:
            services.count_messages(account_id, instance_id, done["success"])
    return done


# ------------------------------------------------------------------------------------------
# Claims
# ------------------------------------------------------------------------------------------

def _claimable(task_id, now):
    return MessageReceiver.objects.filter(task_id=task_id, send_status=RS.PENDING).filter(
        Q(send_time__isnull=True) | Q(send_time__lte=now)
    )


CLAIM_FIELDS = ("id", "receiver_type", "receiver_wxid", "receiver_name", "message_id", "retry_count", "variables")


def _lock_claimable(task_id, limit, after_id, now):
    """Rows of up to `limit` due PENDING receivers with id > after_id, locked for the caller's
    transaction; concurrent claimers skip each other's rows (SKIP LOCKED)."""
    qs = _claimable(task_id, now).filter(pk__gt=after_id).order_by("pk")
    if connection.features.has_select_for_update_skip_locked:
        qs = qs.select_for_update(skip_locked=True)
    return list(qs.values(*CLAIM_FIELDS)[:limit])


def mark_claimed(receiver_ids, links=None, now=None, chunk=1000):
    """Move receivers to SENDING and, for those in `links` ({receiver_id: message_id}), link
    their new message row: one UPDATE per chunk."""
    now = now or timezone.now()
    links = links or {}
    table = connection.ops.quote_name(MessageReceiver._meta.db_table)
    stamp = MessageReceiver._meta.get_field("updated_at").get_db_prep_save(now, connection)
    for start in range(0, len(receiver_ids), chunk):
        part = receiver_ids[start : start + chunk]
        linked = [(rid, links[rid]) for rid in part if rid in links]
        sql = f"UPDATE {table} SET send_status = %s, updated_at = %s"
        params = [int(RS.SENDING), stamp]
        if linked:
            sql += f", message_id = CASE id {' '.join(['WHEN %s THEN %s'] * len(linked))} ELSE message_id END"
            params.extend(v for pair in linked for v in pair)
        sql += f" WHERE id IN ({', '.join(['%s'] * len(part))})"
        params.extend(part)
        with connection.cursor() as cur:
            cur.execute(sql, params)


def claim(task_id, limit, after_id=0, now=None):
    """Claim up to `limit` due PENDING receivers with id > after_id; returns their rows (dicts),
    SENDING from now on. Committed before the caller sends anything. (The dispatcher claims
    with `Dispatcher._claim`, which also creates the message rows in the same transaction.)"""
    now = now or timezone.now()
    with transaction.atomic():
        rows = _lock_claimable(task_id, limit, after_id, now)
        if rows:
            mark_claimed([r["id"] for r in rows], now=now)
    return rows


def insert_messages(rows, chunk=500):
    """Insert message rows (dicts of Message fields, all with the same keys) into their monthly
    shards with multi-row INSERTs; returns their ids, in order. Like `shards.bulk_create`
    (ids from the Snowflake clock, `created_at` the id's time), without building a model
    instance and an expression per value: a claim's rows are written in one statement."""
    if not rows:
        return []
    ids = [shards.new_id() for _row in rows]
    keys = list(rows[0])
    # Values the rows share (account, task, type, ...) are converted once.
    shared = {k for k in keys if all(row[k] == rows[0][k] for row in rows[1:])}
    qn = connection.ops.quote_name
    for mid in (ids[0], ids[-1]):  # creates a missing shard (new ids: this month, maybe the next)
        shards.model_for(Message, when=shards.id_time(mid))
    groups = shards.group_ids_by_shard(Message, ids)
    if sum(len(g) for g in groups.values()) != len(ids):
        raise shards.ShardMissing("A shard of new message ids does not exist.")
    for model, group in groups.items():
        by_name = {f.attname: f for f in model._meta.local_concrete_fields}
        fields = [by_name["id"], by_name["created_at"]] + [by_name[k] for k in keys]
        constant = {k: by_name[k].get_db_prep_save(rows[0][k], connection) for k in shared}
        columns = ", ".join(qn(f.column) for f in fields)
        row_marks = "(" + ", ".join(["%s"] * len(fields)) + ")"
        created = by_name["created_at"]
        members = set(group)
        items = [(mid, row) for mid, row in zip(ids, rows) if mid in members]
        for start in range(0, len(items), chunk):
            part = items[start : start + chunk]
            params = []
            for mid, row in part:
                params.append(mid)
                params.append(created.get_db_prep_save(shards.id_time(mid), connection))
                params.extend(
                    constant[f.attname] if f.attname in constant else f.get_db_prep_save(row[f.attname], connection)
                    for f in fields[2:]
                )
            with connection.cursor() as cur:
                cur.execute(
                    f"INSERT INTO {qn(model._meta.db_table)} ({columns}) VALUES {', '.join([row_marks] * len(part))}",
                    params,
                )
    return ids


def reclaim_stale(task_id=None, now=None, timeout_s=None):
    """Hand back claims older than CLAIM_TIMEOUT_S (their worker died or stalled)."""
    now = now or timezone.now()
    timeout_s = float(timeout_s if timeout_s is not None else _setting("CLAIM_TIMEOUT_S"))
    stale = MessageReceiver.objects.filter(send_status=RS.SENDING, updated_at__lt=now - timedelta(seconds=timeout_s))
    # Cancelled tasks: a stale claim without a message was certainly never sent: skip it. One with
    # a message may have been handed over: its acknowledgement still decides.
    MessageReceiver.objects.filter(
        pk__in=list(stale.filter(task__status=TaskStatus.CANCELLED, message_id__isnull=True).values_list("pk", flat=True)[:5000])
    ).update(send_status=RS.SKIPPED, error_code="cancelled", error_message=_("Task cancelled."), updated_at=now)
    qs = stale.exclude(task__status=TaskStatus.CANCELLED)
    if task_id is not None:
        qs = qs.filter(task_id=task_id)
    n = 0
    # In slices, so that a huge reclaim never holds long locks.
    while True:
        ids = list(qs.values_list("pk", flat=True)[:5000])
        if not ids:
            break
        n += MessageReceiver.objects.filter(pk__in=ids, send_status=RS.SENDING).update(
            send_status=RS.PENDING, updated_at=now
        )
        if len(ids) < 5000:
            break
    if n:
        log.info("reclaimed %d stale receiver claims", n)
    return n


# ------------------------------------------------------------------------------------------
# Dispatcher leases (how many dispatchers run for a task), shared through Redis
# ------------------------------------------------------------------------------------------

def _lease_key(task_id):
    return f"wework:msg:disp:{task_id}"


def _redis():
    return pacing._redis()


_local_leases = {}


def lease_add(task_id, token, ttl=None):
    ttl = ttl or _lease_ttl()
    expiry = time.time() + ttl
    client = _redis()
    if client is None:
        _local_leases.setdefault(task_id, {})[token] = expiry
        return
    client.zadd(_lease_key(task_id), {token: expiry})
    client.expire(_lease_key(task_id), ttl * 2)


def lease_drop(task_id, token):
    client = _redis()
    if client is None:
        _local_leases.get(task_id, {}).pop(token, None)
        return
    client.zrem(_lease_key(task_id), token)


def lease_count(task_id):
    now = time.time()
    client = _redis()
    if client is None:
        leases = _local_leases.get(task_id, {})
        for k in [k for k, v in leases.items() if v < now]:
            leases.pop(k)
        return len(leases)
    key = _lease_key(task_id)
    client.zremrangebyscore(key, "-inf", now)
    return int(client.zcard(key))


def ensure_dispatchers(task):
    """Enqueue dispatchers until DISPATCHERS_PER_TASK hold a lease for the task."""
    from . import tasks

    if task.status != TaskStatus.RUNNING:
        return 0
    want = max(1, int(_setting("DISPATCHERS_PER_TASK")))
    have = lease_count(task.pk)
    started = 0
    for _i in range(want - have):
        token = uuid.uuid4().hex
        lease_add(task.pk, token)
        tasks.dispatch_task.apply_async((task.pk, token), priority=_celery_priority(task.priority))
        started += 1
    return started


def _celery_priority(priority):
    # Redis transport: 0 is the highest; the design's 1 (high) .. 3 (low).
    return {1: 0, 2: 3, 3: 6}.get(int(priority or 2), 3)


# ------------------------------------------------------------------------------------------
# Sending
# ------------------------------------------------------------------------------------------

def instance_client(instance):
    """The instance client used to send (tests replace `client_factory`)."""
    from instances.client import InstanceClient

    # Responses are not schema-validated here (a measurable cost per send): the dispatcher reads
    # `status`, `error` and `message_id` defensively and treats anything else as unknown.
    return InstanceClient.for_instance(
        instance, timeout=float(_setting("SEND_TIMEOUT_S")), max_retries=1, backoff_base_s=0.2,
        validate_responses=False, stdlib_http=True,
    )


client_factory = instance_client


def status_outcome(receiver_id, message_id, retry_count, max_retry, account_id, status, error=None,
                   instance_message_id=None):
    """The Outcome of a status reported by the instance (send answer, poll or webhook)."""
    if status == "sent":
        return Outcome(receiver_id, message_id, "success", instance_message_id=instance_message_id)
    if status == "queued":
        return Outcome(receiver_id, message_id, "queued", instance_message_id=instance_message_id)
    error = error or {}
    code = error.get("code") or (status if status in ("rate_limited", "risk_control") else "failed")
    return error_outcome(receiver_id, message_id, retry_count, max_retry, account_id, code,
                         error.get("message") or status, error.get("retry_after_s"))


def error_outcome(receiver_id, message_id, retry_count, max_retry, account_id, code, message, retry_after_s=None):
    """stop (risk control: stop the account), pause (the account or instance cannot send),
    retry (transient, with back-off) or failed (for good)."""
    if code in STOP_ACCOUNT:
        return Outcome(receiver_id, message_id, "stop", code, message)
    if code in PAUSE_TASK:
        return Outcome(receiver_id, message_id, "pause", code, message)
    if code == "rate_limited" and retry_after_s:
        pacing.defer(account_id, float(retry_after_s))
    kind, keep = classify(code, retry_count, max_retry)
    if kind == "retry":
        return Outcome(receiver_id, message_id, "retry", code, message, keep_message=keep,
                       delay_s=backoff_s(retry_count, retry_after_s))
    return Outcome(receiver_id, message_id, "failed", code, message)


def _error_code(exc):
    return getattr(exc, "code", None) or "internal"


@dataclass
class Prepared:
    row: dict
    message_id: int
    message_uuid: str
    conversation_type: str
    content: dict
    mentions: object = None
    reply_to: str | None = None
    sent_at: float = 0.0


@dataclass
class Dispatcher:
    task_id: int
    token: str | None = None
    slice_s: float | None = None
    sleep: object = time.sleep
    stats: dict = field(default_factory=lambda: {"sent": 0, "claims": 0, "polled": 0})
    event_cursor = None  # not a dataclass field: set by _init_event_cursor()
    inflight = ()
    _older_tasks = None
    pool = None  # ThreadPoolExecutor of the concurrent sends (unpaced), set by run()
    concurrency = 1

    # --- setup ---------------------------------------------------------------------------

    def _load(self):
        task = MessageTask.objects.select_related("account__instance", "template").filter(pk=self.task_id).first()
        if task is None:
            return None
        self.task = task
        self.account = task.account
        self.instance = task.account.instance if task.account_id else None
        self.limits = pacing.Limits.default(task.send_interval)
        self.paced = self.limits.any
        self.body = content_mod.parse_content(task.message_type, task.message_content)
        self.defaults = {}
        if task.template_id and task.template is not None:
            self.defaults = rendering.defaults_of(task.template.variables)
        self.variables = dict(task.template_variables or {})
        self.mentions = self.variables.pop("@mentions", None)
        reply_to = self.variables.pop("@reply_to", None)
        self.reply_to = None
        if reply_to:
            parent = shards.get_or_none(Message, reply_to)
            if parent is not None:
                meta = parent.message_metadata or {}
                self.reply_to = meta.get("instance_message_id") or parent.message_uuid
        per = max(0.001, self.limits.min_interval_s + self.limits.jitter_s / 2) if self.paced else 0
        batch = int(_setting("CLAIM_BATCH"))
        if per:
            batch = max(1, min(batch, int(float(_setting("CLAIM_TIMEOUT_S")) / 3 / per)))
        self.batch = batch
        return task

    # --- main loop -----------------------------------------------------------------------

    def run(self):
        """Work until the task has nothing claimable, the slice ends, or the task stops.
        Returns a short reason string."""
        task = self._load()
        if task is None:
            return "missing"
        if task.status != TaskStatus.RUNNING:
            return "not-running"
        if self.account is None or self.instance is None:
            self._fail_task(_("The task's account or instance no longer exists."))
            return "failed"
        if self._account_in_trouble():
            return "stopped-account"
        slice_s = float(self.slice_s if self.slice_s is not None else _setting("DISPATCH_SLICE_S"))
        deadline = time.monotonic() + slice_s
        self.client = client_factory(self.instance)
        self.inflight = []  # Prepared items handed over, waiting for their outcome
        self.concurrency = 1 if self.paced else max(1, int(_setting("SEND_CONCURRENCY")))
        self.batch_send_max = 0 if self.paced else self._batch_send_max()
        self.pool = None
        if self.concurrency > 1 and self.batch_send_max <= 1:
            from concurrent.futures import ThreadPoolExecutor

            self.pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix=f"send-{self.task_id}")
        self._init_event_cursor()
        cursor = 0
        skipped_claims = 0
        try:
            while True:
                self._heartbeat()
                if time.monotonic() > deadline:
                    self._settle_inflight(final=False)
                    return self._continue_later(0)
                prepared, failed = self._claim(cursor)
                self.stats["claims"] += 1
                if not prepared and not failed:
                    if cursor:
                        cursor = 0
                        continue
                    if skipped_claims < SKIPPED_CLAIM_RETRIES and self._due_receivers_left():
                        # SKIP LOCKED skipped due rows that another transaction held for a moment
                        # (a concurrent claim scanning the same index locks rows it then rejects):
                        # look again rather than go idle until beat's next kick
                        skipped_claims += 1
                        self.sleep(0.1)
                        continue
                    self._settle_inflight(final=True)
                    return self._finish_or_wait()
                skipped_claims = 0
                cursor = max([p.row["id"] for p in prepared] + [o.receiver_id for o in failed])
                reason = self._process(prepared, failed)
                if reason:
                    self._settle_inflight(final=True)
                    return reason
        finally:
            if self.pool is not None:
                self.pool.shutdown(wait=True)
            try:
                self.client.close()
            except Exception:  # noqa: BLE001 - closing must not hide the real outcome
                pass
            if self.token:
                lease_drop(self.task_id, self.token)

    def _heartbeat(self):
        if self.token:
            lease_add(self.task_id, self.token)

    def _continue_later(self, countdown):
        from django.conf import settings

        from . import tasks

        if countdown > 0 and getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False):
            return "waiting"  # eager (tests, no broker): no countdown possible; beat's kick resumes
        token = uuid.uuid4().hex
        lease_add(self.task_id, token, ttl=_lease_ttl() + int(countdown))
        tasks.dispatch_task.apply_async((self.task_id, token), countdown=max(0, int(countdown)),
                                        priority=_celery_priority(self.task.priority))
        return "continued"

    def _finish_or_wait(self):
        from . import services

        if services.finish_if_done(self.task_id):
            return "completed"
        # Receivers waiting for a retry time, or in flight elsewhere: come back when due.
        nxt = (
            MessageReceiver.objects.filter(task_id=self.task_id, send_status=RS.PENDING, send_time__isnull=False)
            .order_by("send_time").values_list("send_time", flat=True).first()
        )
        if nxt is not None:
            wait = max(1, min(60, (nxt - timezone.now()).total_seconds()))
            return self._continue_later(wait)
        return "idle"

    def _fail_task(self, message):
        from . import services

        services.auto_transition(self.task_id, "fail", [TaskStatus.RUNNING, TaskStatus.PAUSED, TaskStatus.PENDING],
                                 TaskStatus.FAILED, reason=message, error_message=message,
                                 completed_at=timezone.now())

    # --- one claim -------------------------------------------------------------------------

    def _claim(self, after_id):
        """Claim up to `self.batch` receivers with id > after_id and create the message rows of
        those that have none, in one transaction: when it commits, every claimed receiver is
        SENDING and linked to the message (and uuid) it is sent with. Returns (Prepared items,
        Outcomes of rows that cannot be rendered); ([], []) when nothing is due."""
        now = timezone.now()
        self._older_tasks = None  # looked up again for each claim (see _older_message_waits)
        with transaction.atomic():
            rows = _lock_claimable(self.task_id, self.batch, after_id, now)
            if not rows:
                return [], []
            prepared, failed, links = self._prepare(rows, now)
            mark_claimed([r["id"] for r in rows], links, now)
        return prepared, failed

    def _prepare(self, rows, now=None):
        """Insert the message rows of receivers that have none, load the others; returns
        (Prepared items, Outcomes for rows that cannot be rendered, {receiver_id: new message_id}).
        Runs inside the claim's transaction."""
        now = now or timezone.now()
        prepared, failed, new_rows = [], [], []
        existing_ids = [r["message_id"] for r in rows if r["message_id"]]
        existing = {}
        if existing_ids:
            groups = {}
            for mid in existing_ids:
                try:
                    groups.setdefault(shards.model_for_id(Message, mid), []).append(mid)
                except shards.ShardError:
                    pass
            for model, ids in groups.items():
                for m in model._base_manager.filter(pk__in=ids).only(
                    "id", "message_uuid", "message_type", "message_content", "at_members", "chat_type"
                ):
                    existing[m.pk] = m
        for r in rows:
            ctype = "room" if r["receiver_type"] == ReceiverType.GROUP else "single"
            m = existing.get(r["message_id"]) if r["message_id"] else None
            if m is not None:
                mentions = "all" if m.at_members == ["all"] else m.at_members
                prepared.append(Prepared(r, m.pk, m.message_uuid, ctype, content_mod.from_message(m),
                                         mentions, self.reply_to))
                continue
            receiver = {"wxid": r["receiver_wxid"], "name": r["receiver_name"], "variables": r["variables"] or {}}
            try:
                values = self._values(receiver)
                rendered = rendering.render(self.body, values)
            except (rendering.MissingVariablesError, rendering.TemplateSyntaxError) as exc:
                failed.append(Outcome(r["id"], None, "failed", "template_error", str(exc)))
                continue
            mentions = (r["variables"] or {}).get("@mentions", self.mentions) if ctype == "room" else None
            cols = content_mod.to_columns(self.task.message_type, rendered)
            muuid = shards.new_uuid()
            new_rows.append((r, ctype, rendered, mentions, {
                "message_uuid": muuid,
                "account_id": self.account.pk,
                "chat_type": ChatType.GROUP if ctype == "room" else ChatType.PRIVATE,
                "chat_wxid": r["receiver_wxid"],
                "message_type": self.task.message_type,
                "message_metadata": {"direction": "out", "receiver_id": r["id"]},
                "send_status": SendStatus.PENDING,
                "retry_count": r["retry_count"],
                "task_id": self.task_id,
                "parent_message_id": self._parent_id(),
                "at_members": mentions if isinstance(mentions, list) else (["all"] if mentions == "all" else None),
                "is_scheduled": self.task.scheduled_time is not None,
                "scheduled_time": self.task.scheduled_time,
                "updated_at": now,
                **cols,
            }))
        links = {}
        if new_rows:
            ids = insert_messages([n[4] for n in new_rows])
            for (r, ctype, rendered, mentions, cols), mid in zip(new_rows, ids):
                prepared.append(Prepared(r, mid, cols["message_uuid"], ctype, rendered, mentions, self.reply_to))
                links[r["id"]] = mid
        prepared.sort(key=lambda p: p.row["id"])
        return prepared, failed, links

    def _parent_id(self):
        v = (self.task.template_variables or {}).get("@reply_to")
        return int(v) if v else None

    def _values(self, receiver):
        from .services import receiver_values

        return receiver_values(self.variables, receiver, self.defaults)

    def _process(self, prepared, outcomes):
        if self.batch_send_max > 1:
            return self._process_batched(prepared, outcomes)
        if self.pool is not None:
            return self._process_concurrent(prepared, outcomes)
        return self._process_serial(prepared, outcomes)

    def _process_serial(self, prepared, outcomes):
        """One send at a time (with pacing, each after its reservation)."""
        last_flush = time.monotonic()
        flush_every = float(_setting("FLUSH_INTERVAL_S"))
        for index, item in enumerate(prepared):
            if self.paced:
                reason = self._pace(prepared[index:], outcomes)
                if reason == DEFERRED:
                    continue
                if reason:
                    return reason
            outcome = self._send(item)
            kind = self._record_answer(item, outcome, outcomes, time.monotonic())
            if kind in ("stop", "pause"):
                return self._end_claim(prepared[index + 1 :], outcomes, stop=outcome if kind == "stop" else None,
                                       pause=outcome if kind == "pause" else None)
            if time.monotonic() - last_flush >= flush_every:
                self._flush(outcomes)
                outcomes = []
                last_flush = time.monotonic()
                self._heartbeat()
                self._settle_inflight(final=False)
                if not self._still_running():
                    self._release(prepared[index + 1 :], outcomes)
                    self._flush(outcomes)
                    return "stopped"
                if self.paced:
                    self._touch(prepared[index + 1 :])
        self._flush(outcomes)
        self._settle_inflight(final=False)
        return None

    def _process_concurrent(self, prepared, outcomes):
        """Unpaced sending: up to SEND_CONCURRENCY sends in flight (one keep-alive connection
        each), outcomes recorded in receiver order. A stop or pause answer submits nothing more:
        the sends already in flight (at most SEND_CONCURRENCY - 1) were answered by the instance
        and are recorded as answered; everything after them is released."""
        from collections import deque

        last_flush = time.monotonic()
        flush_every = float(_setting("FLUSH_INTERVAL_S"))
        window = deque()
        submitted = 0
        stop = pause = None
        stopped = False

        def fill():
            nonlocal submitted
            while len(window) < self.concurrency and submitted < len(prepared):
                item = prepared[submitted]
                window.append((item, self.pool.submit(self._send, item)))
                submitted += 1

        fill()
        while window:
            item, future = window.popleft()
            outcome = future.result()
            kind = self._record_answer(item, outcome, outcomes, time.monotonic())
            if kind == "stop":
                stop = stop or outcome
            elif kind == "pause":
                pause = pause or outcome
            if stop is not None or pause is not None or stopped:
                continue  # drain what is in flight, submit nothing more
            if time.monotonic() - last_flush >= flush_every:
                self._flush(outcomes)
                outcomes = []
                last_flush = time.monotonic()
                self._heartbeat()
                self._settle_inflight(final=False)
                if not self._still_running():
                    stopped = True
                    continue
            fill()
        if stop is not None or pause is not None or stopped:
            return self._end_claim(prepared[submitted:], outcomes, stop, pause) or "stopped"
        self._flush(outcomes)
        self._settle_inflight(final=False)
        return None

    def _record_answer(self, item, outcome, outcomes, now):
        """Add the outcome of a send of `item` to `outcomes`; returns its kind. A stop answer
        fails the receiver (its message was refused); a pause answer releases it (never handed
        over); a queued one is watched for its acknowledgement."""
        if outcome.kind == "stop":
            outcomes.append(Outcome(item.row["id"], item.message_id, "failed", outcome.code, outcome.error))
        elif outcome.kind == "pause":
            outcomes.append(Outcome(item.row["id"], item.message_id, "release"))
        else:
            outcomes.append(outcome)
            if outcome.kind == "queued":
                item.sent_at = now
                self.inflight.append(item)
        return outcome.kind

    def _end_claim(self, rest, outcomes, stop=None, pause=None):
        """Release `rest`, record everything, then stop the account or pause the task when an
        answer said so; returns that reason, or None."""
        self._release(rest, outcomes)
        self._flush(outcomes)
        if stop is not None:
            from . import services

            services.stop_account(self.account.pk, stop.code, stop.error)
            return "stopped-account"
        if pause is not None:
            self._pause(pause.error or pause.code)
            return "paused"
        return None

    def _batch_send_max(self):
        """Messages per batch send: BATCH_SEND_SIZE, capped by what the instance offers
        (`batch_send_max` in its capabilities, revision 1.1); 0 = one send per request."""
        wanted = int(_setting("BATCH_SEND_SIZE"))
        if wanted <= 1:
            return 0
        try:
            offered = int(self.client.capabilities().get("batch_send_max") or 0)
        except Exception as exc:  # noqa: BLE001 - an older or failing instance: single sends
            log.info("capabilities of instance %s unavailable (%s); single sends", self.instance.pk, exc)
            return 0
        return max(0, min(wanted, offered, protocol.MAX_BATCH_SEND))

    def _process_batched(self, prepared, outcomes):
        """Unpaced sending in batches of `batch_send_max` (one request each). The instance stops
        a batch itself at an item that concerns the account (risk control, offline, rate
        limited): the items after it come back not_attempted and are released, so a stop bound
        is exact, as with single sends."""
        last_flush = time.monotonic()
        flush_every = float(_setting("FLUSH_INTERVAL_S"))
        index = 0
        while index < len(prepared):
            if self.batch_send_max <= 1:  # the instance refused a batch: the rest one by one
                return self._process_serial(prepared[index:], outcomes)
            chunk = prepared[index : index + self.batch_send_max]
            index += len(chunk)
            stop = pause = limited = None
            now = time.monotonic()
            for item, outcome in zip(chunk, self._send_batch(chunk)):
                kind = self._record_answer(item, outcome, outcomes, now)
                if kind == "stop":
                    stop = stop or outcome
                elif kind == "pause":
                    pause = pause or outcome
                elif outcome.code == "rate_limited":
                    limited = limited or outcome
            if stop is not None or pause is not None or limited is not None:
                reason = self._end_claim(prepared[index:], outcomes, stop, pause)
                if reason:
                    return reason
                self._settle_inflight(final=False)
                return self._continue_later(min(max(1.0, limited.delay_s), 300))
            if time.monotonic() - last_flush >= flush_every or index >= len(prepared):
                self._flush(outcomes)
                outcomes = []
                last_flush = time.monotonic()
                self._heartbeat()
                self._settle_inflight(final=False)
                if index < len(prepared) and not self._still_running():
                    self._release(prepared[index:], outcomes)
                    self._flush(outcomes)
                    return "stopped"
        self._flush(outcomes)
        return None

    def _send_batch(self, chunk):
        """One Outcome per item of `chunk`, in order, from one batch send."""
        from instances.exceptions import InstanceError

        bodies = [
            self.client.message_body(
                item.message_uuid, item.row["receiver_wxid"], item.conversation_type, self.task.message_type,
                item.content, item.mentions if item.conversation_type == "room" else None, item.reply_to,
            )
            for item in chunk
        ]
        try:
            results = self.client.send_messages(self.account.wxid, bodies)
        except InstanceError as exc:
            code = _error_code(exc)
            if code in ("target_not_found", "invalid_request", "unsupported_type"):
                # A refusal of the request as a whole (an unknown command on an instance that
                # offered batches, an item it rejects outright): each item on its own tells which.
                self.batch_send_max = 0
                return self._send_each(chunk)
            first = self._error_outcome(chunk[0], code, str(exc.message), exc.retry_after_s)
            if first.kind in ("stop", "pause") or code == "rate_limited":
                # refused as a whole for the account: nothing was handed over after the first
                return [first] + [Outcome(i.row["id"], i.message_id, "release") for i in chunk[1:]]
            # transient (unreachable, timeout, internal): the instance may hold any of them, so
            # each is retried with its uuid
            outcomes = []
            for item in chunk:
                o = self._error_outcome(item, code, str(exc.message), exc.retry_after_s)
                if o.kind == "retry":
                    o.keep_message = True
                outcomes.append(o)
            return outcomes
        except Exception as exc:  # noqa: BLE001 - anything unexpected from the transport
            log.exception("unexpected error sending a batch of %d", len(chunk))
            outcomes = [self._error_outcome(item, "internal", str(exc)) for item in chunk]
            for o in outcomes:
                o.keep_message = True  # the instance may hold any of them
            return outcomes
        outcomes = []
        for item, result in zip(chunk, results):
            result = result if isinstance(result, dict) else {}
            status = result.get("status")
            if status == protocol.NOT_ATTEMPTED:
                outcomes.append(Outcome(item.row["id"], item.message_id, "release"))
                continue
            if status in ("queued", "sent"):
                self.stats["sent"] += 1
            outcomes.append(self._status_outcome(item, status, result.get("error"), result.get("message_id")))
        return outcomes

    def _due_receivers_left(self):
        """Whether due PENDING receivers exist (a plain read: it waits on no lock)."""
        return _claimable(self.task_id, timezone.now()).exists()

    def _older_message_waits(self, item):
        """Whether a running task of the same account created before this one still has a
        message to the same conversation to send (pending or in flight)."""
        if self._older_tasks is None:
            self._older_tasks = list(
                MessageTask.objects.filter(account_id=self.account.pk, status=TaskStatus.RUNNING,
                                           pk__lt=self.task_id).values_list("pk", flat=True)[:200]
            )
        if not self._older_tasks:
            return False
        return MessageReceiver.objects.filter(
            task_id__in=self._older_tasks, receiver_wxid=item.row["receiver_wxid"],
            send_status__in=[RS.PENDING, RS.SENDING],
        ).exists()

    def _send_each(self, chunk):
        """Outcomes of sending `chunk` one message at a time, as a batch would answer: after an
        answer that concerns the account (stop, pause, rate limited) the rest are released."""
        outcomes = []
        for index, item in enumerate(chunk):
            outcome = self._send(item)
            outcomes.append(outcome)
            if outcome.kind in ("stop", "pause") or outcome.code == "rate_limited":
                outcomes.extend(Outcome(i.row["id"], i.message_id, "release") for i in chunk[index + 1 :])
                break
        return outcomes

    def _pace(self, remaining, outcomes):
        """Wait for the account's next slot to send remaining[0]; DEFERRED when its
        conversation is busy (remaining[0] waits in PENDING, the caller goes on with the next),
        or the reason this run stops."""
        item = remaining[0]
        if self._older_message_waits(item):
            # first in, first out per conversation: an older running task's message to the same
            # contact or group goes first (two sends composed seconds apart arrive in order)
            outcomes.append(Outcome(item.row["id"], item.message_id, "defer", delay_s=FIFO_RETRY_S))
            return DEFERRED
        res = pacing.reserve(self.account.pk, self.limits, conversation_id=item.row["receiver_wxid"])
        if res.code == pacing.CONVERSATION_BUSY:
            outcomes.append(Outcome(item.row["id"], item.message_id, "defer", delay_s=res.wait_s))
            return DEFERRED
        if res.code == pacing.RESERVED:
            if res.wait_s > 0:
                if res.wait_s > 1 and outcomes:
                    self._flush(outcomes)
                    outcomes.clear()
                self.sleep(res.wait_s)
            return None
        self._release(remaining, outcomes)
        self._flush(outcomes)
        outcomes.clear()
        if res.code == pacing.BLOCKED:
            self._pause(_("Sending is stopped for the account after a risk-control signal."))
            return "blocked"
        if res.code == pacing.DAILY_CAP:
            MessageTask.objects.filter(pk=self.task_id).update(
                error_message=_("The account reached its daily cap; sending continues tomorrow.")
            )
            return self._continue_later(min(3600, _seconds_to_midnight()))
        return self._continue_later(min(res.wait_s, 300))

    def _send(self, item):
        r = item.row
        try:
            data = self.client.send_message(
                self.account.wxid,
                client_msg_id=item.message_uuid,
                conversation_id=r["receiver_wxid"],
                conversation_type=item.conversation_type,
                type=self.task.message_type,
                content=item.content,
                mentions=item.mentions if item.conversation_type == "room" else None,
                reply_to=item.reply_to,
            )
        except Exception as exc:  # InstanceError and anything unexpected from the transport
            from instances.exceptions import InstanceError

            if not isinstance(exc, InstanceError):
                log.exception("unexpected error sending receiver %s", r["id"])
            return self._error_outcome(item, _error_code(exc), str(getattr(exc, "message", exc)),
                                       getattr(exc, "retry_after_s", None))
        self.stats["sent"] += 1
        return self._status_outcome(item, data.get("status"), data.get("error"), data.get("message_id"))

    def _status_outcome(self, item, status, error=None, instance_message_id=None):
        return status_outcome(item.row["id"], item.message_id, item.row["retry_count"], self.task.max_retry,
                              self.account.pk, status, error, instance_message_id)

    def _error_outcome(self, item, code, message, retry_after_s=None):
        return error_outcome(item.row["id"], item.message_id, item.row["retry_count"], self.task.max_retry,
                             self.account.pk, code, message, retry_after_s)

    # --- in-flight acknowledgements ---------------------------------------------------------

    def _init_event_cursor(self):
        """The instance's current event sequence: acknowledgements are then read from its event
        feed (`GET /v1/events?after_seq=`, 500 a page) instead of one status poll per message."""
        self.event_cursor = None
        if not _setting("ACK_FROM_EVENTS"):
            return
        try:
            data = self.client.events_after(2**53, limit=1)
            self.event_cursor = int(data.get("last_seq") or 0)
        except Exception as exc:  # noqa: BLE001 - the feed is an optimisation; polls still work
            log.info("event feed unavailable (%s); polling statuses", exc)

    def _acks_from_events(self):
        """Outcomes for in-flight messages whose message.status is in the event feed."""
        if self.event_cursor is None or not self.inflight:
            return []
        by_uuid = {i.message_uuid: i for i in self.inflight}
        found = []
        for _page in range(50):
            try:
                data = self.client.events_after(self.event_cursor, limit=500)
            except Exception as exc:  # noqa: BLE001
                log.info("event feed read failed: %s", exc)
                return found
            for event in data.get("events") or []:
                self.event_cursor = max(self.event_cursor, int(event.get("seq") or 0))
                if event.get("type") != "message.status":
                    continue
                ev = event.get("data") or {}
                item = by_uuid.pop(ev.get("client_msg_id"), None)
                if item is not None:
                    found.append((item, ev.get("status"), ev.get("error"), ev.get("message_id")))
            if not data.get("has_more"):
                break
        return found

    def _settle_inflight(self, final):
        """Confirm handed-over messages not confirmed by a webhook yet: from the instance's event
        feed, then by polling the status of those still unconfirmed after ACK_POLL_AFTER_S (or
        after ACK_FEED_GRACE_S when the feed works). Final (the task has nothing left to claim):
        wait for all of them, up to ACK_WAIT_S, then leave the rest to the reclaim."""
        if not self.inflight:
            return
        poll_after = float(_setting("ACK_POLL_AFTER_S"))
        if self.event_cursor is not None:
            poll_after = max(poll_after, float(_setting("ACK_FEED_GRACE_S")))
        limit = time.monotonic() + float(_setting("ACK_WAIT_S"))
        while self.inflight:
            results = self._acks_from_events()
            now = time.monotonic()
            matched = {id(r[0]) for r in results}
            due = [i for i in self.inflight if id(i) not in matched and now - i.sent_at >= poll_after]
            if due:
                still = set(
                    MessageReceiver.objects.filter(
                        pk__in=[i.row["id"] for i in due], send_status=RS.SENDING,
                        message_id__in=[i.message_id for i in due],
                    ).values_list("pk", flat=True)
                )
            waiting = []
            for item in due:
                if item.row["id"] not in still:
                    matched.add(id(item))  # confirmed by a webhook meanwhile
                    continue
                try:
                    data = self.client.get_message_status(self.account.wxid, item.message_uuid)
                except Exception as exc:  # noqa: BLE001
                    log.info("status poll failed for %s: %s", item.message_uuid, exc)
                    waiting.append(item)
                    continue
                self.stats["polled"] += 1
                if data.get("status") == "queued":
                    waiting.append(item)
                    continue
                results.append((item, data.get("status"), data.get("error"), data.get("message_id")))
                matched.add(id(item))
            outcomes, stop = self._ack_outcomes(results)
            if stop is not None:
                self._apply(outcomes)
                self._stop_after_ack(stop)
                return
            self._apply(outcomes)
            now = time.monotonic()
            for item in waiting:
                item.sent_at = now
            self.inflight = [i for i in self.inflight if id(i) not in matched]
            if not final or now > limit:
                return
            if self.inflight:
                self.sleep(0.05)

    # --- helpers ---------------------------------------------------------------------------

    def _ack_outcomes(self, results):
        """Outcomes of acknowledgements [(item, status, error, instance_message_id)], and the
        Outcome that stops the account (risk control reported after acceptance), if any; the
        messages acknowledged after it stay SENDING for the reclaim, whose re-send with the same
        uuid reads their state back."""
        outcomes = []
        for item, status, error, instance_message_id in results:
            o = self._status_outcome(item, status, error, instance_message_id)
            if o.kind == "stop":
                outcomes.append(Outcome(o.receiver_id, o.message_id, "failed", o.code, o.error))
                return outcomes, o
            if o.kind == "pause":  # the account went offline after accepting: retry later
                o = Outcome(o.receiver_id, o.message_id, "retry", o.code, o.error, keep_message=False,
                            delay_s=backoff_s(item.row["retry_count"]))
            if o.kind != "queued":
                outcomes.append(o)
        return outcomes, None

    def _stop_after_ack(self, stop):
        from . import services

        services.stop_account(self.account.pk, stop.code, stop.error)
        self.inflight = []

    def _apply(self, outcomes):
        if outcomes:
            apply_outcomes(self.task_id, outcomes, self.account.pk, self.instance.pk)

    def _flush(self, outcomes):
        """Record outcomes. Sends answered "queued" whose acknowledgement is already in the
        instance's event feed are recorded with their final state in the same write."""
        if not outcomes:
            return
        stop = None
        if self.event_cursor is not None and self.inflight and any(o.kind == "queued" for o in outcomes):
            results = self._acks_from_events()
            if results:
                done = {id(r[0]) for r in results}
                self.inflight = [i for i in self.inflight if id(i) not in done]
                acked, stop = self._ack_outcomes(results)
                outcomes = list(outcomes) + acked
        self._apply(outcomes)
        if stop is not None:
            self._stop_after_ack(stop)

    def _release(self, items, outcomes):
        for item in items:
            outcomes.append(Outcome(item.row["id"], item.message_id, "release"))

    def _touch(self, items):
        if items:
            MessageReceiver.objects.filter(pk__in=[i.row["id"] for i in items], send_status=RS.SENDING).update(
                updated_at=timezone.now()
            )

    def _still_running(self):
        if self._account_in_trouble():
            return False
        return MessageTask.objects.filter(pk=self.task_id, status=TaskStatus.RUNNING).exists()

    def _account_in_trouble(self):
        """An account flagged abnormal or banned (by an account.* event) stops at once, as after a
        risk-control answer: its tasks pause, an alert is raised (once)."""
        from contacts.models import AccountStatus, WeworkAccount

        status = WeworkAccount.all_objects.filter(pk=self.account.pk).values_list("status", flat=True).first()
        if status in (AccountStatus.ABNORMAL, AccountStatus.BANNED):
            from . import services

            reason = "account_banned" if status == AccountStatus.BANNED else "account_abnormal"
            services.stop_account(self.account.pk, reason, _("The account was flagged by the instance."))
            return True
        return False

    def _pause(self, reason):
        from . import services

        services.auto_transition(self.task_id, "pause_automatic", [TaskStatus.RUNNING], TaskStatus.PAUSED,
                                 reason=reason, error_message=str(reason)[:2000])


DEFERRED = "deferred"
#: Empty claims while due receivers exist (rows locked for a moment by another claim) are
#: retried this many times, 0.1 s apart, before a dispatcher goes idle.
SKIPPED_CLAIM_RETRIES = 50
#: A message waiting behind an older task's message to the same conversation looks again after this.
FIFO_RETRY_S = 2.0


def _seconds_to_midnight():
    now = timezone.localtime()
    tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=5, microsecond=0)
    return max(60, (tomorrow - now).total_seconds())


def run(task_id, token=None, **kwargs):
    return Dispatcher(task_id, token=token, **kwargs).run()
