"""The Active setting is a switch on the Manage page: it posts the state it asks for,
nothing changes before it is confirmed (a page without script, a dialog with), turning off
lets documents wait and turning on sends what waited."""

import pytest
from django.urls import reverse

from clients.models import Document
from clients.release import release
from exports import engine
from exports.models import ExportJob
from extensions.models import Installation, Integration
from tests.test_exports_flow import accept_key, install_sftp

pytestmark = pytest.mark.django_db


@pytest.fixture
def signed_in(client, firm):
    client.force_login(firm["owner"])
    return client


def test_the_manage_page_has_a_switch_that_asks_first(signed_in, firm):
    body = signed_in.get(firm["installation"].get_absolute_url()).content.decode()
    assert 'role="switch"' in body and 'aria-checked="true"' in body
    assert 'name="active" value="off"' in body
    assert "Nothing will be exported" in body  # the dialog's question, for script
    assert "documents wait" in body


def test_posting_the_switch_shows_the_confirmation_and_changes_nothing(signed_in, firm):
    installation = firm["installation"]
    url = reverse("store:active", args=[installation.pk])
    asked = signed_in.post(url, {"active": "off"})
    assert asked.status_code == 200
    assert "wait and are sent when you switch it on again" in asked.content.decode()
    assert 'name="confirmed"' in asked.content.decode()
    installation.refresh_from_db()
    assert installation.active is True


def test_confirmed_off_then_on_sends_what_waited(signed_in, firm, sftp_server, make_document):
    accept_key(signed_in, install_sftp(signed_in, sftp_server))
    installation = Installation.objects.get(name="Lambert server")
    client_company = firm["clients"][0]
    Integration.objects.create(
        client=client_company, installation=installation, categories=["sales"]
    )
    url = reverse("store:active", args=[installation.pk])
    signed_in.post(url, {"active": "off", "confirmed": "1"})
    signed_in.post(url, {"active": "off", "confirmed": "1"})  # a second click stays off
    installation.refresh_from_db()
    assert installation.active is False
    page = signed_in.get(installation.get_absolute_url()).content.decode()
    assert 'aria-checked="false"' in page

    document = make_document(client_company, Document.Category.SALES)
    release(document)
    assert engine.deliver(engine.Destination(installation.pk)).stopped == "inactive"
    job = ExportJob.objects.get(document=document, installation=installation)
    assert job.status == "pending"

    signed_in.post(url, {"active": "on", "confirmed": "1"})
    installation.refresh_from_db()
    assert installation.active is True
    engine.deliver(engine.Destination(installation.pk))
    job.refresh_from_db()
    assert job.status == "delivered"


def test_a_member_cannot_switch(client, firm):
    client.force_login(firm["member"])
    installation = firm["installation"]
    url = reverse("store:active", args=[installation.pk])
    assert client.post(url, {"active": "off", "confirmed": "1"}).status_code == 403
    installation.refresh_from_db()
    assert installation.active is True
