"""Settings, read from the environment (12-factor).

Every value has a safe development default; a `.env` file beside manage.py is read when present
(the run script writes one with a fresh SECRET_KEY and field key on first start). With
`DJANGO_DEBUG` off, the security settings are those `manage.py check --deploy` asks for.
"""
import os
from pathlib import Path

import environ
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DATA_DIR = Path(env.str("WEWORK_DATA_DIR", default=str(BASE_DIR / "data")))

# --- Core -----------------------------------------------------------------------------------
DEBUG = env.bool("DJANGO_DEBUG", default=False)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. Set it in the environment or in .env "
            "(scripts/run writes one for development)."
        )
    SECRET_KEY = "django-insecure-development-only-key-do-not-use-in-production-0123456789"
SECRET_KEY_FALLBACKS = env.list("DJANGO_SECRET_KEY_FALLBACKS", default=[])
ALLOWED_HOSTS = env.list(
    "DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else []
)
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# Fernet keys for secret columns (proxy passwords, encrypted configs, TOTP keys). The first
# encrypts; all decrypt. Rotate with `manage.py rotate_field_keys`.
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[])
if not FIELD_ENCRYPTION_KEYS and DEBUG:
    FIELD_ENCRYPTION_KEYS = ["ZGV2ZWxvcG1lbnQtb25seS1maWVsZC1rZXktMDAwMDA="]
if not FIELD_ENCRYPTION_KEYS:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        "FIELD_ENCRYPTION_KEYS is not set. Set one or more Fernet keys in the environment or in "
        ".env (see docs/deployment.md)."
    )

# Tests and CI set this so that nothing falls back to SQLite or in-process substitutes.
REQUIRE_SERVICES = env.bool("REQUIRE_SERVICES", default=False)

INSTALLED_APPS = [
    "wework.apps.WeworkAdminConfig",  # the OTP-aware admin site, replaces django.contrib.admin
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    # django-otp core only: its TOTP plugin stores keys in clear and its static plugin stores
    # backup codes in clear, so accounts/ ships encrypted/digested devices instead.
    "django_otp",
    "wework.apps.WeworkConfig",
    "wework.shards",
    "accounts",
    "instances",
    "contacts",
    "messaging",
    "monitoring",
    "scrm",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "wework.middleware.DatabaseRoutingMiddleware",  # replica routing per request, 503 when the database is away
    "django_otp.middleware.OTPMiddleware",
    "accounts.middleware.SessionRevocationMiddleware",  # revoked browser sessions log out
    "monitoring.middleware.RequestContextMiddleware",  # trace id, request context, audit actor
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "wework.urls"
WSGI_APPLICATION = "wework.wsgi.application"
ASGI_APPLICATION = "wework.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
            ],
        },
    },
]

# --- Databases ------------------------------------------------------------------------------
DATABASE_URL = env.str("DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'wework.sqlite3'}")


# A statement a web request runs is stopped by the server after this long (MariaDB
# max_statement_time, per connection), below the web server's 30 s worker timeout: a request
# that gave up never leaves its query running, and the answer is a 503 (wework/outages.py).
# On by default in the web process only (wework/wsgi.py sets WEWORK_PROCESS=web): workers,
# beat and commands (rotation, backfills) run long statements on purpose. 0 turns it off.
DATABASE_STATEMENT_TIMEOUT_S = env.float(
    "DATABASE_STATEMENT_TIMEOUT_S", default=25.0 if os.environ.get("WEWORK_PROCESS") == "web" else 0.0)


