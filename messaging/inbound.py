"""Instance events for messaging: `message.received` (inbound capture) and `message.status`
(acknowledgements of our sends).

The webhook intake (instances.services.dispatch_event) calls `handle_instance_event(instance,
event)` with the verified event envelope, inside a transaction (registered for `message.*`
events in instances.hooks by MessagingConfig.ready()).

Inbound de-duplication, in order:
1. the event id (`event_id`, remembered in Redis for DEDUPE_TTL_S);
2. the instance's message id: the row's `message_uuid` is a UUIDv7 derived from (instance,
   account, message id) and the message time, so the same message always gets the same uuid
   in the same monthly shard, where `uk_message_uuid` refuses a second row — for ever;
3. a fallback key (account, conversation, sender, content hash) within DEDUPE_WINDOW_S seconds,
   for runtimes that deliver one message twice under different ids.
History replays (`is_history`) are stored with `message_metadata.is_history = true` and are not
counted in today_messages / total_messages.

Failures after a mark must not turn a redelivery into a "duplicate" (issue 12: a deadlock in
the counter update rolled the message back, its marks stayed, the retry was dropped):
- the event-id mark is only read before the insert and set when the transaction commits;
- the fallback mark is owned by the event that set it (its value names the event), so a
  retry of that same event passes it, and only another event within the window is refused.
A message for an account not known yet raises `EventNotReady` (the event is retried later), and
content longer than its TEXT column (64 KB) is stored cut at MAX_CONTENT_BYTES with
`message_metadata.truncated = true` and `content_bytes` (the size received): kept, not refused,
since the instance already sent it and cannot do anything else with a refusal.
"""
import hashlib
import json
import logging
import uuid
from datetime import datetime, timezone as dt_timezone

from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone

from contacts.models import WeworkAccount
from instances.exceptions import EventNotReady
from wework import shards

from . import conf, content as content_mod, pacing
from .dispatch.outcomes import Outcome, OutcomeKind as K, backoff_s, status_outcome
from .dispatch.recording import apply_outcomes
from .models import ChatType, Message, MessageReceiver, MessageTask, SendStatus
from .services import inbox
from .services.counters import count_messages
from .services.stops import stop_account
from .services.transitions import finish_if_done, pause_automatically

log = logging.getLogger("messaging.inbound")

KEY_PREFIX = "wework:msg:in:"

#: MariaDB's TEXT holds 65,535 bytes (message_content).
MAX_CONTENT_BYTES = 65_535

# The mark's value is "<ms>|<owner>": a mark of another owner within the window is a duplicate.
_FALLBACK_LUA = """
local prev = redis.call('GET', KEYS[1])
if prev then
  local sep = string.find(prev, '|', 1, true)
  local ms = tonumber(sep and string.sub(prev, 1, sep - 1) or prev)
  local owner = sep and string.sub(prev, sep + 1) or ''
  if owner ~= ARGV[4] and ms and math.abs(ms - tonumber(ARGV[1])) <= tonumber(ARGV[2]) then return 1 end
end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. ARGV[4], 'EX', ARGV[3])
return 0
"""


def handle_instance_event(instance, event: dict):
    """Handle a message.* event; other events are ignored (None)."""
    kind = event.get("type")
    if kind == "message.received":
        return handle_message_received(instance, event)
    if kind == "message.status":
        return handle_message_status(instance, event)
    return None


# ------------------------------------------------------------------------------------------
# Ids
# ------------------------------------------------------------------------------------------

