"""Settings for the Partner Space portal, read from the environment.

With nothing set the portal runs on SQLite in ``var/`` with django-q2's ORM broker, so a
newcomer needs no server; ``DATABASE_URL`` and ``REDIS_URL`` move it to PostgreSQL and
Redis. Every variable is listed in the README.
"""

import secrets
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env")

VAR_DIR = Path(env.str("VAR_DIR", default=str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = env.bool("DEBUG", default=False)


def _secret_key() -> str:
    """Development gets a key generated once into var/; production must bring its own."""
    key = env.str("SECRET_KEY", default="")
    if key:
        return key
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Set SECRET_KEY in the environment "
            "(or DEBUG=1 for a development key generated into var/)."
        )
    path = VAR_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()

ALLOWED_HOSTS = env.list(
    "ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else []
)
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "partnerspace",
    "clients",
    "extensions",
    "exports",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_q",
    "axes",
    "csp",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "partnerspace.middleware.PrivateNoStoreMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "partnerspace.tenancy.CurrentPartnerMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "partnerspace.urls"
WSGI_APPLICATION = "partnerspace.wsgi.application"
ASGI_APPLICATION = "partnerspace.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "partnerspace.tenancy.partner_context",
                "extensions.context_processors.installed_extensions",
                "exports.context_processors.health_banner",
            ],
        },
    },
]

