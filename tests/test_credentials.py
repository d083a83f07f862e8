"""Credentials a connector refreshes and saves: one refresh however many workers find the
token expired, the newest refresh token kept, and no page writing back stale secrets."""

import threading
from contextlib import contextmanager

import pytest
from django.db import connection
from django.urls import reverse

from extensions import registry
from extensions.connectors.base import Connector, ConnectorForm, secret
from extensions.models import Installation


def expired(secrets) -> bool:
    return secrets.get("access_token", "").endswith("-expired")


@pytest.mark.django_db(transaction=True)
def test_workers_finding_an_expired_token_together_refresh_it_once(firm):
    installation = firm["installation"]
    Installation.objects.filter(pk=installation.pk).update(
        secrets={"password": "s3cret-password", "access_token": "a0-expired", "refresh": "r0"}
    )
    renewals = []
    start = threading.Barrier(8)
    seen, failures = [], []

    def renew(secrets):
        renewals.append(secrets["refresh"])
        n = len(renewals)
        return {"access_token": f"a{n}", "refresh": f"r{n}"}  # the provider rotates it

    def worker():
        try:
            row = Installation.objects.get(pk=installation.pk)  # read before anyone renews
            start.wait()
            seen.append(row.credentials.refresh(expired, renew)["access_token"])
        except Exception as exc:  # reported below, with the thread's own traceback lost
            failures.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures
    assert renewals == ["r0"]  # one refresh, with the refresh token of the time
    assert seen == ["a1"] * 8
    stored = Installation.objects.get(pk=installation.pk).secrets
    assert stored == {"password": "s3cret-password", "access_token": "a1", "refresh": "r1"}


@pytest.mark.django_db
def test_a_failed_refresh_saves_nothing(firm):
    installation = firm["installation"]
    before = dict(installation.secrets)

    def renew(secrets):
        raise RuntimeError("the provider said invalid_grant")

    with pytest.raises(RuntimeError):
        installation.credentials.refresh(lambda secrets: True, renew)
    assert Installation.objects.get(pk=installation.pk).secrets == before


class _TokenSettings(ConnectorForm):
    from django import forms

    label = forms.CharField(max_length=50)
    api_key = secret(forms.CharField(max_length=100))


class _TokenConnector(Connector):
    """A destination whose check renews its token the way another worker would: in a
    separate write, after the page has read the row."""

    key = "token-test"
    name = "Token test"
    description = "test"
    category = "http"
    settings_form = _TokenSettings

    def open(self):
        raise AssertionError("not used")

    def check(self):
        Installation.objects.filter(pk=self.destination.pk).update(
            secrets={**self.destination.secrets, "access_token": "renewed-by-a-worker"}
        )
        return "ok"


@contextmanager
def token_installation(partner):
    with registry.registered(_TokenConnector):
        yield Installation.objects.create(
            partner=partner,
            connector="token-test",
            name="Tokens",
            settings={"label": "a"},
            secrets={"api_key": "k1", "access_token": "old"},
        )


@pytest.mark.django_db
def test_saving_the_configuration_keeps_secrets_a_worker_renewed_meanwhile(client, firm):
    with token_installation(firm["partner"]) as installation:
        client.force_login(firm["owner"])
        response = client.post(
            reverse("store:manage", args=[installation.pk]),
            {"name": "Tokens", "connections": 4, "settings-label": "b", "settings-api_key": ""},
        )
        assert response.status_code == 302
        saved = Installation.objects.get(pk=installation.pk)
    assert saved.settings["label"] == "b"
    assert saved.secrets == {"api_key": "k1", "access_token": "renewed-by-a-worker"}


@pytest.mark.django_db
def test_a_typed_secret_is_saved_over_the_stored_one_and_nothing_else(client, firm):
    with token_installation(firm["partner"]) as installation:
        client.force_login(firm["owner"])
        client.post(
            reverse("store:manage", args=[installation.pk]),
            {"name": "Tokens", "connections": 4, "settings-label": "a", "settings-api_key": "k2"},
        )
        saved = Installation.objects.get(pk=installation.pk)
    assert saved.secrets == {"api_key": "k2", "access_token": "renewed-by-a-worker"}
