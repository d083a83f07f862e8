"""Secrets at rest: keys from settings, tokens that never fall back, rotation that works."""

import io
import stat

import pytest
from cryptography.fernet import Fernet
from django.apps import apps
from django.core.exceptions import FieldError, ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.db import connection, models

from extensions import crypto
from extensions.crypto import DecryptionError, EncryptedJSONField, decrypt, encrypt, rotate

KEY_A = Fernet.generate_key().decode()
KEY_B = Fernet.generate_key().decode()
SECRET = "hunter2-do-not-store-me"
LABEL = "extensions.CryptoTestVault"


@pytest.fixture
def key_a(settings):
    settings.DEBUG = False
    settings.FIELD_ENCRYPTION_KEYS = [KEY_A]
    return settings


@pytest.fixture
def vault(key_a):
    """A throw-away model with encrypted columns, its table created for this test only."""

    class CryptoTestVault(models.Model):
        name = models.CharField(max_length=20, default="")
        secrets = EncryptedJSONField()
        extra = EncryptedJSONField(null=True, default=None)

        class Meta:
            app_label = "extensions"

        def __str__(self):
            return self.name

    with connection.schema_editor() as editor:
        editor.create_model(CryptoTestVault)
    yield CryptoTestVault
    with connection.schema_editor() as editor:
        editor.delete_model(CryptoTestVault)
    apps.all_models["extensions"].pop("cryptotestvault")
    apps.clear_cache()


def raw_column(model, pk, column="secrets"):
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [pk])  # noqa: S608
        return cursor.fetchone()[0]


def write_raw(model, pk, value, column="secrets"):
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {table} SET {column} = %s WHERE id = %s", [value, pk])  # noqa: S608


# Keys and tokens


def test_round_trip_str_and_bytes(key_a):
    token = encrypt(SECRET)
    assert SECRET not in token
    assert decrypt(token) == SECRET.encode()
    assert decrypt(encrypt(b"\x00\xff")) == b"\x00\xff"


def test_foreign_token_raises_instead_of_returning_ciphertext(key_a):
    foreign = Fernet(KEY_B).encrypt(SECRET.encode()).decode()
    for bad in (foreign, "not-a-token", "", foreign[:-4]):
        with pytest.raises(DecryptionError) as caught:
            decrypt(bad)
        assert foreign not in str(caught.value)


def test_changed_settings_rebuild_the_keys(key_a):
    token = encrypt(SECRET)
    key_a.FIELD_ENCRYPTION_KEYS = [KEY_B]
    with pytest.raises(DecryptionError):
        decrypt(token)
    key_a.FIELD_ENCRYPTION_KEYS = [KEY_B, KEY_A]
    assert decrypt(token) == SECRET.encode()


def test_keys_may_be_one_comma_separated_string(key_a):
    key_a.FIELD_ENCRYPTION_KEYS = f"{KEY_B}, {KEY_A}"
    assert decrypt(Fernet(KEY_A).encrypt(b"x")) == b"x"
    assert Fernet(KEY_B).decrypt(encrypt("y")) == b"y"


def test_dev_key_file_is_created_once_private_and_reused(settings, tmp_path):
    settings.DEBUG = True
    settings.FIELD_ENCRYPTION_KEYS = []
    settings.VAR_DIR = tmp_path
    token = encrypt(SECRET)
    path = tmp_path / "field_encryption_key"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    key = path.read_bytes()
    crypto.reset_keys()  # as a new process would
    assert decrypt(token) == SECRET.encode()
    encrypt("again")
    assert path.read_bytes() == key
    assert Fernet(key).decrypt(token.encode()) == SECRET.encode()


