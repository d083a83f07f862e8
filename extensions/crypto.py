"""Secrets at rest: MultiFernet over ``FIELD_ENCRYPTION_KEYS`` (the first key encrypts).

Keys come from the environment so a database dump alone never reveals a password, API key
or OAuth token. Several keys make rotation possible: put the new key first, run
``manage.py rotate_encryption_keys``, then drop the old one.
"""

import json
import os
import threading
from collections.abc import Iterable
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import FieldError, ImproperlyConfigured
from django.core.signals import setting_changed
from django.db import models, transaction
from django.db.models import ExpressionWrapper, F, Value
from django.dispatch import receiver

GENERATE_HINT = (
    'python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"'
)
DEV_KEY_FILE = "field_encryption_key"
UNREADABLE = "no key in FIELD_ENCRYPTION_KEYS opens it (made with another key, or corrupt)"

_lock = threading.Lock()
_fernet: MultiFernet | None = None


class DecryptionError(Exception):
    """A token no configured key can open (foreign key, corrupt or not a token at all)."""


def get_fernet() -> MultiFernet:
    """The cached MultiFernet built from the settings (rebuilt after ``reset_keys``)."""
    global _fernet
    with _lock:
        if _fernet is None:
            _fernet = MultiFernet(_build_keys())
        return _fernet


def reset_keys() -> None:
    """Forget the cached keys; the next call reads the settings again."""
    global _fernet
    with _lock:
        _fernet = None


@receiver(setting_changed)
def _on_setting_changed(*, setting, **kwargs):
    if setting in {"FIELD_ENCRYPTION_KEYS", "VAR_DIR", "DEBUG"}:
        reset_keys()


def _build_keys() -> list[Fernet]:
    configured = settings.FIELD_ENCRYPTION_KEYS
    if isinstance(configured, str):
        configured = configured.split(",")
    raw = [key.strip() for key in configured or () if key and key.strip()]
    if not raw:
        if not settings.DEBUG:
            raise ImproperlyConfigured(
                "FIELD_ENCRYPTION_KEYS is not set. Set it to one or more comma-separated "
                f"Fernet keys (the first encrypts); generate one with: {GENERATE_HINT}"
            )
        return [_dev_key()]
    keys = []
    for position, key in enumerate(raw, start=1):
        try:
            keys.append(Fernet(key))
        except (ValueError, TypeError):
            # Never chain or echo the offending value: it may be a real key with a typo.
            raise ImproperlyConfigured(
                f"FIELD_ENCRYPTION_KEYS entry #{position} (of {len(raw)}) is not a valid "
                f"Fernet key (32 url-safe base64-encoded bytes); generate one with: "
                f"{GENERATE_HINT}"
            ) from None
    return keys


def _dev_key() -> Fernet:
    """A key generated once into VAR_DIR, for DEBUG only, readable by its owner alone."""
    path = Path(settings.VAR_DIR) / DEV_KEY_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(Fernet.generate_key())
    try:
        return Fernet(path.read_bytes().strip())
    except (ValueError, TypeError):
        raise ImproperlyConfigured(
            f"The development key file {path} is not a valid Fernet key; delete it to have "
            "a new one generated (values encrypted with the old one will be lost)."
        ) from None


def encrypt(value: bytes | str) -> str:
    """Encrypt under the first key; the token is ASCII text."""
    if isinstance(value, str):
        value = value.encode()
    return get_fernet().encrypt(value).decode("ascii")


def decrypt(token: str | bytes) -> bytes:
    """Decrypt with any configured key, or raise DecryptionError (never return the input)."""
    fernet = get_fernet()
    try:
        return fernet.decrypt(token.encode("ascii") if isinstance(token, str) else token)
    except (InvalidToken, TypeError, ValueError):
        raise DecryptionError(f"Cannot decrypt the value: {UNREADABLE}.") from None


def encrypt_json(value) -> str:
    return encrypt(json.dumps(value, separators=(",", ":")))


def decrypt_json(token: str):
    return json.loads(decrypt(token))


