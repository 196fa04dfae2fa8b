"""Settings shared by every mode. Everything that differs comes from the environment.

Modes: ``local`` (``make run``: SQLite + embedded Redis defaults), ``production``
(everything from the environment, passes ``check --deploy``) and ``test``.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import crontab

BASE_DIR = Path(__file__).resolve().parent.parent.parent
# The platform's state (SQLite, embedded Redis, generated keys); ``make run`` uses the same.
VAR_DIR = Path(os.environ.get("PLATFORM_VAR_DIR") or BASE_DIR / "var")

env = environ.Env()


def running_instance_env(var_dir: Path) -> dict[str, str]:
    """What a running ``make run`` recorded in ``var/run.env`` (its Redis, and its database
    when not the default), if that process is still alive; ``{}`` otherwise."""
    try:
        text = (var_dir / "run.env").read_text()
    except OSError:
        return {}
    values = dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
    try:
        os.kill(int(values.get("RUNNER_PID", "")), 0)
    except (ValueError, ProcessLookupError, PermissionError, OverflowError):
        return {}
    return values


# A management command started beside ``make run`` without REDIS_URL/DATABASE_URL joins that
# instance, so its progress reaches the dashboards (tests never do: they get their own).
RUNNING_INSTANCE = (
    {} if os.environ.get("DJANGO_SETTINGS_MODULE", "").endswith(".test") else running_instance_env(VAR_DIR)
)
for _key in ("REDIS_URL", "DATABASE_URL", "CHANNEL_PREFIX"):
    if not os.environ.get(_key) and RUNNING_INSTANCE.get(_key):
        os.environ[_key] = RUNNING_INSTANCE[_key]

DEBUG = env.bool("DEBUG", default=False)
SECRET_KEY = env("SECRET_KEY", default="")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Fernet keys (comma-separated, newest first) for secrets at rest: server credentials,
# storage keys, the Acronis client secret, channel webhooks. MultiFernet allows rotation.
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEY", default=[])

INSTALLED_APPS = [
    "backupplatform.console.apps.ConsoleAdminConfig",  # django.contrib.admin with the console's site
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "channels",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "mozilla_django_oidc",
    "tenants",
    "audit",
    "backups",
    "schedules",
    "acronis",
    "backupplatform",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "backupplatform.listeners.JobsListenerMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "tenants.signin.TwoFactorSessionMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "audit.middleware.AuditContextMiddleware",
]

ROOT_URLCONF = "backupplatform.urls"
# api-layer.md's jobs API at its documented paths (/api/v1/backups are backup jobs there): on
# its own listener, chosen by the port a request arrived on, or by host name behind a proxy
# (backupplatform/listeners.py). ``make run`` listens on 5000 for it.
JOBS_API_PORTS = env.list("JOBS_API_PORTS", cast=int, default=[])
JOBS_API_HOSTS = env.list("JOBS_API_HOSTS", default=[])
APPEND_SLASH = False

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
            ],
        },
    },
]

WSGI_APPLICATION = "backupplatform.wsgi.application"
ASGI_APPLICATION = "backupplatform.asgi.application"


def database_from_env(default: str) -> dict:
    """Parse ``DATABASE_URL``; SQLite gets WAL mode and immediate transactions."""
    url = env("DATABASE_URL", default=default)
    config = environ.Env.db_url_config(url)
    if config["ENGINE"] == "django.db.backends.sqlite3":
        config["OPTIONS"] = {
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
        }
    else:
        config.setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
        config["CONN_HEALTH_CHECKS"] = True
    return config


DATABASES = {"default": database_from_env(f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
# The ASGI server runs each request's sync code in a thread of its own, so persistent
# connections (CONN_MAX_AGE) pile up one per thread until PostgreSQL refuses more. The ASGI
# process therefore uses Django's psycopg pool instead (asgi.py calls
# backupplatform.dbpool.use_pool()): at most DB_POOL_MAX_SIZE connections per ASGI process,
# requests wait up to DB_POOL_TIMEOUT seconds for one. Workers and commands keep plain
# connections (a pool does not survive Celery's prefork).
DB_POOL_ASGI = env.bool("DB_POOL_ASGI", default=True)
DB_POOL_MIN_SIZE = env.int("DB_POOL_MIN_SIZE", default=2)
DB_POOL_MAX_SIZE = env.int("DB_POOL_MAX_SIZE", default=10)
DB_POOL_TIMEOUT = env.float("DB_POOL_TIMEOUT", default=20.0)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")

CACHES = {
    "default": {
        "BACKEND": "backupplatform.cache.SharedRedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": env("CACHE_KEY_PREFIX", default="bp"),
    }
}

CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {"hosts": [REDIS_URL], "prefix": env("CHANNEL_PREFIX", default="bp")},
    }
}

CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL)
CELERY_RESULT_BACKEND = env("CELERY_RESULT_BACKEND", default=REDIS_URL)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=6 * 3600)
# django-celery-beat's DatabaseScheduler, recording its ticks for /health/.
# Beat also dispatches due backup jobs on each tick (schedules/beat.py): at most a second late.
CELERY_BEAT_SCHEDULER = "schedules.beat:Scheduler"
CELERY_BEAT_MAX_LOOP_INTERVAL = 1
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Surviving a broker restart (README "Operating the platform"): kombu's Redis transport with
# the fix of ``backupplatform.broker`` (a late-acknowledged task no longer kills the worker
# when Redis goes away); reconnect for as long as it takes instead of exiting after 100
# tries; and let running backups finish when the connection drops (Celery 6 would cancel
# them): their outcome is written to the database, and a redelivered message is a no-op.
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT = "backupplatform.broker:Transport"
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
# Job priority (1-10) becomes Celery priority 0-9 (0 first); Redis honours it with these.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "priority_steps": list(range(10)),
    "queue_order_strategy": "priority",
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=3600),
    # Notice a dead broker connection (no RST, e.g. a vanished host).
    "socket_keepalive": True,
    "health_check_interval": 25,
}
CELERY_BEAT_SCHEDULE = {
    # db-backup-platform.md "WebSocket Events": server_health on change.
    "check-server-health": {"task": "backups.check_server_health", "schedule": 300.0},
    # acronis-integration.md: refresh caches and push backup_status_update per tenant.
    "acronis-poll": {"task": "acronis.poll_all", "schedule": 60.0},
    # Fail operations whose worker died (no heartbeat) and remove their partial artifacts.
    "reap-operations": {"task": "backups.tasks.reap_operations", "schedule": 60.0},
    # The same for restore drills: fail those whose worker died, drop their scratch copies.
    "reap-drills": {"task": "schedules.tasks.reap_drills", "schedule": 60.0},
    # Abort multipart uploads (and uncommitted blocks) that failed writers could not clean up.
    "sweep-abandoned-uploads": {"task": "backups.tasks.sweep_abandoned_uploads", "schedule": 3600.0},
    # Retention: apply every backup job's retention once a day (03:30 UTC).
    "retention-cleanup": {"task": "schedules.tasks.cleanup_all", "schedule": crontab(minute="30", hour="3")},
    # Notification summaries and deliveries whose task message was lost.
    "sweep-notifications": {"task": "audit.tasks.sweep_notifications", "schedule": 60.0},
}
# A running operation whose heartbeat is older than this is considered dead (seconds). The
# worker running it refreshes the heartbeat every OPERATION_HEARTBEAT_INTERVAL seconds from a
# thread of its own, whatever the work is doing, so only a dead worker misses six in a row.
OPERATION_HEARTBEAT_TIMEOUT = env.int("OPERATION_HEARTBEAT_TIMEOUT", default=60)
OPERATION_HEARTBEAT_INTERVAL = env.int("OPERATION_HEARTBEAT_INTERVAL", default=10)
# /health/ (README "Operating the platform"): when an operation waits in the queue too long
# while nothing runs, and how old a worker / beat / reaper heartbeat may be (seconds).
OPERATION_PENDING_GRACE = env.int("OPERATION_PENDING_GRACE", default=300)
HEALTH_HEARTBEAT_INTERVAL = env.int("HEALTH_HEARTBEAT_INTERVAL", default=10)
HEALTH_WORKER_STALE_AFTER = env.int("HEALTH_WORKER_STALE_AFTER", default=60)
HEALTH_BEAT_STALE_AFTER = env.int("HEALTH_BEAT_STALE_AFTER", default=60)
HEALTH_REAPER_STALE_AFTER = env.int("HEALTH_REAPER_STALE_AFTER", default=180)
# Transient storage failures (README "Storages"): each request (S3 part, block, chunk, SFTP
# reconnect) is retried with exponential backoff and jitter up to these bounds, then the
# backup task is retried as a whole (BACKUP_TASK_*: first wait up to RETRY_BACKOFF seconds,
# doubling, jittered) before the backup fails.
STORAGE_RETRY_ATTEMPTS = env.int("STORAGE_RETRY_ATTEMPTS", default=6)
STORAGE_RETRY_INITIAL = env.float("STORAGE_RETRY_INITIAL", default=1.0)
STORAGE_RETRY_MAX = env.float("STORAGE_RETRY_MAX", default=30.0)
STORAGE_RETRY_DEADLINE = env.float("STORAGE_RETRY_DEADLINE", default=300.0)
BACKUP_TASK_MAX_RETRIES = env.int("BACKUP_TASK_MAX_RETRIES", default=4)
BACKUP_TASK_RETRY_BACKOFF = env.int("BACKUP_TASK_RETRY_BACKOFF", default=60)
BACKUP_TASK_RETRY_BACKOFF_MAX = env.int("BACKUP_TASK_RETRY_BACKOFF_MAX", default=1800)
# Incomplete uploads older than this (seconds) are aborted by the hourly sweep.
STORAGE_ABANDONED_UPLOAD_AGE = env.int("STORAGE_ABANDONED_UPLOAD_AGE", default=6 * 3600)
# Timeout of interactive server connection tests and health checks (seconds).
SERVER_CONNECT_TIMEOUT = env.float("SERVER_CONNECT_TIMEOUT", default=5.0)
# The periodic health sweep probes this many servers at once.
HEALTH_CHECK_CONCURRENCY = env.int("HEALTH_CHECK_CONCURRENCY", default=100)

# Notifications and webhooks (README "Notifications, webhooks, commands and metrics").
# Links in messages point at the admin under this address.
PUBLIC_BASE_URL = env("PUBLIC_BASE_URL", default="http://127.0.0.1:8000")
NOTIFY_HTTP_TIMEOUT = env.float("NOTIFY_HTTP_TIMEOUT", default=10.0)
# Retries of a delivery: Celery's exponential backoff from NOTIFY_RETRY_BACKOFF seconds up to
# NOTIFY_RETRY_BACKOFF_MAX (never shorter than the receiver's Retry-After, capped at
# NOTIFY_RETRY_AFTER_MAX), until NOTIFY_GIVE_UP_AFTER seconds after the event.
NOTIFY_RETRY_BACKOFF = env.int("NOTIFY_RETRY_BACKOFF", default=30)
NOTIFY_RETRY_BACKOFF_MAX = env.int("NOTIFY_RETRY_BACKOFF_MAX", default=1800)
NOTIFY_RETRY_AFTER_MAX = env.int("NOTIFY_RETRY_AFTER_MAX", default=3600)
NOTIFY_GIVE_UP_AFTER = env.int("NOTIFY_GIVE_UP_AFTER", default=6 * 3600)
# Given-up deliveries in a row after which a channel or webhook is flagged as failing.
NOTIFY_FAILING_AFTER = env.int("NOTIFY_FAILING_AFTER", default=3)
# Identical repeated events (same job, same kind) reach a channel once per window, then a summary.
NOTIFY_GROUP_WINDOW = env.int("NOTIFY_GROUP_WINDOW", default=3600)
# E-mail channels without an SMTP server of their own use the operator's.
EMAIL_HOST = env("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", default=False)
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="backups@localhost")

# Remote commands (db-backup-platform.md "Commands").
COMMAND_DEFAULT_TIMEOUT = env.int("COMMAND_DEFAULT_TIMEOUT", default=60)
COMMAND_MAX_TIMEOUT = env.int("COMMAND_MAX_TIMEOUT", default=3600)
COMMAND_OUTPUT_LIMIT = env.int("COMMAND_OUTPUT_LIMIT", default=64 * 1024)

# /metrics (Prometheus): scrapes must send "Authorization: Bearer <METRICS_TOKEN>"; unset, the
# endpoint is off.
METRICS_TOKEN = env("METRICS_TOKEN", default="")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env("STATIC_ROOT", default=str(VAR_DIR / "static"))
# The ASGI server serves /static/ itself (admin, console and Swagger assets, all in the
# repository: nothing comes from a CDN): on by default with DEBUG; production sets it, or
# serves ``collectstatic``'s STATIC_ROOT from its web server.
SERVE_STATIC = env.bool("SERVE_STATIC", default=DEBUG)

# Request bodies: API bodies are small JSON; uploads (console import) stream to disk.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=2 * 1024 * 1024)

# Sign-in to the admin (README "Tenancy, roles, authentication"): a password, then a TOTP code
# for members of tenants that require a second factor (and for anyone who enrolled one), or
# OpenID Connect single sign-on when OIDC_RP_CLIENT_ID is set.
LOGIN_URL = "/admin/login/"
LOGIN_REDIRECT_URL = "/admin/"
LOGOUT_REDIRECT_URL = "/admin/login/"
OTP_TOTP_ISSUER = env("OTP_TOTP_ISSUER", default="Backup Platform")
OIDC_RP_CLIENT_ID = env("OIDC_RP_CLIENT_ID", default="")
OIDC_RP_CLIENT_SECRET = env("OIDC_RP_CLIENT_SECRET", default="")
OIDC_ENABLED = bool(OIDC_RP_CLIENT_ID)
OIDC_OP_ISSUER = env("OIDC_OP_ISSUER", default="")
OIDC_OP_AUTHORIZATION_ENDPOINT = env("OIDC_OP_AUTHORIZATION_ENDPOINT", default="")
OIDC_OP_TOKEN_ENDPOINT = env("OIDC_OP_TOKEN_ENDPOINT", default="")
OIDC_OP_USER_ENDPOINT = env("OIDC_OP_USER_ENDPOINT", default="")
OIDC_OP_JWKS_ENDPOINT = env("OIDC_OP_JWKS_ENDPOINT", default="")
OIDC_RP_SIGN_ALGO = env("OIDC_RP_SIGN_ALGO", default="RS256")
OIDC_RP_SCOPES = env("OIDC_RP_SCOPES", default="openid email profile")
OIDC_VERIFY_SSL = env.bool("OIDC_VERIFY_SSL", default=True)
OIDC_USE_PKCE = env.bool("OIDC_USE_PKCE", default=True)
OIDC_TIMEOUT = env.int("OIDC_TIMEOUT", default=15)
# The claim listing the user's tenants and roles, each "<tenant-slug>:<role>" (e.g. "acme:operator").
OIDC_TENANT_CLAIM = env("OIDC_TENANT_CLAIM", default="groups")
OIDC_PROVIDER_NAME = env("OIDC_PROVIDER_NAME", default="single sign-on")
LOGIN_REDIRECT_URL_FAILURE = "/admin/login/?sso=failed"
AUTHENTICATION_BACKENDS = ["django.contrib.auth.backends.ModelBackend"] + (
    ["tenants.oidc.TenantOIDCBackend"] if OIDC_ENABLED else []
)

# Self-registration (db-backup-platform.md "Authentication"); operators can turn it off.
REGISTRATION_ENABLED = env.bool("REGISTRATION_ENABLED", default=True)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tenants.authentication.ApiKeyAuthentication",
        "tenants.authentication.BearerJWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "backupplatform.facades.schema.FacadeAutoSchema",
    "DEFAULT_THROTTLE_RATES": {
        "login": env("THROTTLE_LOGIN", default="5/min"),
        "console": env("THROTTLE_CONSOLE", default="60/min"),
        "jobs": env("THROTTLE_JOBS", default="100/min"),
    },
    "NUM_PROXIES": env.int("NUM_PROXIES", default=0),
    # The seeds use ``format`` as a parameter of their own (audit export, downloads, reports).
    "URL_FORMAT_OVERRIDE": None,
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}
# Backup key exports per user (POST /api/v1/keys/export), wrong passwords included.
THROTTLE_KEY_EXPORT = env("THROTTLE_KEY_EXPORT", default="5/hour")
# The admin's sign-in form: after this many wrong passwords for one user name from one address
# (or from one address at all) within the window, it refuses every try until the window ends.
SIGNIN_MAX_FAILURES = env.int("SIGNIN_MAX_FAILURES", default=5)
SIGNIN_MAX_FAILURES_PER_ADDRESS = env.int("SIGNIN_MAX_FAILURES_PER_ADDRESS", default=50)
SIGNIN_FAILURE_WINDOW = env.int("SIGNIN_FAILURE_WINDOW", default=900)

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=env.int("JWT_ACCESS_MINUTES", default=15)),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=env.int("JWT_REFRESH_DAYS", default=7)),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
    "AUTH_HEADER_TYPES": ("Bearer",),
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Backup Platform API",
    "DESCRIPTION": (
        "One domain model served through five documented API surfaces: platform (/api/v1), "
        "jobs (/api/v1/jobs, storage, verify, api-keys, webhooks), workspace "
        "(/api/v1/workspaces/{ws_id}/...), console (/cloud-integration/backup/...) and "
        "acronis (/api/acronis/...)."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "SCHEMA_PATH_PREFIX": r"/api/v1|/cloud-integration/backup|/api/acronis",
    # /cloud-integration/v1/backup/... serves the console's documented operations again.
    "PREPROCESSING_HOOKS": ["backupplatform.facades.schema.drop_aliases"],
    "SECURITY": [{"jwtAuth": []}, {"apiKeyAuth": []}],
    "APPEND_COMPONENTS": {
        "securitySchemes": {
            "apiKeyAuth": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        }
    },
    "ENUM_NAME_OVERRIDES": {
        "RoleEnum": "tenants.models.Role",
        "PlanEnum": "tenants.models.Plan",
        "ServerTypeEnum": "backups.models.ServerType",
        "HealthStatusEnum": "backups.models.HealthStatus",
        "StorageTypeEnum": "backups.models.StorageType",
        "StorageStatusEnum": "backups.models.StorageStatus",
        "StorageWritableStatusEnum": "backupplatform.facades.workspace.serializers.WRITABLE_STORAGE_STATUSES",
        "SourceTypeEnum": "backups.models.SourceType",
        "BackupStatusEnum": "backups.models.BackupStatus",
        "SourceComponentEnum": "backups.models.applications.Component",
        "ConfigComponentEnum": "backups.services.config.COMPONENTS",
        "ChannelTypeEnum": "audit.models.ChannelType",
        "NotificationLevelEnum": "audit.models.Level",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", default="INFO")},
    # httpx logs every request line, query string included (cursors, filters), at INFO;
    # integrations log their own concise line instead.
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}

# zstd's worker threads per backup (0: compress on the pipeline's own thread; 1: one worker
# beside it, the default; 2+: more cores for compression, about 20-50 MiB of memory each).
BACKUP_ZSTD_THREADS = env.int("BACKUP_ZSTD_THREADS", default=1)
# Where the "local" storage type writes when a storage gives no path of its own.
BACKUP_LOCAL_ROOT = env("BACKUP_LOCAL_ROOT", default=str(VAR_DIR / "backups"))
# Other folders of the platform's machines that local storages, file sources and restore
# targets may use (backupplatform/paths.py); everything else on the host is out of reach.
# Each tenant gets ``<root>/<slug>`` of each root unless a superuser sets its own folders
# (backups/confinement.py).
LOCAL_PATH_ROOTS = env.list("LOCAL_PATH_ROOTS", default=[])
# Outbound targets tenants configure (backupplatform/netpolicy.py): private and loopback
# networks a tenant may reach (none by default: list your database and storage networks),
# and whether the platform's own database/Redis endpoints may be targets (never in production).
OUTBOUND_ALLOWED_NETWORKS = env.list("OUTBOUND_ALLOWED_NETWORKS", default=[])
OUTBOUND_ALLOW_PLATFORM_SERVICES = False
# Where uploaded backup files wait, per tenant, before they are checked and imported.
IMPORT_STAGING_ROOT = env("IMPORT_STAGING_ROOT", default=str(VAR_DIR / "staging"))