# Database: SQLite in var/ unless DATABASE_URL says otherwise.
CONN_MAX_AGE = env.int("CONN_MAX_AGE", default=60)
DATABASES = {"default": env.db_url("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
DATABASES["default"]["CONN_MAX_AGE"] = CONN_MAX_AGE
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the web process read while the worker writes; IMMEDIATE avoids the
    # "database is locked" upgrade deadlock between them.
    DATABASES["default"]["OPTIONS"] = {
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Background work: django-q2, Redis broker when REDIS_URL is set, else the ORM broker.
REDIS_URL = env.str("REDIS_URL", default="")
Q_CLUSTER = {
    "name": env.str("Q_CLUSTER_NAME", default="partnerspace"),
    "workers": env.int("Q_WORKERS", default=2),
    "timeout": env.int("Q_TIMEOUT", default=300),
    "retry": env.int("Q_RETRY", default=1200),
    "max_attempts": 1,
    "ack_failures": True,
    "save_limit": -1,
    "catch_up": False,
    "poll": env.float("Q_POLL", default=0.2),
    "label": "Tasks",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"

# What the web and worker processes share beyond the database (a drive's folder ids): Redis
# when REDIS_URL is set, else files under var/ (one machine, every process).
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": "partnerspace",
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": str(VAR_DIR / "cache"),
        }
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard"
LOGOUT_REDIRECT_URL = "login"

# Sign-in throttling (django-axes): failures are counted per account and per address
# separately, and either one reaching the limit locks it; a lock lasts the whole cool-off
# (tries while locked do not extend it). A successful sign-in does not wipe the address's
# failures, which would let anyone with an account reset the count against another one.
AUTHENTICATION_BACKENDS = [
    "partnerspace.signin.ThrottledSignInBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=10)
LOGIN_LOCKOUT_MINUTES = env.int("LOGIN_LOCKOUT_MINUTES", default=15)
# Reverse proxies in front of the portal that append the client to X-Forwarded-For; 0 takes
# the connection's address (a proxy's address would lock everyone behind it at once).
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
AXES_FAILURE_LIMIT = LOGIN_FAILURE_LIMIT
AXES_COOLOFF_TIME = timedelta(minutes=LOGIN_LOCKOUT_MINUTES)
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = False
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_CLIENT_IP_CALLABLE = "partnerspace.signin.client_ip"
AXES_LOCKOUT_CALLABLE = "partnerspace.signin.lockout_response"
AXES_VERBOSE = False  # no banner at every start; failures and lock-outs are still logged

SESSION_HOURS = env.int("SESSION_HOURS", default=12)
SESSION_COOKIE_AGE = SESSION_HOURS * 3600

LANGUAGE_CODE = env.str("LANGUAGE_CODE", default="en")
LANGUAGES = [("nl", _("Dutch")), ("fr", _("French")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("TIME_ZONE", default="Europe/Brussels")
USE_I18N = True
USE_TZ = True
# Belgian conventions in English too (day/month/year, 24-hour time): partnerspace/formats/.
FORMAT_MODULE_PATH = ["partnerspace.formats"]

STATIC_URL = "static/"
STATIC_ROOT = Path(env.str("STATIC_ROOT", default=str(VAR_DIR / "static")))
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = Path(env.str("MEDIA_ROOT", default=str(VAR_DIR / "media")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Intake limits: untrusted files bigger than this are refused before parsing.
INTAKE_MAX_BYTES = env.int("INTAKE_MAX_BYTES", default=20 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = INTAKE_MAX_BYTES + 1024 * 1024
# CustomizationIDs of UBL profiles accepted on top of clients.ubl.PROFILES.
INTAKE_UBL_PROFILES = env.list("INTAKE_UBL_PROFILES", default=[])

# Exports (used by the extensions and exports apps).
FIELD_ENCRYPTION_KEYS = env.list("FIELD_ENCRYPTION_KEYS", default=[])
EXPORT_ALLOW_PRIVATE_HOSTS = env.bool("EXPORT_ALLOW_PRIVATE_HOSTS", default=DEBUG)
EXPORT_EGRESS_IPS = env.list("EXPORT_EGRESS_IPS", default=[])
EXPORT_BATCH_SIZE = env.int("EXPORT_BATCH_SIZE", default=100)
EXPORT_LEASE_SECONDS = env.int("EXPORT_LEASE_SECONDS", default=300)
EXPORT_MAX_ATTEMPTS = env.int("EXPORT_MAX_ATTEMPTS", default=12)
EXPORT_RETRY_BASE_SECONDS = env.int("EXPORT_RETRY_BASE_SECONDS", default=60)
EXPORT_RETRY_CAP_SECONDS = env.int("EXPORT_RETRY_CAP_SECONDS", default=6 * 3600)
# How long one delivery task starts files before handing the rest to the next one: below
# the task timeout, after which django-q kills the worker mid-file.
EXPORT_DRAIN_SECONDS = env.float("EXPORT_DRAIN_SECONDS", default=0.8 * Q_CLUSTER["timeout"])
EXPORT_HTTP_TIMEOUT = (
    env.float("EXPORT_HTTP_CONNECT_TIMEOUT", default=10.0),
    env.float("EXPORT_HTTP_READ_TIMEOUT", default=60.0),
)
# SFTP, in seconds: connect + SSH handshake, and any single SFTP request. Unset: the
# connector's own defaults (15 and 60).
EXPORT_SFTP_CONNECT_TIMEOUT = env.float("EXPORT_SFTP_CONNECT_TIMEOUT", default=None)
EXPORT_SFTP_IO_TIMEOUT = env.float("EXPORT_SFTP_IO_TIMEOUT", default=None)

# Notices to a firm's owners (extensions/notices.py, exports/digest.py): after how many
# failures in a row an integration is "failing", and the portal's address for their links.
EXPORT_NOTICE_FAILURES = env.int("EXPORT_NOTICE_FAILURES", default=3)
PORTAL_URL = env.str("PORTAL_URL", default="http://localhost:8000")
# When the daily digest of failed exports goes out (local time, HH:MM).
EXPORT_DIGEST_TIME = env.str("EXPORT_DIGEST_TIME", default="07:00")

# Google Drive: the operator's OAuth app (Google Cloud console, a "Web application" client
# whose redirect URI is https://<portal>/store/signin/callback/). Unset: the Store shows the
# extension as not available. GOOGLE_BASE_URL replaces every Google origin (a test server, a
# proxy); uploads above GOOGLE_DRIVE_MULTIPART_MAX_BYTES go in resumable chunks.
GOOGLE_DRIVE_CLIENT_ID = env.str("GOOGLE_DRIVE_CLIENT_ID", default="")
GOOGLE_DRIVE_CLIENT_SECRET = env.str("GOOGLE_DRIVE_CLIENT_SECRET", default="")
GOOGLE_BASE_URL = env.str("GOOGLE_BASE_URL", default="")
GOOGLE_DRIVE_MULTIPART_MAX_BYTES = env.int(
    "GOOGLE_DRIVE_MULTIPART_MAX_BYTES", default=5 * 1024 * 1024
)
GOOGLE_DRIVE_CHUNK_BYTES = env.int("GOOGLE_DRIVE_CHUNK_BYTES", default=8 * 1024 * 1024)

# Dropbox: the operator's app (Dropbox App Console, scoped access, with the permissions
# account_info.read, files.content.write and files.metadata.read, and the redirect URI
# https://<portal>/store/signin/callback/). Unset: the Store shows the extension as not
# available. DROPBOX_BASE_URL replaces every Dropbox origin (a test server, a proxy); files
# above DROPBOX_UPLOAD_MAX_BYTES (Dropbox's limit: 150 MiB) go in upload sessions.
DROPBOX_APP_KEY = env.str("DROPBOX_APP_KEY", default="")
DROPBOX_APP_SECRET = env.str("DROPBOX_APP_SECRET", default="")
DROPBOX_BASE_URL = env.str("DROPBOX_BASE_URL", default="")
DROPBOX_UPLOAD_MAX_BYTES = env.int("DROPBOX_UPLOAD_MAX_BYTES", default=150 * 1024 * 1024)
DROPBOX_CHUNK_BYTES = env.int("DROPBOX_CHUNK_BYTES", default=8 * 1024 * 1024)

# OneDrive for Business: the operator's app registration (Microsoft Entra admin center, a
# "Web" redirect URI https://<portal>/store/signin/callback/, delegated Graph permissions
# Files.ReadWrite, offline_access and User.Read). Unset: the Store shows the extension as not
# available. ONEDRIVE_TENANT is the sign-in authority (organizations: any work or school
# account; or one tenant's id). MICROSOFT_BASE_URL replaces both Microsoft origins (sign-in
# and Graph); files above ONEDRIVE_SIMPLE_UPLOAD_MAX_BYTES go in an upload session, in
# fragments of ONEDRIVE_FRAGMENT_BYTES (rounded down to a multiple of 320 KiB).
ONEDRIVE_CLIENT_ID = env.str("ONEDRIVE_CLIENT_ID", default="")
ONEDRIVE_CLIENT_SECRET = env.str("ONEDRIVE_CLIENT_SECRET", default="")
ONEDRIVE_TENANT = env.str("ONEDRIVE_TENANT", default="organizations")
MICROSOFT_BASE_URL = env.str("MICROSOFT_BASE_URL", default="")
ONEDRIVE_SIMPLE_UPLOAD_MAX_BYTES = env.int(
    "ONEDRIVE_SIMPLE_UPLOAD_MAX_BYTES", default=4 * 1024 * 1024
)
ONEDRIVE_FRAGMENT_BYTES = env.int("ONEDRIVE_FRAGMENT_BYTES", default=10 * 1024 * 1024)

# Exact Online: the operator's app (Exact App Center of the region it is registered in, with
# the redirect URI https://<portal>/store/signin/callback/). Unset: the Store shows the
# extension as not available. EXACT_BASE_URL, when set, replaces every Exact origin (each
# region's start.exactonline.<tld>) with one: a test server or a proxy.
EXACT_CLIENT_ID = env.str("EXACT_CLIENT_ID", default="")
EXACT_CLIENT_SECRET = env.str("EXACT_CLIENT_SECRET", default="")
EXACT_BASE_URL = env.str("EXACT_BASE_URL", default="")

# Yuki: its SOAP web services, at {YUKI_BASE_URL}{Service}.asmx (the Belgian host by
# default; https://api.yukiworks.nl/ws/ for the Dutch one). Each firm types its own key.
YUKI_BASE_URL = env.str("YUKI_BASE_URL", default="https://api.yukiworks.be/ws/")

# Octopus: the REST API that checks a firm's sign-in (documents go to each dossier's mailbox
# by e-mail, through EMAIL_URL). OCTOPUS_SOFTWARE_HOUSE_UUID is issued by Octopus to the
# operator as a software house; unset, the Store shows the extension as not available.
OCTOPUS_BASE_URL = env.str(
    "OCTOPUS_BASE_URL", default="https://service.inaras.be/octopus-rest-api/v1"
)
OCTOPUS_SOFTWARE_HOUSE_UUID = env.str("OCTOPUS_SOFTWARE_HOUSE_UUID", default="")

# Onea, PingWin, Wings Online: packages without published API documentation; their
# connectors speak the contracts in docs/connectors/<key>.md. Each *_BASE_URL, when set,
# replaces the package's address (a test server, a proxy): Onea's is
# https://<platform>.onea.be, PingWin's and Wings' are assumed (see their docs). Count-e's
# API URL is each firm's own setting.
ONEA_BASE_URL = env.str("ONEA_BASE_URL", default="")
PINGWIN_BASE_URL = env.str("PINGWIN_BASE_URL", default="")
WINGS_BASE_URL = env.str("WINGS_BASE_URL", default="")

# Lyanthe: no public address or API documentation was found; the default is assumed (see
# docs/connectors/lyanthe.md). Zenvoices: its public API's host (login under /api/, the
# API under /public-api/v1/). Either, when set, may point at a test server or a proxy.
# BoCount's address is each firm's own setting.
LYANTHE_BASE_URL = env.str("LYANTHE_BASE_URL", default="https://api.lyanthe.be/v1/")
ZENVOICES_BASE_URL = env.str("ZENVOICES_BASE_URL", default="https://app.zenvoices.com")

DEMO_PASSWORD = env.str("DEMO_PASSWORD", default="")
DEMO_SFTP_PASSWORD = env.str("DEMO_SFTP_PASSWORD", default="")

EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
globals().update(EMAIL_CONFIG)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=30)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Partner Space <noreply@localhost>")

# Security: production defaults; DEBUG relaxes what needs https.
SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# No inline script or style anywhere (the admin's included): everything comes from static/.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    },
}
if not DEBUG:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "stderr": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["stderr"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"handlers": ["stderr"], "level": LOG_LEVEL, "propagate": False},
        "django-q": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
    },
}