def _database(url):
    config = environ.Env.db_url_config(url)
    engine = config["ENGINE"]
    if engine == "django.db.backends.sqlite3":
        # WAL lets readers run beside the single writer; IMMEDIATE takes the write lock at
        # BEGIN so that concurrent writers wait (busy timeout) instead of failing mid-way.
        config["OPTIONS"] = {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": (
                "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;"
            ),
        }
    elif engine in ("django.db.backends.mysql",):
        config["OPTIONS"] = {
            "charset": "utf8mb4",
            "isolation_level": "read committed",
            "init_command": (
                "SET sql_mode='STRICT_TRANS_TABLES,NO_ZERO_IN_DATE,NO_ZERO_DATE,"
                "ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION', "
                "collation_connection='utf8mb4_unicode_ci'"
                + (f", max_statement_time={DATABASE_STATEMENT_TIMEOUT_S:g}" if DATABASE_STATEMENT_TIMEOUT_S > 0 else "")
            ),
        }
        config["TEST"] = {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"}
        config["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=300)
        # Kept on the request path: the check is one ping() at a request's first query (0.02 ms
        # median over TCP on 127.0.0.1, bench/README.md "bench_lists.py"), not the token
        # authentication's cost (its SELECT), and it is what moves a reused connection off a
        # node that went away (HAProxy, Galera fail-over) instead of failing the request.
        config["CONN_HEALTH_CHECKS"] = True
    return config


# Per-module databases (docs/schema.md, "Storage layout"): DATABASE_URL_<MODULE> places a
# module's tables in its own database (schema) or server; each defaults to DATABASE_URL, and
# modules with the same URL share one alias, so by default everything is in "default".
from wework.db.layout import MODULES as _MODULES, build as _build_layout

DATABASE_MODULE_URLS = {m: env.str(f"DATABASE_URL_{m.upper()}", default="") for m in _MODULES}
_alias_urls, DATABASE_MODULE_ALIASES = _build_layout(DATABASE_URL, DATABASE_MODULE_URLS)
DATABASE_SPLIT = len(_alias_urls) > 1

DATABASES = {}
for _alias, _url in _alias_urls.items():
    DATABASES[_alias] = _database(_url)
    if DATABASE_SPLIT and DATABASES[_alias]["ENGINE"] in ("django.db.backends.mysql", "django.db.backends.sqlite3"):
        # The same backends, whose schema editor leaves out foreign keys to another alias
        # (constraint-free cross-module references, wework/db/backends).
        DATABASES[_alias]["ENGINE"] = DATABASES[_alias]["ENGINE"].replace("django.db.backends.", "wework.db.backends.")
    if DATABASES[_alias]["ENGINE"].endswith("sqlite3"):
        DATA_DIR.mkdir(parents=True, exist_ok=True)
        DATABASES[_alias]["TEST"] = {"NAME": env.str("TEST_SQLITE_NAME", default="") or None}
        if _alias != "default":
            DATABASES[_alias]["TEST"]["NAME"] = None  # one in-memory database per alias

# Read replicas: comma-separated URLs (docs/deployment.md, "Topologies"). Tests mirror them onto
# the primary's test database (on the replica's own server when it is a real replica).
# DATABASE_REPLICA_URLS are the replicas of "default"; DATABASE_REPLICA_URLS_<MODULE> those of
# a module on its own alias (aliases "replica_<n>" and "replica_<alias>_<n>").
DATABASE_REPLICA_URLS = env.list("DATABASE_REPLICA_URLS", default=[])
DATABASE_REPLICA_MAX_LAG_S = env.float("DATABASE_REPLICA_MAX_LAG_S", default=5.0)
DATABASE_REPLICA_CHECK_INTERVAL_S = env.float("DATABASE_REPLICA_CHECK_INTERVAL_S", default=1.0)
DATABASE_REPLICA_CONNECT_TIMEOUT_S = env.int("DATABASE_REPLICA_CONNECT_TIMEOUT_S", default=2)
DATABASE_REPLICAS = {}  # primary alias -> its replica aliases
for _alias in list(_alias_urls):
    _urls = DATABASE_REPLICA_URLS if _alias == "default" else env.list(f"DATABASE_REPLICA_URLS_{_alias.upper()}", default=[])
    for _index, _url in enumerate(_urls):
        _name = f"replica_{_index}" if _alias == "default" else f"replica_{_alias}_{_index}"
        DATABASES[_name] = {**_database(_url), "TEST": {"MIRROR": _alias}}
        if DATABASES[_name]["ENGINE"] == "django.db.backends.mysql":
            # A replica that does not answer is skipped after this long, not after minutes.
            DATABASES[_name]["OPTIONS"]["connect_timeout"] = DATABASE_REPLICA_CONNECT_TIMEOUT_S
        DATABASE_REPLICAS.setdefault(_alias, []).append(_name)
DATABASE_ROUTERS = ["wework.routers.PrimaryReplicaRouter"]
if DATABASE_SPLIT:
    # django-guardian's default stores a grant through a generic relation, which looks the
    # content type up on the granted object's database; this looks it up on its own.
    GUARDIAN_GET_CONTENT_TYPE = "wework.db.layout.content_type_of"

DEFAULT_AUTO_FIELD = "wework.db.fields.UnsignedBigAutoField"

# --- Cache, sessions, Celery ----------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
# redis+cluster://host:port[,host:port...]: a Redis Cluster (wework/redis_conn.py), through
# redis-py's RedisCluster for the cache, sessions and every direct use of Redis.
REDIS_CLUSTER = REDIS_URL.startswith("redis+cluster://")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env.str("CACHE_KEY_PREFIX", default="wework"),
            "OPTIONS": {"CLIENT_CLASS": "django_redis.client.DefaultClient"},
        }
    }
    if REDIS_CLUSTER:
        CACHES["default"]["LOCATION"] = [REDIS_URL]  # one cluster: django-redis splits a string on ","
        CACHES["default"]["OPTIONS"] = {
            "CLIENT_CLASS": "wework.redis_conn.ClusterClient",
            "CONNECTION_FACTORY": "wework.redis_conn.ClusterConnectionFactory",
        }
    SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"