def test_production_without_keys_is_improperly_configured(settings, tmp_path):
    settings.DEBUG = False
    settings.FIELD_ENCRYPTION_KEYS = []
    settings.VAR_DIR = tmp_path
    with pytest.raises(ImproperlyConfigured, match="FIELD_ENCRYPTION_KEYS") as caught:
        encrypt(SECRET)
    assert "Fernet.generate_key()" in str(caught.value)
    assert not (tmp_path / "field_encryption_key").exists()


def test_malformed_key_is_named_by_position_never_by_value(settings):
    bad = "this-is-almost-my-production-key"
    settings.FIELD_ENCRYPTION_KEYS = [KEY_A, bad]
    with pytest.raises(ImproperlyConfigured, match="#2") as caught:
        encrypt(SECRET)
    assert bad not in str(caught.value)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


# The field


@pytest.mark.django_db(transaction=True)
def test_field_round_trip_and_no_plaintext_in_the_column(vault):
    row = vault.objects.create(secrets={"password": SECRET, "port": 22})
    raw = raw_column(vault, row.pk)
    assert SECRET not in raw
    assert "password" not in raw
    assert decrypt(raw) == b'{"password":"' + SECRET.encode() + b'","port":22}'
    row.refresh_from_db()
    assert row.secrets == {"password": SECRET, "port": 22}
    assert vault.objects.get(pk=row.pk).secrets == {"password": SECRET, "port": 22}


@pytest.mark.django_db(transaction=True)
def test_defaults_null_and_values(vault):
    row = vault.objects.create()
    assert row.secrets == {}
    assert row.extra is None
    assert raw_column(vault, row.pk, "extra") is None
    assert list(vault.objects.values("secrets", "extra")) == [{"secrets": {}, "extra": None}]
    assert vault.objects.filter(extra__isnull=True).count() == 1


@pytest.mark.django_db(transaction=True)
def test_update_bulk_create_and_bulk_update_encrypt(vault):
    vault.objects.bulk_create(
        [vault(name="a", secrets={"key": "a-" + SECRET}), vault(name="b", secrets=["list"])]
    )
    a, b = vault.objects.order_by("name")
    assert (a.secrets, b.secrets) == ({"key": "a-" + SECRET}, ["list"])
    vault.objects.filter(pk=a.pk).update(secrets={"key": "updated-" + SECRET}, extra="text")
    a.refresh_from_db()
    assert (a.secrets, a.extra) == ({"key": "updated-" + SECRET}, "text")
    b.secrets = {"key": "bulk-" + SECRET}
    vault.objects.bulk_update([b], ["secrets"])
    assert vault.objects.values_list("secrets", flat=True).get(pk=b.pk) == {
        "key": "bulk-" + SECRET
    }
    for pk in (a.pk, b.pk):
        assert SECRET not in raw_column(vault, pk)
        assert "text" not in raw_column(vault, pk, "extra") if pk == a.pk else True


@pytest.mark.django_db(transaction=True)
def test_equality_lookups_are_refused(vault):
    with pytest.raises(FieldError):
        vault.objects.filter(secrets={"a": 1}).count()


@pytest.mark.django_db(transaction=True)
def test_bad_token_in_the_database_raises_naming_the_field_not_the_token(vault):
    row = vault.objects.create(secrets={"a": 1})
    foreign = Fernet(KEY_B).encrypt(b'{"a": 2}').decode()
    write_raw(vault, row.pk, foreign)
    with pytest.raises(DecryptionError, match=r"extensions\.CryptoTestVault\.secrets") as caught:
        row.refresh_from_db()
    assert foreign not in str(caught.value)
    with pytest.raises(DecryptionError):
        list(vault.objects.values("secrets"))


def test_deconstruct_round_trips():
    field = EncryptedJSONField()
    _name, path, args, kwargs = field.deconstruct()
    assert path == "extensions.crypto.EncryptedJSONField"
    assert kwargs == {}
    nullable = EncryptedJSONField("secret things", null=True, default=None, editable=True)
    _, _, args, kwargs = nullable.deconstruct()
    assert kwargs == {
        "verbose_name": "secret things",
        "null": True,
        "default": None,
        "editable": True,
    }
    rebuilt = EncryptedJSONField(*args, **kwargs)
    assert rebuilt.deconstruct()[3] == kwargs
    assert rebuilt.null and rebuilt.default is None and rebuilt.editable
    assert field.default is dict and not field.editable


