"""Restarting ``make run`` keeps a signed-in browser signed in: the development key is
kept in var/ and sessions live in the database there, so a session made before the
settings are read again still authenticates."""

import importlib.util
import stat
from pathlib import Path

import pytest
from django.conf import settings as django_settings
from django.urls import reverse

pytestmark = pytest.mark.django_db

SETTINGS = Path(django_settings.BASE_DIR) / "partnerspace" / "settings.py"


def read_settings(monkeypatch, var_dir):
    """A fresh read of the portal's settings, as a restarted `make run` does."""
    monkeypatch.setenv("VAR_DIR", str(var_dir))
    monkeypatch.setenv("DEBUG", "1")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    spec = importlib.util.spec_from_file_location("restarted_settings", SETTINGS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_development_key_and_the_sessions_are_kept_in_var(monkeypatch, tmp_path):
    first = read_settings(monkeypatch, tmp_path)
    second = read_settings(monkeypatch, tmp_path)

    assert first.SECRET_KEY == second.SECRET_KEY
    assert len(first.SECRET_KEY) >= 50
    kept = tmp_path / "secret_key"
    assert kept.read_text().strip() == first.SECRET_KEY
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    engine = getattr(second, "SESSION_ENGINE", "django.contrib.sessions.backends.db")
    assert engine == "django.contrib.sessions.backends.db"
    assert Path(second.DATABASES["default"]["NAME"]).parent == tmp_path
    assert second.SESSION_COOKIE_AGE >= 3600


def test_a_session_from_before_the_restart_still_authenticates(
    monkeypatch, tmp_path, settings, client, firm
):
    settings.SECRET_KEY = read_settings(monkeypatch, tmp_path).SECRET_KEY
    settings.SECRET_KEY_FALLBACKS = []
    client.force_login(firm["owner"])
    assert client.get(reverse("dashboard")).status_code == 200

    settings.SECRET_KEY = read_settings(monkeypatch, tmp_path).SECRET_KEY
    page = client.get(reverse("dashboard"))
    assert page.status_code == 200
    assert page.context["user"] == firm["owner"]

    # Without the kept key (another var/), the same browser is signed out.
    settings.SECRET_KEY = read_settings(monkeypatch, tmp_path / "elsewhere").SECRET_KEY
    assert client.get(reverse("dashboard")).status_code == 302