else:
    # Embedded default: a cache in files under the data folder, shared by the web server, the
    # Celery worker and beat. (An in-process cache gave each process its own: a contact sync
    # queued by the web server stayed "queued" and locked there after the worker had run it.)
    # EMBEDDED_CACHE=locmem: a per-process cache instead (the test suite). Sessions: database.
    if env.str("EMBEDDED_CACHE", default="file") == "locmem":
        CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    else:
        CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
                "LOCATION": str(DATA_DIR / "cache"),
                "OPTIONS": {"MAX_ENTRIES": 5000},
            }
        }
    SESSION_ENGINE = "django.contrib.sessions.backends.db"

_celery_dir = DATA_DIR / "celery"
# A Redis Cluster cannot carry Celery (its transport needs one server): with a cluster the broker
# must be named (RabbitMQ in production, docs/deployment.md).
_single_redis = "" if REDIS_CLUSTER else REDIS_URL
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=_single_redis or "filesystem://localhost/")
if REDIS_CLUSTER and CELERY_BROKER_URL.startswith("filesystem://") and not DEBUG:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(
        "REDIS_URL names a Redis Cluster, which cannot be Celery's broker: set CELERY_BROKER_URL "
        "(amqp://... for RabbitMQ, or a single Redis server)."
    )
_AMQP_BROKER = CELERY_BROKER_URL.startswith(("amqp://", "amqps://", "pyamqp://"))
CELERY_RESULT_BACKEND = env.str(
    "CELERY_RESULT_BACKEND",
    default=_single_redis or ("rpc://" if _AMQP_BROKER else f"file://{_celery_dir / 'results'}"),
)
if CELERY_BROKER_URL.startswith("filesystem://"):
    # Embedded default: the broker is a folder, so worker and beat need no server.
    for _sub in ("queue", "processed", "results", "control"):
        (_celery_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_celery_dir / "queue"),
        "data_folder_out": str(_celery_dir / "queue"),
        "processed_folder": str(_celery_dir / "processed"),
        # exchange tables for broadcasts (remote control); kombu defaults to ./control
        "control_folder": str(_celery_dir / "control"),
        "store_processed": False,
    }
if _AMQP_BROKER:
    # RabbitMQ: classic queues declared with x-max-priority (quorum queues keep two levels only),
    # so the priorities of messaging.dispatch.leases.celery_priority() order the queue (10 is
    # the highest there; Redis's transport counts the other way); publisher confirms, so an
    # enqueue that returns was taken by the broker. A queue declared earlier without the
    # argument must be deleted once (RabbitMQ refuses to redeclare it): docs/deployment.md.
    CELERY_TASK_QUEUE_MAX_PRIORITY = 10
    CELERY_TASK_DEFAULT_PRIORITY = 5
    CELERY_BROKER_TRANSPORT_OPTIONS = {"confirm_publish": True}
CELERY_TASK_DEFAULT_QUEUE = env.str("CELERY_QUEUE", default="celery")
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 3600
CELERY_TIMEZONE = env.str("TIME_ZONE", default="Asia/Shanghai")  # beat runs on local time
CELERY_BEAT_SCHEDULE = {}
CELERY_BEAT_SCHEDULE_FILENAME = env.str(
    "CELERY_BEAT_SCHEDULE_FILENAME", default=str(DATA_DIR / "celerybeat-schedule")
)
try:
    # Beat writes its schedule there at start: a production host that follows
    # docs/deployment.md has no data/ folder until something creates it (issue: beat crashed).
    Path(CELERY_BEAT_SCHEDULE_FILENAME).parent.mkdir(parents=True, exist_ok=True)
