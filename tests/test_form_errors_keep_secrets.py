"""A form sent back with errors says what is wrong at its top and keeps what was typed,
secrets included: kept encrypted on the server for that form, firm and user, never written
back into the page, and used when the next try leaves the field blank."""

import json

import pytest
from django.test import Client
from django.urls import reverse

from extensions import kept
from extensions.models import Installation
from partnerspace.models import Membership
from tests.test_exports_flow import accept_key, settings_post

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(client, firm):
    client.force_login(firm["owner"])
    return client


def configure(client, data):
    return client.post(reverse("store:configure", args=["sftp"]), data)


def refused_try(client, peer):
    """A first try with the right password but no user name: sent back with errors."""
    response = configure(client, settings_post(peer, **{"settings-username": ""}))
    assert response.status_code == 200
    return response


def test_errors_are_summarised_at_the_top_linking_to_each_field(signed_in, sftp_server):
    response = refused_try(signed_in, sftp_server)
    body = response.content.decode()
    summary = body.index('class="error-summary')
    assert summary < body.index('name="settings-host"')  # first in reading order
    assert 'href="#id_settings-username"' in body[summary:]
    assert 'id="id_settings-username"' in body
    assert 'aria-invalid="true"' in body
    # What was typed stays, the server included.
    assert f'value="{sftp_server.host}"' in body


def test_a_kept_secret_never_reaches_the_page_nor_the_session_in_clear(signed_in, sftp_server):
    body = refused_try(signed_in, sftp_server).content.decode()
    assert sftp_server.password not in body
    assert str(kept.KEPT_HELP) in body
    stored = json.dumps(dict(signed_in.session.items()))
    assert sftp_server.password not in stored
    assert "configure:sftp" in stored


def test_a_blank_resubmit_uses_the_kept_secret(signed_in, sftp_server):
    refused_try(signed_in, sftp_server)
    response = configure(signed_in, settings_post(sftp_server, **{"settings-password": ""}))
    assert sftp_server.fingerprint in response.content.decode()  # connected: the key to accept
    saved = accept_key(signed_in, response)
    assert saved.status_code == 302
    installation = Installation.objects.get(name="Lambert server")
    assert installation.secrets == {"password": sftp_server.password}
    assert "configure:sftp" not in json.dumps(dict(signed_in.session.items()))  # used up


def test_the_kept_secret_is_for_the_server_it_was_typed_for(signed_in, sftp_server):
    refused_try(signed_in, sftp_server)
    response = configure(
        signed_in,
        settings_post(
            sftp_server, **{"settings-password": "", "settings-port": sftp_server.port + 1}
        ),
    )
    assert response.status_code == 200
    assert 'class="error-summary' in response.content.decode()
    assert not Installation.objects.filter(name="Lambert server").exists()


def test_another_user_cannot_use_it(client, signed_in, firm, sftp_server, django_user_model):
    refused_try(signed_in, sftp_server)
    entry = signed_in.session[kept.SESSION_KEY]
    # Another owner of the same firm, whose session somehow holds the kept entry.
    other = django_user_model.objects.create_user("second-owner", password="x")
    Membership.objects.create(user=other, partner=firm["partner"], role="owner")
    browser = Client()
    browser.force_login(other)
    session = browser.session
    session[kept.SESSION_KEY] = entry
    session.save()
    response = browser.post(
        reverse("store:configure", args=["sftp"]),
        settings_post(sftp_server, **{"settings-password": ""}),
    )
    assert response.status_code == 200
    assert 'class="error-summary' in response.content.decode()
    assert sftp_server.fingerprint not in response.content.decode()  # never connected


def test_another_firm_cannot_use_it(signed_in, firm, make_partner, sftp_server):
    second = make_partner("Second Office", owner=firm["owner"])
    refused_try(signed_in, sftp_server)
    signed_in.post(reverse("switch_firm"), {"partner": second.pk, "next": "/"})
    response = configure(signed_in, settings_post(sftp_server, **{"settings-password": ""}))
    assert response.status_code == 200
    assert 'class="error-summary' in response.content.decode()
    assert sftp_server.fingerprint not in response.content.decode()


def test_the_manage_form_keeps_a_new_secret_too(signed_in, sftp_server):
    accept_key(signed_in, configure(signed_in, settings_post(sftp_server)))
    installation = Installation.objects.get(name="Lambert server")
    url = installation.get_absolute_url()
    edit = settings_post(sftp_server, **{"settings-password": sftp_server.password})
    edit["connections"] = 0  # refused
    body = signed_in.post(url, edit).content.decode()
    assert 'href="#id_connections"' in body
    assert sftp_server.password not in body
    assert str(kept.KEPT_HELP) in body
    edit.update({"connections": 2, "settings-password": ""})
    assert signed_in.post(url, edit).status_code == 302
    installation.refresh_from_db()
    assert installation.connections == 2
    assert installation.secrets["password"] == sftp_server.password