# Rotation


def _rows(vault):
    return dict(vault.objects.values_list("name", "secrets"))


@pytest.mark.django_db(transaction=True)
def test_rotation_command_moves_everything_to_the_first_key(vault, key_a):
    vault.objects.create(name="one", secrets={"token": SECRET})
    vault.objects.create(name="two", secrets={"token": "2"}, extra={"x": 1})
    vault.objects.create(name="empty")
    expected = _rows(vault)

    key_a.FIELD_ENCRYPTION_KEYS = [KEY_B]
    with pytest.raises(DecryptionError):
        _rows(vault)

    key_a.FIELD_ENCRYPTION_KEYS = [KEY_B, KEY_A]
    out = io.StringIO()
    call_command("rotate_encryption_keys", "--dry-run", LABEL, stdout=out)
    assert "extensions.CryptoTestVault: 3 row(s) would be re-encrypted" in out.getvalue()
    key_a.FIELD_ENCRYPTION_KEYS = [KEY_B]
    with pytest.raises(DecryptionError):
        _rows(vault)  # the dry run wrote nothing

    key_a.FIELD_ENCRYPTION_KEYS = [KEY_B, KEY_A]
    out = io.StringIO()
    call_command("rotate_encryption_keys", "--batch-size", "1", LABEL, stdout=out)
    assert "extensions.CryptoTestVault: 3 row(s) re-encrypted" in out.getvalue()

    key_a.FIELD_ENCRYPTION_KEYS = [KEY_B]
    assert _rows(vault) == expected
    two = vault.objects.get(name="two")
    assert Fernet(KEY_B).decrypt(raw_column(vault, two.pk, "extra").encode()) == b'{"x":1}'


@pytest.mark.django_db(transaction=True)
def test_rotate_helper_takes_querysets_and_models(vault, key_a):
    for name in "abc":
        vault.objects.create(name=name, secrets={"n": name})
    key_a.FIELD_ENCRYPTION_KEYS = [KEY_B, KEY_A]
    assert rotate(vault.objects.filter(name="a")) == 1
    assert rotate([vault], batch_size=2) == 3
    key_a.FIELD_ENCRYPTION_KEYS = [KEY_B]
    assert _rows(vault) == {"a": {"n": "a"}, "b": {"n": "b"}, "c": {"n": "c"}}


@pytest.mark.django_db(transaction=True)
def test_rotation_stops_on_a_token_no_key_opens(vault, key_a):
    row = vault.objects.create(name="bad", secrets={"a": 1})
    foreign = Fernet(Fernet.generate_key()).encrypt(b"{}").decode()
    write_raw(vault, row.pk, foreign)
    with pytest.raises(DecryptionError, match=f"pk={row.pk}") as caught:
        rotate(vault)
    assert foreign not in str(caught.value)
    with pytest.raises(CommandError, match=r"CryptoTestVault\.secrets"):
        call_command("rotate_encryption_keys", LABEL, stdout=io.StringIO())
    assert raw_column(vault, row.pk) == foreign


@pytest.mark.django_db(transaction=True)
def test_the_command_walks_every_installed_model_by_default(vault):
    assert vault in crypto.encrypted_models()
    assert all(crypto.encrypted_fields(model) for model in crypto.encrypted_models())
    with pytest.raises(CommandError, match="no model with an EncryptedJSONField"):
        call_command("rotate_encryption_keys", "auth", stdout=io.StringIO())
    with pytest.raises(CommandError):
        call_command("rotate_encryption_keys", "nosuchapp", stdout=io.StringIO())
