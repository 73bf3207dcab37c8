"""Domain logic of instances: configuration, registration, commands (restart, push config),
webhook intake (signature, replay refusal, de-duplication, sequence gaps) and health.

Views, API viewsets, Celery tasks and management commands call these functions; they hold no
logic of their own. Account-level events (logins, account states, contacts, rooms) and message
events are handled by the apps above (contacts, messaging), which register their handlers in
`instances.hooks`; so do the alerts (monitoring).

One topic per module: `base` (keys, limits, the service error), `configs` (typed and
encrypted configuration), `commands` (the client, commands, registration), `intake` (webhook
intake and event processing), `health` (heartbeats, alerts, offline marking), `endpoint` (where the secrets go: the one
way to change an instance's API URL or proxy), `registration` (register_instance). Their names are
re-exported here (`from instances import services`).
"""
# ruff: noqa: F401 - re-exports
from .base import (
    MASK,
    MISSED_HEARTBEATS,
    PUPPET_SERVICES_KEY,
    RATE_LIMIT_PREFIX,
    RESERVED_KEYS,
    TOKEN_KEY,
    WEBHOOK_SECRET_KEY,
    ServiceError,
    logger,
)
from .commands import (
    _call,
    _status_for,
    audit,
    client_for,
    config_payload,
    push_config,
    record_instance_error,
    restart_instance,
    set_puppet_services,
    webhook_url,
)
from .configs import (
    _FALSE,
    _SECRETS,
    _TRUE,
    SECRET_CACHE_SECONDS,
    config_value,
    decrypt_text,
    encrypt_text,
    forget_secrets,
    format_config_value,
    get_config,
    new_secret,
    parse_config_value,
    set_config,
)
from .endpoint import CHANGE_ENDPOINT, EndpointChange, change_endpoint
from .registration import Registration, register_instance
from .health import (
    INSTANCE_HANDLERS,
    PLANNED_RESTART_WINDOW,
    RECONNECT_PROBE_INTERVAL_S,
    _resolve_back_online,
    fire_alert,
    handle_client_exited,
    handle_heartbeat,
    handle_started,
    handle_stream_gap,
    is_planned_restart,
    mark_silent_instances_offline,
    reconnect_offline_instances,
    resolve_alert,
    write_metrics,
)
from .intake import (
    PROCESSING_TIMEOUT,
    IntakeResult,
    _instance_secret,
    _load_instance_secret,
    _refuse,
    check_sequence,
    dispatch_event,
    enqueue_event,
    ensure_shards_for,
    process_event,
    process_events,
    prune_events,
    receive_webhook,
    replay_events,
    retry_stuck_events,
    store_event,
    store_events,
)
