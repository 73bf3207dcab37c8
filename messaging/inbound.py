"""Instance events for messaging: `message.received` (inbound capture) and `message.status`
(acknowledgements of our sends).

The webhook intake (instances.services.dispatch_event) calls `handle_instance_event(instance,
event)` with the verified event envelope, inside a transaction.

Inbound de-duplication, in order:
1. the event id (`event_id`, remembered in Redis for DEDUPE_TTL_S);
2. the instance's message id: the row's `message_uuid` is a UUIDv7 derived from (instance,
   account, message id) and the message time, so the same message always gets the same uuid
   in the same monthly shard, where `uk_message_uuid` refuses a second row — for ever;
3. a fallback key (account, conversation, sender, content hash) within DEDUPE_WINDOW_S seconds,
   for runtimes that deliver one message twice under different ids.
History replays (`is_history`) are stored with `message_metadata.is_history = true` and are not
counted in today_messages / total_messages.
"""
import hashlib
import json
import logging
import uuid
from datetime import datetime, timezone as dt_timezone

from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils import timezone

from wework import shards

from . import conf, content as content_mod, dispatch, pacing
from .models import ChatType, Message, MessageReceiver, MessageTask, SendStatus

log = logging.getLogger("messaging.inbound")

KEY_PREFIX = "wework:msg:in:"

_FALLBACK_LUA = """
local prev = redis.call('GET', KEYS[1])
if prev and math.abs(tonumber(prev) - tonumber(ARGV[1])) <= tonumber(ARGV[2]) then return 1 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
return 0
"""


def handle_instance_event(instance, event):
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

def _remember(key, ttl):
    """True when `key` was not seen yet (and is now remembered)."""
    client = pacing._redis()
    if client is None:
        return cache.add(KEY_PREFIX + key, 1, timeout=ttl)
    return bool(client.set(KEY_PREFIX + key, 1, nx=True, ex=ttl))


def _forget(key):
    client = pacing._redis()
    if client is None:
        cache.delete(KEY_PREFIX + key)
    else:
        client.delete(KEY_PREFIX + key)


def _fallback_seen(key, ms, window_s, ttl):
    client = pacing._redis()
    if client is None:
        prev = cache.get(KEY_PREFIX + key)
        if prev is not None and abs(int(prev) - int(ms)) <= window_s * 1000:
            return True
        cache.set(KEY_PREFIX + key, int(ms), timeout=ttl)
        return False
    return bool(client.eval(_FALLBACK_LUA, 1, KEY_PREFIX + key, int(ms), int(window_s * 1000), int(ttl)))


# ------------------------------------------------------------------------------------------
# message.received
# ------------------------------------------------------------------------------------------