class EncryptedJSONField(models.TextField):
    """A JSON value (a dict by default) stored as one Fernet token.

    Not editable by default, so ModelForms and the admin never render secrets back.
    Tokens are randomised, so only ``isnull`` lookups are meaningful and allowed.
    """

    description = "JSON value encrypted with Fernet"

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("default", dict)
        kwargs.setdefault("editable", False)
        super().__init__(*args, **kwargs)

    def deconstruct(self):
        name, path, args, kwargs = super().deconstruct()
        if kwargs.get("default") is dict:
            del kwargs["default"]
        else:
            kwargs.setdefault("default", None)
        if kwargs.pop("editable", True):
            kwargs["editable"] = True
        return name, path, args, kwargs

    def get_lookup(self, lookup_name):
        return super().get_lookup(lookup_name) if lookup_name == "isnull" else None

    def to_python(self, value):
        # A fixture holds the token that value_to_string wrote.
        return decrypt_json(value) if isinstance(value, str) else value

    def value_to_string(self, obj):
        """Dumps (dumpdata, serializers) carry the token, never the secret."""
        value = self.value_from_object(obj)
        return None if value is None else encrypt_json(value)

    def get_prep_value(self, value):
        value = models.Field.get_prep_value(self, value)
        if value is None:
            return None
        return encrypt_json(value)

    def from_db_value(self, value, expression, connection):
        if value is None:
            return None
        try:
            return json.loads(decrypt(value))
        except DecryptionError:
            raise DecryptionError(f"Cannot decrypt {self._label()}: {UNREADABLE}.") from None

    def _label(self) -> str:
        model = getattr(self, "model", None)
        return f"{model._meta.label}.{self.name}" if model else self.name or "a value"


def encrypted_fields(model) -> list[EncryptedJSONField]:
    """The model's own encrypted columns (parents' columns belong to the parent model)."""
    return [f for f in model._meta.local_concrete_fields if isinstance(f, EncryptedJSONField)]


def encrypted_models(models_iterable: Iterable | None = None) -> list:
    """Concrete models with at least one encrypted column (all installed apps by default)."""
    if models_iterable is None:
        from django.apps import apps

        models_iterable = apps.get_models()
    return [
        m for m in models_iterable if not m._meta.proxy and m._meta.managed and encrypted_fields(m)
    ]


def rotate(queryset_or_models, *, batch_size: int = 500, dry_run: bool = False) -> int:
    """Re-encrypt every encrypted value under the first key; return the rows rewritten.

    Accepts a queryset, a model, or an iterable of either. Tokens are rotated as they are
    (``MultiFernet.rotate``), without parsing, and written back only if the row still holds
    the token that was read, so a concurrent save (a freshly refreshed OAuth token) wins.
    With ``dry_run`` every token is checked for decryptability and nothing is written.
    """
    if isinstance(queryset_or_models, models.QuerySet | type):
        queryset_or_models = [queryset_or_models]
    return sum(
        _rotate_queryset(
            target if isinstance(target, models.QuerySet) else target._base_manager.all(),
            batch_size=batch_size,
            dry_run=dry_run,
        )
        for target in queryset_or_models
    )


def _raw_tokens(fields) -> dict:
    """Expressions reading the stored tokens as plain text, bypassing ``from_db_value``."""
    return {
        f"_raw_{f.attname}": ExpressionWrapper(F(f.attname), models.TextField()) for f in fields
    }


def _rotate_queryset(queryset, *, batch_size: int, dry_run: bool) -> int:
    fields = encrypted_fields(queryset.model)
    if not fields:
        raise FieldError(f"{queryset.model._meta.label} has no EncryptedJSONField.")
    manager = queryset.model._base_manager.db_manager(queryset.db)
    reading = queryset.annotate(**_raw_tokens(fields)).order_by("pk")
    fernet, done, last_pk = get_fernet(), 0, None
    while True:
        page = reading if last_pk is None else reading.filter(pk__gt=last_pk)
        rows = list(page.values("pk", *_raw_tokens(fields))[:batch_size])
        if not rows:
            return done
        last_pk = rows[-1]["pk"]
        with transaction.atomic(using=queryset.db):
            for row in rows:
                done += _rotate_row(manager, fernet, fields, row, dry_run=dry_run)


def _rotate_row(manager, fernet, fields, row, *, dry_run: bool) -> int:
    """Rotate one row's tokens; write them only if the row still holds what was read."""
    changes, expected = {}, {"pk": row["pk"]}
    for field in fields:
        token = row[f"_raw_{field.attname}"]
        if token is None:
            expected[f"_raw_{field.attname}__isnull"] = True
            continue
        try:
            rotated = fernet.rotate(token.encode("ascii"))
        except (InvalidToken, TypeError, ValueError):
            raise DecryptionError(
                f"Cannot decrypt {field.model._meta.label}.{field.name} of the row with "
                f"pk={row['pk']}: {UNREADABLE}."
            ) from None
        expected[f"_raw_{field.attname}"] = token
        changes[field.attname] = Value(rotated.decode("ascii"), models.TextField())
    if not changes or dry_run:
        return int(bool(changes))
    return manager.alias(**_raw_tokens(fields)).filter(**expected).update(**changes)
