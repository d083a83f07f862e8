"""Test settings: the real settings module, with a throw-away key and var/ for tests."""

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "tests-only-" + "x" * 40)
os.environ.setdefault("EXPORT_ALLOW_PRIVATE_HOSTS", "1")
# A fixed throw-away key: secrets in test databases are encrypted like in production.
os.environ.setdefault("FIELD_ENCRYPTION_KEYS", "dGVzdHMtb25seS1maWVsZC1lbmNyeXB0aW9uLWtleSE=")
# No test reaches a vendor's real API (a client form fetches its list as soon as it is
# built): until a test starts that vendor's local peer, its address is a closed port.
os.environ.setdefault("EXACT_BASE_URL", "http://127.0.0.1:9/")
os.environ.setdefault("YUKI_BASE_URL", "http://127.0.0.1:9/")
os.environ.setdefault("OCTOPUS_BASE_URL", "http://127.0.0.1:9/")
os.environ.setdefault("ONEA_BASE_URL", "http://127.0.0.1:9/")
os.environ.setdefault("PINGWIN_BASE_URL", "http://127.0.0.1:9/")
os.environ.setdefault("WINGS_BASE_URL", "http://127.0.0.1:9/")
os.environ.setdefault("LYANTHE_BASE_URL", "http://127.0.0.1:9/")
os.environ.setdefault("ZENVOICES_BASE_URL", "http://127.0.0.1:9/")
os.environ.setdefault("VAR_DIR", tempfile.mkdtemp(prefix="partnerspace-tests-"))

from partnerspace.settings import *  # noqa: F403

if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # A file, not memory: worker processes started by tests must see the same database.
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}  # noqa: F405

# Files in this run's var/, whatever REDIS_URL says: tests clear it, and clearing a Redis
# cache would empty the broker's queues too.
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
        "LOCATION": str(VAR_DIR / "cache"),  # noqa: F405
    }
}
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES["staticfiles"] = {  # noqa: F405
    "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
}
SECURE_SSL_REDIRECT = False
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # noqa: F405