def handle_message_received(instance, event):
    """Store an inbound message once; returns {"stored": bool, "duplicate": reason|None, "id"}."""
    from contacts.models import WeworkAccount

    from . import services

    data = event.get("data") or {}
    account = WeworkAccount.all_objects.filter(instance_id=instance.pk, wxid=event.get("account_id")).first()
    if account is None:
        log.warning("message.received for unknown account %r on instance %s", event.get("account_id"), instance.pk)
        return {"stored": False, "duplicate": None, "reason": "unknown_account"}
    ttl = int(conf.get("DEDUPE_TTL_S"))
    event_key = f"ev:{instance.pk}:{event.get('event_id')}" if event.get("event_id") else None
    if event_key and not _remember(event_key, ttl):
        return {"stored": False, "duplicate": "event_id"}

    sent_ms = int(data.get("sent_at_ms") or event.get("ts_ms") or timezone.now().timestamp() * 1000)
    message_type = data.get("type") or "text"
    body = data.get("content") or {}
    conv = str(data.get("conversation_id") or "")
    sender = data.get("sender") or {}
    digest = hashlib.sha1(json.dumps(body, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()
    fb_key = f"fb:{account.pk}:{conv}:{sender.get('id')}:{message_type}:{digest}"
    if _fallback_seen(fb_key, sent_ms, int(conf.get("DEDUPE_WINDOW_S")), ttl):
        return {"stored": False, "duplicate": "fallback"}

    is_history = bool(data.get("is_history"))
    sent_at = datetime.fromtimestamp(sent_ms / 1000, tz=dt_timezone.utc)
    message_uuid = derived_uuid(sent_ms, f"{instance.pk}:{account.wxid}:{data.get('message_id')}")
    try:
        columns = content_mod.to_columns(message_type, body if message_type != "text" else {"text": body.get("text", "")})
    except Exception:  # noqa: BLE001 - keep what arrived, whatever its shape
        columns = {"message_content": json.dumps(body, ensure_ascii=False)}
    mentions = data.get("mentions")
    row = {
        "message_uuid": message_uuid,
        "account_id": account.pk,
        "chat_type": ChatType.GROUP if data.get("conversation_type") == "room" else ChatType.PRIVATE,
        "chat_wxid": conv[:100],
        "message_type": message_type if message_type in content_mod.MESSAGE_TYPES else "text",
        "message_metadata": {
            "direction": "in",
            "event_id": event.get("event_id"),
            "instance_message_id": data.get("message_id"),
            "sender": {"id": sender.get("id"), "name": sender.get("name")},
            "mentions_self": bool(data.get("mentions_self")),
            "quoted_message_id": data.get("quoted_message_id"),
            "is_self": bool(data.get("is_self")),
            "is_history": is_history,
            "seq": event.get("seq"),
        },
        "send_status": SendStatus.SUCCESS,
        "send_time": sent_at,
        "receive_time": timezone.now(),
        "at_members": mentions if isinstance(mentions, list) else (["all"] if mentions == "all" else None),
        "created_at": sent_at,
        **columns,
    }
    try:
        with transaction.atomic():
            try:
                created = shards.create(Message, **row)
            except shards.ShardOutOfRange:
                # A message time outside the shard window (a client clock far off): keep it in
                # the current month, with its own time in send_time.
                row["created_at"] = timezone.now()
                row["message_uuid"] = derived_uuid(int(row["created_at"].timestamp() * 1000), message_uuid)
                created = shards.create(Message, **row)
    except IntegrityError:
        return {"stored": False, "duplicate": "message_id"}
    except Exception:
        # Not stored: forget the marks so that a redelivery is processed.
        if event_key:
            _forget(event_key)
        _forget(fb_key)
        raise
    if not is_history:
        services.count_messages(account.pk, instance.pk, 1)
    return {"stored": True, "duplicate": None, "id": created.pk, "is_history": is_history}


# ------------------------------------------------------------------------------------------
# message.status
# ------------------------------------------------------------------------------------------

def handle_message_status(instance, event):
    """Apply the outcome of one of our sends; returns the applied counts or None."""
    from . import services

    data = event.get("data") or {}
    message = find_message_by_uuid(data.get("client_msg_id"))
    if message is None:
        log.info("message.status for an unknown client_msg_id %r", data.get("client_msg_id"))
        return None
    status = data.get("status")
    error = data.get("error") or {}
    if data.get("message_id"):
        meta = dict(message.message_metadata or {})
        if meta.get("instance_message_id") != data["message_id"]:
            meta["instance_message_id"] = data["message_id"]
            type(message)._base_manager.filter(pk=message.pk).update(message_metadata=meta)
    receiver = (
        MessageReceiver.objects.filter(message_id=message.pk)
        .values("id", "task_id", "retry_count").first()
    )
    if receiver is None:
        # A message outside any task: update the row only.
        fields = {"send_status": SendStatus.SUCCESS if status == "sent" else SendStatus.FAILED}
        if status != "sent":
            fields.update(error_code=(error.get("code") or status)[:50], error_message=error.get("message"))
        type(message)._base_manager.filter(pk=message.pk, send_status__in=[0, 1]).update(**fields)
        return {"message": message.pk}
    task = MessageTask.objects.filter(pk=receiver["task_id"]).values("id", "max_retry", "account_id").first()
    outcome = dispatch.status_outcome(receiver["id"], message.pk, receiver["retry_count"], task["max_retry"],
                                      task["account_id"], status, error, data.get("message_id"))
    if outcome.kind == "queued":
        return {"queued": 1}
    if outcome.kind == "stop":
        dispatch.apply_outcomes(task["id"], [dispatch.Outcome(receiver["id"], message.pk, "failed", outcome.code, outcome.error)],
                                task["account_id"], instance.pk)
        services.stop_account(task["account_id"], outcome.code, outcome.error)
        return {"stopped": True}
    if outcome.kind == "pause":
        outcome = dispatch.Outcome(receiver["id"], message.pk, "retry", outcome.code, outcome.error,
                                   keep_message=False, delay_s=dispatch.backoff_s(receiver["retry_count"]))
        MessageTask.objects.filter(pk=task["id"], status=1).update(status=5, error_message=outcome.error)
    done = dispatch.apply_outcomes(task["id"], [outcome], task["account_id"], instance.pk)
    if done["success"] or done["failed"]:
        services.finish_if_done(task["id"])
    return done
