"""Settings that protect production: run in a fresh interpreter, as a server would start."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _settings(tmp_path, **env):
    environment = {
        k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG", "DATABASE_URL"}
    }
    environment.update(VAR_DIR=str(tmp_path), DJANGO_SETTINGS_MODULE="partnerspace.settings")
    environment.update(env)
    code = (
        "import django; from django.conf import settings; django.setup();"
        "print(settings.SECRET_KEY); print(settings.DATABASES['default']['ENGINE'])"
    )
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True
    )


def test_production_refuses_to_start_without_secret_key(tmp_path):
    result = _settings(tmp_path, DEBUG="0")
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr
    assert not (tmp_path / "secret_key").exists()


def test_development_generates_one_key_and_keeps_it(tmp_path):
    first = _settings(tmp_path, DEBUG="1")
    second = _settings(tmp_path, DEBUG="1")
    assert first.returncode == 0, first.stderr
    key = first.stdout.splitlines()[0]
    assert len(key) >= 50
    assert second.stdout.splitlines()[0] == key
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_database_url_switches_engine(tmp_path):
    result = _settings(tmp_path, SECRET_KEY="k" * 50, DATABASE_URL="postgres://u@127.0.0.1:5432/x")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1] == "django.db.backends.postgresql"


@pytest.mark.django_db
def test_healthz_reports_database_and_broker(client, settings):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    assert body["broker"] == "ok"
    assert body["broker_type"] == ("redis" if settings.Q_CLUSTER.get("redis") else "orm")


@pytest.mark.django_db
def test_healthz_says_when_the_broker_is_down(client, settings, monkeypatch):
    """A Redis URL where nothing listens: the broker check fails, the page says 503."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "REDIS", f"redis://127.0.0.1:{port}/0")
    monkeypatch.setattr(Conf, "ORM", None)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json() == {
        "database": "ok",
        "broker": "error",
        "status": "error",
    }
