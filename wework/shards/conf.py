"""Which models shard, by what, with what retention; and the period arithmetic.

`settings.SHARDING` overrides the defaults below per model and per key; each model's `enabled`
flag can also come from the environment: `SHARDING_MESSAGING_MESSAGE=0`.
"""
import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.apps import apps
from django.conf import settings

from .exceptions import ShardOutOfRange, UnknownShardModel

TIME_STRATEGIES = ("day", "week", "month")
STRATEGIES = TIME_STRATEGIES + ("instance",)

DEFAULTS = {
    "messaging.Message": {"by": "month", "time_field": "created_at", "uuid_field": "message_uuid"},
    "monitoring.SystemLog": {
        "by": "day", "time_field": "created_at", "uuid_field": "log_uuid", "hot_days": 7,
        "cold_days": 90, "create_ahead": 3,
    },
    "instances.InstanceMonitor": {"by": "week", "time_field": "collected_at", "cold_days": 180},
    "contacts.Contact": {"by": "instance"},
    "contacts.Group": {"by": "instance"},
    "contacts.GroupMember": {"by": "instance", "follows": {"group": "contacts.Group"}},
}

MIN_YEAR, MAX_YEAR = 2020, 2089  # the Snowflake id range


@dataclass(frozen=True)
class ShardConfig:
    label: str
    by: str
    enabled: bool = True
    time_field: str = "created_at"
    uuid_field: str = ""
    hot_days: int = 30
    cold_days: int = 365
    create_ahead: int = 2
    # FK name -> base model label: the FK points at the same instance's shard of that model.
    follows: dict = field(default_factory=dict)

    @property
    def is_time(self):
        return self.by in TIME_STRATEGIES

    @property
    def model(self):
        return apps.get_model(self.label)


def _env_flag(label):
    name = "SHARDING_" + label.upper().replace(".", "_")
    value = os.environ.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip().lower() in ("1", "true", "yes", "on")


_configs_cache = {}


def all_configs():
    """Every configured model (enabled or not), by label.

    Cached per SHARDING settings object; the environment flags are read when it is built (at
    start-up; `reset()` forgets the cache).
    """
    configured = getattr(settings, "SHARDING", None) or {}
    cached = _configs_cache.get("current")
    if cached is not None and cached[0] is configured:
        return cached[1]
    result = _build_configs(configured)
    _configs_cache["current"] = (configured, result, {k.lower(): v for k, v in result.items()})
    return result


def reset():
    _configs_cache.clear()


def _build_configs(configured):
    labels = {label: dict(options) for label, options in DEFAULTS.items()}
    for label, options in configured.items():
        labels[label] = {**labels.get(label, {}), **options}
    result = {}
    for label, options in labels.items():
        options = dict(options)
        env = _env_flag(label)
        if env is not None:
            options["enabled"] = env
        if options.get("by") not in STRATEGIES:
            raise UnknownShardModel(f"SHARDING[{label!r}] needs 'by' among {', '.join(STRATEGIES)}.")
        result[label] = ShardConfig(label=label, **options)
    return result


def resolve_label(model_or_label):
    if isinstance(model_or_label, str):
        return model_or_label
    meta = model_or_label._meta
    base = getattr(model_or_label, "_shard_base", None)
    if base is not None:
        meta = base._meta
    return f"{meta.app_label}.{meta.object_name}"


def config_for(model_or_label):
    """The ShardConfig of a model (class, shard class or "app.Model" label, case-insensitive)."""
    if isinstance(model_or_label, str):
        label = model_or_label
    else:
        meta = getattr(model_or_label, "_shard_base", model_or_label)._meta
        label = meta.label
    configs = all_configs()
    conf = _configs_cache["current"][2].get(label.lower())
    if conf is None:
        raise UnknownShardModel(f"{label} is not a sharded model (known: {', '.join(configs)}).")
    return conf


def is_installed(conf):
    try:
        _model = conf.model  # resolving it is the check
    except LookupError:
        return False
    return True


# --- Periods --------------------------------------------------------------------------------

def shard_timezone():
    return ZoneInfo(getattr(settings, "SHARDING_TIME_ZONE", None) or settings.TIME_ZONE)


@dataclass(frozen=True, order=True)
class Period:
    """One time period of a strategy: [start, end) in the shard time zone, with its suffix."""

    start: datetime
    end: datetime
    by: str
    suffix: str

    def next(self):
        return period_of(self.by, self.end)

    def previous(self):
        return period_of(self.by, self.start - timedelta(seconds=1))


def period_of(by, when):
    """The period of strategy `by` that holds the aware datetime `when`."""
    tz = shard_timezone()
    local = when.astimezone(tz)
    if not MIN_YEAR <= local.year <= MAX_YEAR:
        raise ShardOutOfRange(f"{local:%Y-%m-%d} is outside the supported years {MIN_YEAR}-{MAX_YEAR}.")
    if by == "day":
        start = datetime(local.year, local.month, local.day, tzinfo=tz)
        end = start + timedelta(days=1)
        end = datetime(end.year, end.month, end.day, tzinfo=tz)
        suffix = f"{start:%Y%m%d}"
    elif by == "week":
        day = datetime(local.year, local.month, local.day, tzinfo=tz)
        monday = day - timedelta(days=day.weekday())
        start = datetime(monday.year, monday.month, monday.day, tzinfo=tz)
        nxt = start + timedelta(days=7)
        end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz)
        iso = start.isocalendar()
        suffix = f"{iso.year:04d}w{iso.week:02d}"
    elif by == "month":
        start = datetime(local.year, local.month, 1, tzinfo=tz)
        end = datetime(local.year + (local.month == 12), local.month % 12 + 1, 1, tzinfo=tz)
        suffix = f"{start:%Y%m}"
    else:
        raise ValueError(f"{by!r} is not a time strategy")
    return Period(start, end, by, suffix)


_SUFFIX = {
    "day": re.compile(r"^(\d{4})(\d{2})(\d{2})$"),
    "week": re.compile(r"^(\d{4})w(\d{2})$"),
    "month": re.compile(r"^(\d{4})(\d{2})$"),
}


def parse_suffix(by, suffix):
    """The Period named by a suffix (`202611`, `20261128`, `2026w48`); ShardOutOfRange if invalid."""
    match = _SUFFIX[by].match(suffix or "")
    if not match:
        raise ShardOutOfRange(f"{suffix!r} is not a {by} period suffix.")
    tz = shard_timezone()
    try:
        if by == "day":
            y, m, d = map(int, match.groups())
            when = datetime(y, m, d, 12, tzinfo=tz)
        elif by == "month":
            y, m = map(int, match.groups())
            when = datetime(y, m, 15, tzinfo=tz)
        else:
            y, w = map(int, match.groups())
            when = datetime.fromisocalendar(y, w, 3).replace(hour=12, tzinfo=tz)
    except ValueError as exc:
        raise ShardOutOfRange(f"{suffix!r} is not a valid {by} period ({exc}).") from None
    period = period_of(by, when)
    if period.suffix != suffix:
        raise ShardOutOfRange(f"{suffix!r} is not a valid {by} period.")
    return period


def table_name(base_model, suffix):
    """The physical name of a shard table: the base table, an underscore, the suffix."""
    return f"{base_model._meta.db_table}_{suffix}"


def instance_suffix(instance_id):
    value = int(instance_id)
    if value <= 0:
        raise ShardOutOfRange(f"{instance_id!r} is not a valid instance id.")
    return str(value)
