"""Settings shared by every environment; everything is driven by environment variables.

dev/test/production only adjust what differs. Defaults are the embedded, safe ones:
SQLite and a filesystem Celery broker under ``var/``, email to the console and a file.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import django_stubs_ext
import environ
from celery.schedules import crontab
from csp.constants import NONCE

# Lets generic admin/queryset classes be subscripted at run time (typed with django-stubs).
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(environ.Env().str("CONSOLE_VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

env = environ.Env()

SECRET_KEY = env.str("SECRET_KEY", default="dev-insecure-only-for-local-runs")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_countries",
    "template_partials",
    "django_htmx",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "django_structlog",
    "csp",
    "console",
    "orgs",
    "projects",
    "billing",
]

MIDDLEWARE = [
    "console.middleware.ForwardedProtoMiddleware",  # before SecurityMiddleware reads the header
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django_structlog.middlewares.RequestMiddleware",
    "console.middleware.RequestContextMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "console.uploads.RequestBodyLimitMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "allauth.account.middleware.AccountMiddleware",
]
# The gateway API's own stack (console/handlers.py): token-authenticated JSON, no session or CSRF.
GATEWAY_PATH_PREFIX = "/api/v1/gateway/"
GATEWAY_MIDDLEWARE = [
    "console.middleware.ForwardedProtoMiddleware",  # before SecurityMiddleware reads the header
    "django.middleware.security.SecurityMiddleware",
    "console.handlers.GatewayRequestLogMiddleware",
]

ROOT_URLCONF = "console.urls"
WSGI_APPLICATION = "console.wsgi.application"
AUTH_USER_MODEL = "console.User"

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
                "console.context_processors.console",
                "csp.context_processors.nonce",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'console.sqlite3'}")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=0)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL + a busy timeout let the web process, the worker and beat share one file.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 20, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    # A file cache is shared by the web process, the worker and beat (allauth's rate limits use it).
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = env.str("STATIC_ROOT", default=str(VAR_DIR / "staticfiles"))
Path(STATIC_ROOT).mkdir(parents=True, exist_ok=True)  # whitenoise warns about a missing folder
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
MEDIA_ROOT = env.str("MEDIA_ROOT", default=str(VAR_DIR / "media"))
# Uploaded files are private (verification documents): never served from a public MEDIA_URL.
MEDIA_URL = "/media-not-served/"

# The client's IP (audit log, request log, login rate limits) comes from X-Forwarded-For only as far
# as these proxies vouch for it, and X-Forwarded-Proto counts only from them: addresses/CIDRs of
# your reverse proxies, or the number of proxies in front of the console. Neither (the default)
# trusts no header and uses the socket's address. See deploy/README.md.
CONSOLE_TRUSTED_PROXIES = env.list("CONSOLE_TRUSTED_PROXIES", default=[])
CONSOLE_TRUSTED_PROXY_HOPS = env.int("CONSOLE_TRUSTED_PROXY_HOPS", default=0)

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False  # htmx reads the token from the <body hx-headers>, not the cookie.
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# Content-Security-Policy on every page (django-csp). Scripts come from our origin, or carry the
# request's nonce ({{ CSP_NONCE }}); never 'unsafe-inline' or eval. CONSOLE_CSP_SCRIPT_SRC lists other
# origins every page may load scripts from (none by default). Stripe.js is not among them: only the
# card form's pages admit it, per response (billing.stripe_client.stripe_csp_sources()).
# Styles keep 'unsafe-inline' for style="" attributes and htmx's indicator style (not scripts).
CONSOLE_CSP_SCRIPT_SRC: list[str] = env.list("CONSOLE_CSP_SCRIPT_SRC", default=[])
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'", NONCE, *CONSOLE_CSP_SCRIPT_SRC],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    },
}

LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "account_login"

# --- email ---------------------------------------------------------------------------------
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Console <console@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
CONSOLE_EMAIL_FILE = env.str("CONSOLE_EMAIL_FILE", default=str(VAR_DIR / "mail.log"))
if "EMAIL_URL" in env:
    vars().update(env.email_url("EMAIL_URL"))
else:
    EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="console.mail.ConsoleAndFileBackend")
    EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
    EMAIL_PORT = env.int("EMAIL_PORT", default=25)
    EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
    EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
    EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
    EMAIL_USE_SSL = env.bool("EMAIL_USE_SSL", default=False)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)
# The outbox (console.models.OutboxEmail): SMTP errors are retried with exponential backoff
# (BACKOFF seconds, doubling, capped at BACKOFF_MAX) up to MAX_ATTEMPTS, about two hours by default;
# then the email is "failed" until `manage.py email_outbox_retry`. A pending email nobody has
# tried for STUCK_AFTER seconds (lost task, broker down at enqueue) is re-enqueued by beat.
CONSOLE_EMAIL_MAX_ATTEMPTS = env.int("CONSOLE_EMAIL_MAX_ATTEMPTS", default=8)
CONSOLE_EMAIL_RETRY_BACKOFF = env.int("CONSOLE_EMAIL_RETRY_BACKOFF", default=60)
CONSOLE_EMAIL_RETRY_BACKOFF_MAX = env.int("CONSOLE_EMAIL_RETRY_BACKOFF_MAX", default=3600)
CONSOLE_EMAIL_STUCK_AFTER = env.int("CONSOLE_EMAIL_STUCK_AFTER", default=600)

# --- django-allauth: email is the login; verification is mandatory ------------------------
ACCOUNT_ADAPTER = "console.adapters.AccountAdapter"
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_LOGIN_ON_EMAIL_CONFIRMATION = True
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_LOGIN_BY_CODE_ENABLED = False
ACCOUNT_CHANGE_EMAIL = True
ACCOUNT_REAUTHENTICATION_TIMEOUT = env.int("ACCOUNT_REAUTHENTICATION_TIMEOUT", default=300)
ACCOUNT_EMAIL_SUBJECT_PREFIX = "[Console] "
ACCOUNT_DEFAULT_HTTP_PROTOCOL = env.str("ACCOUNT_DEFAULT_HTTP_PROTOCOL", default="http")
# allauth's rate limits stay on (its defaults), keyed in the cache above.
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = env.str("MFA_TOTP_ISSUER", default="Organization Console")

# --- Celery --------------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    for _sub in ("out", "processed", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "out"),
        "data_folder_out": str(_broker_dir / "out"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
        # kombu's default is ./control, relative to wherever the process started
        "control_folder": str(_broker_dir / "control"),
    }
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # keep our structured log format in the worker too
# The one beat schedule: every periodic job also has a manage.py command calling the same service.
CELERY_BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    "billing-usage-aggregate": {"task": "billing.usage_aggregate", "schedule": 60.0},
    "billing-balance-alerts-check": {"task": "billing.balance_alerts_check", "schedule": 60.0},
    "billing-consumption-notifications-check": {"task": "billing.consumption_notifications_check", "schedule": 300.0},
    "billing-invoice-pdfs-render-missing": {"task": "billing.invoice_pdfs_render_missing", "schedule": 300.0},
    "billing-usage-reconcile": {"task": "billing.usage_reconcile", "schedule": crontab(hour=0, minute=30)},
    "billing-usage-partitions": {"task": "billing.usage_partitions_maintain", "schedule": crontab(minute=15)},
    "console-heartbeat": {"task": "console.heartbeat", "schedule": 60.0},
    "console-email-outbox-retry": {"task": "console.email_outbox_retry", "schedule": 300.0},
}

# --- logging: one line per request with a request id (django-structlog) -------------------
LOG_JSON = env.bool("LOG_JSON", default=False)
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
from console.logging import configure_logging  # noqa: E402

LOGGING = configure_logging(json=LOG_JSON, level=LOG_LEVEL)
DJANGO_STRUCTLOG_CELERY_ENABLED = False
# django-structlog would log the IP from any X-Forwarded-For; console.middleware binds the vouched one.
DJANGO_STRUCTLOG_IP_LOGGING_ENABLED = False
# request_started at DEBUG: one line (request_finished, with the request id) per request at INFO.
DJANGO_STRUCTLOG_STATUS_START_LOG_LEVEL = 10

# --- the product's own settings -------------------------------------------------------------
CONSOLE_CURRENCY = env.str("CONSOLE_CURRENCY", default="USD")
CONSOLE_SITE_URL = env.str("CONSOLE_SITE_URL", default="http://127.0.0.1:8000")
CONSOLE_BALANCE_ALERT_DEFAULT = Decimal(env.str("CONSOLE_BALANCE_ALERT_DEFAULT", default="5.00"))
CONSOLE_INVITES_REQUIRE_VERIFICATION = env.bool("CONSOLE_INVITES_REQUIRE_VERIFICATION", default=True)
CONSOLE_INVITATION_DAYS = env.int("CONSOLE_INVITATION_DAYS", default=7)
CONSOLE_SALES_EMAIL = env.str("CONSOLE_SALES_EMAIL", default="sales@localhost")
# Who issues invoices: printed at the top of every invoice PDF ("\n" separates lines).
CONSOLE_INVOICE_ISSUER = env.str(
    "CONSOLE_INVOICE_ISSUER", default="Organization Console\nExample Street 1\n10115 Berlin, Germany"
)
CONSOLE_API_KEY_PREFIX = env.str("CONSOLE_API_KEY_PREFIX", default="sk-")
CONSOLE_GATEWAY_TOKENS = env.list("CONSOLE_GATEWAY_TOKENS", default=[])
CONSOLE_DEFAULT_ESTIMATED_TOKENS = env.int("CONSOLE_DEFAULT_ESTIMATED_TOKENS", default=1000)
# Authorize counts at least this many tokens per call, whatever X-Estimated-Tokens says (a caller
# sending 0 still uses the windows); the usage report corrects the windows to the actual tokens.
CONSOLE_MIN_ESTIMATED_TOKENS = env.int("CONSOLE_MIN_ESTIMATED_TOKENS", default=100)
# A concurrency slot is a lease: freed by the call's usage report or POST /gateway/release, and
# expiring by itself after this many seconds (a crashed gateway cannot keep the org's slots).
CONSOLE_CONCURRENCY_LEASE_SECONDS = env.int("CONSOLE_CONCURRENCY_LEASE_SECONDS", default=600)
# REDIS_URL names a node of a Redis Cluster (the rate limiter's keys share the org's hash tag).
CONSOLE_REDIS_CLUSTER = env.bool("CONSOLE_REDIS_CLUSTER", default=False)
# Usage ingest: a body over this size is refused with 413 (1000 events fit in well under it);
# events stamped further than this in the future, or older than this many days, are rejected.
CONSOLE_USAGE_MAX_BODY_BYTES = env.int("CONSOLE_USAGE_MAX_BODY_BYTES", default=1_048_576)
CONSOLE_USAGE_MAX_FUTURE_SECONDS = env.int("CONSOLE_USAGE_MAX_FUTURE_SECONDS", default=300)
CONSOLE_USAGE_MAX_AGE_DAYS = env.int("CONSOLE_USAGE_MAX_AGE_DAYS", default=30)
# Raw events (PostgreSQL: monthly partitions) are dropped a partition at a time after this many
# days, once folded and reconciled; rollups, ledger and invoices are kept forever.
CONSOLE_USAGE_RETENTION_DAYS = env.int("CONSOLE_USAGE_RETENTION_DAYS", default=400)
CONSOLE_USAGE_PARTITIONS_AHEAD = env.int("CONSOLE_USAGE_PARTITIONS_AHEAD", default=2)  # months created ahead
# Limits by verification tier (an organization may carry a staff override).
CONSOLE_TIER_LIMITS = {
    "default": {"projects": 20, "api_keys": 50},
    "enterprise": {"projects": 50, "api_keys": 100},
}
# Rate tiers by cumulative top-ups (vouchers and adjustments don't count); None = unlimited.
CONSOLE_RATE_TIERS = [
    {"name": "Tier0", "min_topup": Decimal("1"), "concurrency": 1, "rpm": 3, "tpm": 500_000, "tpd": 1_500_000},
    {"name": "Tier1", "min_topup": Decimal("10"), "concurrency": 50, "rpm": 200, "tpm": 2_000_000, "tpd": None},
    {"name": "Tier2", "min_topup": Decimal("20"), "concurrency": 100, "rpm": 500, "tpm": 3_000_000, "tpd": None},
    {"name": "Tier3", "min_topup": Decimal("100"), "concurrency": 200, "rpm": 5000, "tpm": 3_000_000, "tpd": None},
    {"name": "Tier4", "min_topup": Decimal("1000"), "concurrency": 400, "rpm": 5000, "tpm": 4_000_000, "tpd": None},
    {"name": "Tier5", "min_topup": Decimal("3000"), "concurrency": 1000, "rpm": 10000, "tpm": 5_000_000, "tpd": None},
]
# Enterprise verification documents: PDF, PNG or JPEG (checked by content), at most this size.
CONSOLE_VERIFICATION_MAX_BYTES = env.int("CONSOLE_VERIFICATION_MAX_BYTES", default=10 * 1024 * 1024)
# Request bodies of pages (console/uploads.py): the largest document plus room for the form's
# fields; anything larger is refused before it is read. Accepted uploads stay in memory, never
# in a temporary file. Form fields without files: at most DATA_UPLOAD_MAX_MEMORY_SIZE.
CONSOLE_MAX_REQUEST_BYTES = env.int("CONSOLE_MAX_REQUEST_BYTES", default=CONSOLE_VERIFICATION_MAX_BYTES + 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = CONSOLE_MAX_REQUEST_BYTES
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=1024 * 1024)
DATA_UPLOAD_MAX_NUMBER_FIELDS = 1000
DATA_UPLOAD_MAX_NUMBER_FILES = 5
# Contact Sales submissions allowed per user in a rolling hour.
CONSOLE_CONTACT_SALES_PER_HOUR = env.int("CONSOLE_CONTACT_SALES_PER_HOUR", default=5)

# --- Card payments (Stripe) ------------------------------------------------------------------------
# All three keys set: org admins pay by card. STRIPE_API_BASE points the library and the page's
# Stripe.js at another server (localstripe, which serves its stand-in at <base>/js.stripe.com/v3/).
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_PUBLISHABLE_KEY = env.str("STRIPE_PUBLISHABLE_KEY", default="")
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", default="")
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="https://api.stripe.com").rstrip("/")
_STRIPE_OWN_API = STRIPE_API_BASE == "https://api.stripe.com"
STRIPE_JS_URL = "https://js.stripe.com/v3/" if _STRIPE_OWN_API else f"{STRIPE_API_BASE}/js.stripe.com/v3/"
# Add funds: the amounts offered, and the smallest and largest card top-up (currency units).
CONSOLE_TOPUP_PRESETS = [Decimal(v) for v in env.list("CONSOLE_TOPUP_PRESETS", default=["10", "25", "50", "100"])]
CONSOLE_TOPUP_MIN = Decimal(env.str("CONSOLE_TOPUP_MIN", default="5"))
CONSOLE_TOPUP_MAX = Decimal(env.str("CONSOLE_TOPUP_MAX", default="5000"))
# Auto-recharge: at most this much charged automatically per organization and UTC day.
CONSOLE_AUTO_RECHARGE_DAILY_CAP = Decimal(env.str("CONSOLE_AUTO_RECHARGE_DAILY_CAP", default="1000"))
# Consecutive declined automatic charges after which auto-recharge turns itself off.
CONSOLE_AUTO_RECHARGE_MAX_FAILURES = env.int("CONSOLE_AUTO_RECHARGE_MAX_FAILURES", default=3)