except OSError:
    pass  # a read-only web host; beat's own start reports a folder it cannot write

# --- Auth -----------------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
# One backend: passwords with lockout and login history, permissions through roles (expiring
# grants) and per-instance object grants stored in guardian's table (accounts/backends.py).
AUTHENTICATION_BACKENDS = ["accounts.backends.RoleBackend"]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "admin:login"
LOGIN_REDIRECT_URL = "admin:index"
GUARDIAN_RAISE_403 = False
ANONYMOUS_USER_NAME = None  # no guardian anonymous user row
# Access control (accounts/, docs/access-control.md).
TOKEN_PEPPER = env.str("TOKEN_PEPPER", default="")  # HMAC key of token digests; SECRET_KEY-derived if empty
ACCESS_TOKEN_SECONDS = env.int("ACCESS_TOKEN_SECONDS", default=3600)
ACCESS_REFRESH_SECONDS = env.int("ACCESS_REFRESH_SECONDS", default=30 * 24 * 3600)
ACCESS_REFRESH_GRACE_SECONDS = 5
ACCESS_LOCKOUT_THRESHOLD = env.int("ACCESS_LOCKOUT_THRESHOLD", default=5)
ACCESS_LOCKOUT_MINUTES = env.int("ACCESS_LOCKOUT_MINUTES", default=15)
ACCESS_LOGIN_RATE_PER_IP = (env.int("ACCESS_LOGIN_RATE_PER_IP", default=30), 60)  # per minute
ACCESS_LOGIN_RATE_PER_USERNAME = (env.int("ACCESS_LOGIN_RATE_PER_USERNAME", default=10), 60)
ACCESS_TRUSTED_PROXIES = env.int("ACCESS_TRUSTED_PROXIES", default=0)  # X-Forwarded-For hops
ACCESS_SUDO_MINUTES = env.int("ACCESS_SUDO_MINUTES", default=10)
ACCESS_CACHE_SECONDS = 300  # resolved permissions, never beyond the next grant expiry
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default="WeWork")

# --- API ------------------------------------------------------------------------------------
# The largest request body (JSON or form fields) read into memory; beyond it the API answers 413
# (wework.api.exceptions). Django's 2.5 MB default is too small for a legitimate task of many
# receivers (MAX_RECEIVERS_PER_TASK is 100,000; about 300 bytes each with a name and variables).
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=32 * 1024 * 1024)
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "wework.api.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "wework.api.permissions.PlatformPermission",
    ],
    "DEFAULT_FILTER_BACKENDS": [
        "wework.api.filters.PlatformFilterBackend",  # bad or unknown filters: 400
        "wework.api.filters.PlatformSearchFilter",  # large tables: indexed searches or a 400; declared only on lists that search
        "wework.api.filters.PlatformOrderingFilter",  # unknown ordering fields: 400
    ],
    "DEFAULT_PAGINATION_CLASS": "wework.api.pagination.KeysetPagination",  # no COUNT(*), O(page)
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "wework.api.exceptions.exception_handler",
    "DEFAULT_PARSER_CLASSES": [
        "wework.api.parsers.JSONParser",  # deeply nested JSON: 400, not a RecursionError
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "WeWork Platform API",
    "DESCRIPTION": "Manage WeCom client instances, accounts, contacts, messages and monitoring.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema names every endpoint and field: logged-in users only (session or token).
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Error answers and the `instance` parameter of shard lists (wework/api/schema.py).
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums",
                             "wework.api.schema.postprocess"],
    # Choice sets shared by several fields get one stable name (else: hashed names, warnings).
    "ENUM_NAME_OVERRIDES": {
        "EnabledStatusEnum": "accounts.models.Status",  # also messaging.TemplateStatus
        "GroupRoleEnum": "contacts.models.GroupRole",  # groups.my_role, group_members.role
        "ReceiverTypeEnum": "messaging.models.ReceiverType",  # 1 contact, 2 group (rows)
        "ReceiverKindEnum": ["contact", "group"],  # the same as words (send requests)
    },
}

# --- i18n -----------------------------------------------------------------------------------
LANGUAGE_CODE = env.str("LANGUAGE_CODE", default="zh-hans")
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="Asia/Shanghai")
USE_I18N = True
USE_TZ = True

# --- Static ---------------------------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles")))