def derived_uuid(ms, key):
    """A UUIDv7 for time `ms` whose random bits come from `key` (deterministic)."""
    digest = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:10], "big")
    value = (int(ms) & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((digest >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= digest & ((1 << 62) - 1)
    return str(uuid.UUID(int=value))


def uuid_time(value):
    """The time encoded in a UUIDv7 string, or None."""
    try:
        u = uuid.UUID(str(value))
    except (ValueError, TypeError):
        return None
    if u.version != 7:
        return None
    ms = u.int >> 80
    return datetime.fromtimestamp(ms / 1000, tz=dt_timezone.utc)


def find_message_by_uuid(message_uuid):
    """The message with this uuid: one query in the shard of the uuid's time."""
    when = uuid_time(message_uuid)
    candidates = []
    if when is not None:
        try:
            candidates.append(shards.model_for(Message, when, create=False))
        except shards.ShardError:
            pass
    if not candidates:
        candidates = shards.shard_models(Message)[:2]
    for model in candidates:
        found = model._base_manager.filter(message_uuid=str(message_uuid)).first()
        if found is not None:
            return found
    return None


# ------------------------------------------------------------------------------------------
# Dedupe marks
# ------------------------------------------------------------------------------------------

def _seen(key):
    client = pacing.redis_client()
    if client is None:
        return cache.get(KEY_PREFIX + key) is not None
    return bool(client.exists(KEY_PREFIX + key))


def _remember(key, ttl):
    client = pacing.redis_client()
    if client is None:
        cache.set(KEY_PREFIX + key, 1, timeout=ttl)
    else:
        client.set(KEY_PREFIX + key, 1, ex=ttl)


def _remember_on_commit(key, ttl):
    """Set the mark once the message is committed: a rolled-back insert leaves no mark."""
    transaction.on_commit(lambda: _remember(key, ttl))


def _fallback_seen(key, ms, window_s, ttl, owner):
    """True when another event (not `owner`) marked this key within the window; else mark it."""
    client = pacing.redis_client()
    if client is None:
        prev = cache.get(KEY_PREFIX + key)
        if prev is not None:
            prev_ms, _sep, prev_owner = str(prev).partition("|")
            if prev_owner != owner and abs(int(prev_ms) - int(ms)) <= window_s * 1000:
                return True
        cache.set(KEY_PREFIX + key, f"{int(ms)}|{owner}", timeout=ttl)
        return False
    return bool(client.eval(_FALLBACK_LUA, 1, KEY_PREFIX + key, int(ms), int(window_s * 1000), int(ttl), owner))


# ------------------------------------------------------------------------------------------
# message.received
# ------------------------------------------------------------------------------------------

def handle_message_received(instance, event: dict) -> dict:
    """Store an inbound message once; returns {"stored": bool, "duplicate": reason|None, "id"}."""
    data = event.get("data") or {}
    account = WeworkAccount.all_objects.filter(instance_id=instance.pk, wxid=event.get("account_id")).first()
    if account is None:
        # Events are processed in parallel: account.online may not be applied yet.
        raise EventNotReady(f"message.received for account {event.get('account_id')!r}, not known on "
                            f"instance {instance.pk} yet")
    ttl = int(conf.get("DEDUPE_TTL_S"))
    event_key = f"ev:{instance.pk}:{event.get('event_id')}" if event.get("event_id") else None
    if event_key and _seen(event_key):
        return {"stored": False, "duplicate": "event_id"}
    sent_ms = int(data.get("sent_at_ms") or event.get("ts_ms") or timezone.now().timestamp() * 1000)
    fb_key = _fallback_key(account, data)
    owner = event_key or f"msg:{data.get('message_id')}"
    if _fallback_seen(fb_key, sent_ms, int(conf.get("DEDUPE_WINDOW_S")), ttl, owner):
        return {"stored": False, "duplicate": "fallback"}
    row = _inbound_row(instance, account, event, sent_ms)
    try:
        created = _store(row)
    except IntegrityError:
        return {"stored": False, "duplicate": "message_id"}
    if event_key:
        _remember_on_commit(event_key, ttl)
    is_history = row["message_metadata"]["is_history"]
    if not is_history:
        count_messages(account.pk, instance.pk, 1)
        if not row["message_metadata"]["is_self"] and row["chat_wxid"]:
            inbox.record_inbound(account.pk, row["chat_wxid"], row["chat_type"], created.pk, row["send_time"],
                                 inbox.preview_of(row["message_type"], row.get("message_content")))
    return {"stored": True, "duplicate": None, "id": created.pk, "is_history": is_history}


def _fallback_key(account, data: dict) -> str:
    """Account, conversation, sender, type and content: one message delivered under two ids."""
    body = data.get("content") or {}
    digest = hashlib.sha1(json.dumps(body, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()
    sender = data.get("sender") or {}
    conv = str(data.get("conversation_id") or "")
    return f"fb:{account.pk}:{conv}:{sender.get('id')}:{data.get('type') or 'text'}:{digest}"


def _inbound_row(instance, account, event: dict, sent_ms: int) -> dict:
    """The `messages` row of a received message (its uuid derived from its instance id)."""
    data = event.get("data") or {}
    message_type = data.get("type") or "text"
    body = data.get("content") or {}
    sender = data.get("sender") or {}
    sent_at = datetime.fromtimestamp(sent_ms / 1000, tz=dt_timezone.utc)
    try:
        shown = body if message_type != "text" else {"text": body.get("text", "")}
        columns = content_mod.to_columns(message_type, shown)
    except Exception:  # noqa: BLE001 - keep what arrived, whatever its shape
        columns = {"message_content": json.dumps(body, ensure_ascii=False)}
    mentions = data.get("mentions")
    metadata_extra = _cut_to_column(columns, "message_content")
    return {
        "message_uuid": derived_uuid(sent_ms, f"{instance.pk}:{account.wxid}:{data.get('message_id')}"),
        "account_id": account.pk,
        "chat_type": ChatType.GROUP if data.get("conversation_type") == "room" else ChatType.PRIVATE,
        "chat_wxid": str(data.get("conversation_id") or "")[:100],
        "message_type": message_type if message_type in content_mod.MESSAGE_TYPES else "text",
        "message_metadata": {
            "direction": "in",
            "event_id": event.get("event_id"),
            "instance_message_id": data.get("message_id"),
            "sender": {"id": sender.get("id"), "name": sender.get("name")},
            "mentions_self": bool(data.get("mentions_self")),
            "quoted_message_id": data.get("quoted_message_id"),
            "is_self": bool(data.get("is_self")),
            "is_history": bool(data.get("is_history")),
            "seq": event.get("seq"),
            **metadata_extra,
        },
        "send_status": SendStatus.SUCCESS,
        "send_time": sent_at,
        "receive_time": timezone.now(),
        "at_members": mentions if isinstance(mentions, list) else (["all"] if mentions == "all" else None),
        "created_at": sent_at,
        **columns,
    }


def _cut_to_column(columns: dict, name: str) -> dict:
    """Cut a value longer than its TEXT column at a character boundary; the metadata that says so."""
    value = columns.get(name)
    if not value:
        return {}
    raw = value.encode("utf-8")
    if len(raw) <= MAX_CONTENT_BYTES:
        return {}
    columns[name] = raw[:MAX_CONTENT_BYTES].decode("utf-8", errors="ignore")
    log.warning("inbound %s of %d bytes stored cut at %d bytes", name, len(raw), MAX_CONTENT_BYTES)
    return {"truncated": True, "content_bytes": len(raw)}


def _store(row: dict):
    """Create the row in its month's shard; IntegrityError when its uuid is there already."""
    with transaction.atomic():
        try:
            return shards.create(Message, **row)
        except shards.ShardOutOfRange:
            # A message time outside the shard window (a client clock far off): keep it in the
            # current month, with its own time in send_time.
            row["created_at"] = timezone.now()
            row["message_uuid"] = derived_uuid(int(row["created_at"].timestamp() * 1000), row["message_uuid"])
            return shards.create(Message, **row)


# ------------------------------------------------------------------------------------------
# message.status
# ------------------------------------------------------------------------------------------

def handle_message_status(instance, event: dict) -> dict | None:
    """Apply the outcome of one of our sends; returns the applied counts or None."""
    data = event.get("data") or {}
    message = find_message_by_uuid(data.get("client_msg_id"))
    if message is None:
        log.info("message.status for an unknown client_msg_id %r", data.get("client_msg_id"))
        return None
    status = data.get("status")
    error = data.get("error") or {}
    # Lock order (docs/messaging.md): the receiver rows before the message rows, as the
    # dispatcher's flush takes them; so the message's metadata is written last.
    done = _apply_status(instance, message, status, error, data)
    _remember_instance_message_id(message, data.get("message_id"))
    return done


def _remember_instance_message_id(message, instance_message_id):
    if not instance_message_id:
        return
    meta = dict(message.message_metadata or {})
    if meta.get("instance_message_id") != instance_message_id:
        meta["instance_message_id"] = instance_message_id
        type(message)._base_manager.filter(pk=message.pk).update(message_metadata=meta)


def _apply_status(instance, message, status, error: dict, data: dict) -> dict | None:
    receiver = (
        MessageReceiver.objects.filter(message_id=message.pk)
        .values("id", "task_id", "retry_count").first()
    )
    if receiver is None:
        # A message outside any task: update the row only.
        fields = {"send_status": SendStatus.SUCCESS if status == "sent" else SendStatus.FAILED}
        if status != "sent":
            fields.update(error_code=(error.get("code") or status)[:50], error_message=error.get("message"))
        unsettled = [SendStatus.PENDING, SendStatus.SENDING]
        type(message)._base_manager.filter(pk=message.pk, send_status__in=unsettled).update(**fields)
        return {"message": message.pk}
    task = MessageTask.objects.filter(pk=receiver["task_id"]).values("id", "max_retry", "account_id").first()
    outcome = status_outcome(receiver["id"], message.pk, receiver["retry_count"], task["max_retry"],
                             task["account_id"], status, error, data.get("message_id"))
    if outcome.kind == K.QUEUED:
        return {"queued": 1}
    if outcome.kind == K.STOP:
        apply_outcomes(task["id"], [Outcome(receiver["id"], message.pk, K.FAILED, outcome.code, outcome.error)],
                       task["account_id"], instance.pk)
        stop_account(task["account_id"], outcome.code, outcome.error)
        return {"stopped": True}
    if outcome.kind == K.PAUSE:
        # the account went offline after accepting: the message is retried later, the task pauses
        outcome = Outcome(receiver["id"], message.pk, K.RETRY, outcome.code, outcome.error,
                          keep_message=False, delay_s=backoff_s(receiver["retry_count"]))
        pause_automatically(task["id"], outcome.error or outcome.code)
    done = apply_outcomes(task["id"], [outcome], task["account_id"], instance.pk)
    if done["success"] or done["failed"]:
        finish_if_done(task["id"])
    return done