# --- Security (production when DEBUG is off) ------------------------------------------------
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
    CSRF_COOKIE_SECURE = env.bool("DJANGO_SECURE_COOKIES", default=True)
    SECURE_HSTS_SECONDS = env.int("DJANGO_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_HSTS_INCLUDE_SUBDOMAINS", default=True)
    SECURE_HSTS_PRELOAD = env.bool("DJANGO_HSTS_PRELOAD", default=True)

# --- Logging --------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "filters": {
        "quiet_403": {"()": "wework.log_filters.QuietPermissionDenied"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
        # Structured records into system_logs (daily shards), queued and batched; see
        # docs/monitoring.md. SYSTEM_LOG_DB=0 turns the database sink off.
        "system_log": {
            "()": "monitoring.logging_handler.SystemLogHandler",
            "level": env.str("SYSTEM_LOG_LEVEL", default="INFO"),
            "queue_size": env.int("SYSTEM_LOG_QUEUE_SIZE", default=10_000),
            "batch_size": env.int("SYSTEM_LOG_BATCH_SIZE", default=500),
            "flush_interval": env.float("SYSTEM_LOG_FLUSH_INTERVAL", default=1.0),
            "enabled": env.bool("SYSTEM_LOG_DB", default=True)
            or bool(env.list("SYSTEM_LOG_ELASTICSEARCH_HOSTS", default=[])),
        },
    },
    "root": {"handlers": ["console", "system_log"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "django.request": {"filters": ["quiet_403"]},
        # One line per HTTP request to an instance (heartbeat checks, sends, syncs) and per
        # periodic task run (beat every 15 s) drowned what matters in the console and in
        # system_logs; the instance client logs its own retries and failures.
        "httpx": {"level": env.str("HTTPX_LOG_LEVEL", default="WARNING")},
        "httpcore": {"level": env.str("HTTPX_LOG_LEVEL", default="WARNING")},
        "celery.beat": {"level": env.str("CELERY_ROUTINE_LOG_LEVEL", default="WARNING")},
        "celery.app.trace": {"level": env.str("CELERY_ROUTINE_LOG_LEVEL", default="WARNING")},
        "celery.worker.strategy": {"level": env.str("CELERY_ROUTINE_LOG_LEVEL", default="WARNING")},
    },
}

# --- Monitoring (docs/monitoring.md) -------------------------------------------------------
SYSTEM_LOG_DB = env.bool("SYSTEM_LOG_DB", default=True)
SYSTEM_LOG_REQUESTS = env.bool("SYSTEM_LOG_REQUESTS", default=True)  # one access record/request
SYSTEM_LOG_ELASTICSEARCH = {  # off unless hosts are given
    "hosts": env.list("SYSTEM_LOG_ELASTICSEARCH_HOSTS", default=[]),
    "api_key": env.str("SYSTEM_LOG_ELASTICSEARCH_API_KEY", default=""),
    "username": env.str("SYSTEM_LOG_ELASTICSEARCH_USERNAME", default=""),
    "password": env.str("SYSTEM_LOG_ELASTICSEARCH_PASSWORD", default=""),
    "index_prefix": env.str("SYSTEM_LOG_ELASTICSEARCH_INDEX", default="wework-logs"),
    "verify_certs": env.bool("SYSTEM_LOG_ELASTICSEARCH_VERIFY_CERTS", default=True),
    "ca_certs": env.str("SYSTEM_LOG_ELASTICSEARCH_CA_CERTS", default=""),
}
INFLUXDB = {  # metrics exporter, off unless a URL is given
    "url": env.str("INFLUXDB_URL", default=""),
    "token": env.str("INFLUXDB_TOKEN", default=""),
    "org": env.str("INFLUXDB_ORG", default=""),
    "bucket": env.str("INFLUXDB_BUCKET", default="wework"),
}
MONITORING_TRUST_X_FORWARDED_FOR = env.bool("MONITORING_TRUST_X_FORWARDED_FOR", default=False)
ALERT_WECOM_ROBOTS = env.dict("ALERT_WECOM_ROBOTS", default={})  # name=webhook URL,...
ALERT_DEFAULT_CHANNELS = {
    "email": env.list("ALERT_EMAILS", default=[]),
    "wecom": env.list("ALERT_DEFAULT_ROBOTS", default=[]),
}
DASHBOARD_CACHE_SECONDS = env.int("DASHBOARD_CACHE_SECONDS", default=15)
# Shard retention (docs/shards.md): the daily rotation exports then drops shards past their cold
# window (SHARDING_BEAT_DROPS=0: export and keep them); exports go to SHARDING_EXPORT_DIR (a
# durable, shared mount in production), recorded with this host's name; cold shards are rebuilt
# with SHARDING_COLD_ROW_FORMAT on MySQL/MariaDB (empty: unchanged).
SHARDING_BEAT_DROPS = env.bool("SHARDING_BEAT_DROPS", default=True)
SHARDING_EXPORT_DIR = env.str("SHARDING_EXPORT_DIR", default=str(DATA_DIR / "shard-exports"))
SHARDING_EXPORT_HOST = env.str("SHARDING_EXPORT_HOST", default="")  # default: the host name
SHARDING_COLD_ROW_FORMAT = env.str("SHARDING_COLD_ROW_FORMAT", default="COMPRESSED")
SHARDING_VERSION_CHECK_S = env.float("SHARDING_VERSION_CHECK_S", default=1.0)
SHARDING_DROP_GRACE_S = env.float("SHARDING_DROP_GRACE_S", default=3.0)
# Retention of system logs (daily shards) and instance metrics (weekly shards).
SHARDING = {
    **globals().get("SHARDING", {}),
    "monitoring.SystemLog": {
        "hot_days": env.int("SYSTEM_LOG_HOT_DAYS", default=30),
        "cold_days": env.int("SYSTEM_LOG_COLD_DAYS", default=365),
    },
    "instances.InstanceMonitor": {
        "hot_days": env.int("METRICS_HOT_DAYS", default=30),
        "cold_days": env.int("METRICS_COLD_DAYS", default=365),
    },
}

# --- Messaging ------------------------------------------------------------------------------
# Overrides of messaging/conf.py (pacing, claims, limits), as JSON in one variable, e.g.
# MESSAGING_SETTINGS='{"MIN_INTERVAL_S": 5, "PER_MINUTE": 20, "MAX_RECEIVERS_PER_TASK": 50000}'.
MESSAGING = env.json("MESSAGING_SETTINGS", default={})

# --- Platform -------------------------------------------------------------------------------
# The platform's address as instances reach it: webhook URLs pushed to instances start with it.
PLATFORM_BASE_URL = env.str("PLATFORM_BASE_URL", default="http://127.0.0.1:8000")
# The most events an instance may push in one webhook request (protocol 1.2, announced in the
# config push as webhook_batch_max; at most 500). 1: one event a request, batches refused.
INSTANCE_WEBHOOK_BATCH_MAX = env.int("INSTANCE_WEBHOOK_BATCH_MAX", default=100)
# Outgoing mail (alert notifications) from one URL: smtp://user:pass@host:25,
# smtp+tls://...:587, smtp+ssl://...:465, consolemail://, dummymail://. Django 6.1's MAILERS
# replaces the deprecated EMAIL_* settings.
_email = environ.Env.email_url_config(
    env.str("EMAIL_URL", default="consolemail://" if DEBUG else "smtp://localhost:25")
)
MAILERS = {
    "default": {
        "BACKEND": _email["EMAIL_BACKEND"],
        "OPTIONS": {
            key: value
            for key, value in {
                "host": _email.get("EMAIL_HOST"),
                "port": _email.get("EMAIL_PORT"),
                "username": _email.get("EMAIL_HOST_USER"),
                "password": _email.get("EMAIL_HOST_PASSWORD"),
                "use_tls": _email.get("EMAIL_USE_TLS"),
                "use_ssl": _email.get("EMAIL_USE_SSL"),
                "timeout": env.int("EMAIL_TIMEOUT", default=10),
            }.items()
            if value not in (None, "")
        }
        if _email["EMAIL_BACKEND"].endswith("smtp.EmailBackend")
        else {},
    }
}
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="wework@localhost")

SILENCED_SYSTEM_CHECKS = [
    # SQLite keeps no column or table comments; MySQL/MariaDB get the design's comments.
    "fields.W163",
    "models.W046",
    # The design reuses index names (idx_status, ...) across tables; TableIndex makes them
    # unique per table where the database scopes names per database (SQLite).
    "models.E030",
    "models.E032",  # the same for unique keys (uk_name on roles and permissions)
    # accounts.backends.RoleBackend answers object permissions (guardian's table is storage).
    "guardian.W001",
]
