"""Octopus: a sign-in checked against a strict local Octopus REST API
(``tests/peers/octopus.py``), invoices e-mailed to each dossier's mailbox through a real
local SMTP server (``tests/peers/smtp.py``)."""

from email import message_from_bytes, policy

import pytest
from django.core import checks
from django.urls import reverse
from django.utils import translation

from clients.models import Document
from clients.release import release
from exports.models import ExportJob
from extensions import registry
from extensions.connectors.dropbox import DropboxConnector
from extensions.connectors.octopus import OctopusConnector
from extensions.models import Installation, Integration
from extensions.paths import file_name
from tests.drives import content, deliver
from tests.peers.smtp import REFUSED, Recorder

pytestmark = pytest.mark.django_db
UNAVAILABLE = "The operator has not configured Octopus."


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


@pytest.fixture
def owner(client, firm):
    client.force_login(firm["owner"])
    return client


def point_at(settings, smtp):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = smtp.host, smtp.port
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 5
    settings.DEFAULT_FROM_EMAIL = "Partner Space <exports@portal.example.be>"


@pytest.fixture
def smtp(settings, smtp_peer):
    point_at(settings, smtp_peer)
    return smtp_peer


def install(client, user, password):
    """Store → Install → Confirm and configure → Sign in with Octopus."""
    page = client.post(reverse("store:configure", args=["octopus"]), {"confirmed": "1"})
    body = page.content.decode()
    assert "Sign in with Octopus" in body
    return client.post(
        reverse("store:configure", args=["octopus"]),
        {
            "name": "Lambert Octopus",
            "connections": 1,
            "settings-user": user,
            "settings-password": password,
        },
    )


def installed(owner, peer) -> Installation:
    response = install(owner, peer.user, peer.password)
    assert response.status_code == 302, response.content.decode()[:3000]
    return Installation.objects.get(connector="octopus")


def integrate(client, installation, company, mailbox):
    url = reverse("integrations:configure", args=[company.pk, installation.pk])
    return client.post(url, {"categories": ["purchase", "sales"], "client-mailbox": mailbox})


# --- the registry and availability -----------------------------------------------------


def test_registered_with_its_secret_fields():
    assert registry.get("octopus") is OctopusConnector
    assert OctopusConnector.secret_fields(OctopusConnector.settings_form) == ("password",)
    assert OctopusConnector.binding_fields == ("user",)
    assert OctopusConnector.accepts == {"purchase", "sales"}


def test_without_the_software_house_uuid_it_is_not_available(owner, settings):
    settings.OCTOPUS_SOFTWARE_HOUSE_UUID = ""
    store = owner.get(reverse("store:index")).content.decode()
    assert "Not available" in store
    page = owner.get(reverse("store:extension", args=["octopus"])).content.decode()
    assert UNAVAILABLE in page and "Install</button>" not in page
    install_page = owner.get(reverse("store:install", args=["octopus"])).content.decode()
    assert UNAVAILABLE in install_page and "Confirm and configure" not in install_page
    configure = owner.post(reverse("store:configure", args=["octopus"]), {"confirmed": "1"})
    assert "Sign in with Octopus" not in configure.content.decode()
    (ours,) = [
        w
        for w in checks.run_checks()
        if w.id == "extensions.W001" and w.msg.startswith("octopus:")
    ]
    assert ours.msg == f"octopus: {UNAVAILABLE}"
    assert "OCTOPUS_SOFTWARE_HOUSE_UUID" in ours.hint


def test_with_the_software_house_uuid_no_warning(octopus_peer):
    assert OctopusConnector.unavailable_reason() == ""
    warnings = [w for w in checks.run_checks() if w.id == "extensions.W001"]
    assert not [w for w in warnings if w.msg.startswith("octopus:")]


def test_a_sign_in_extension_is_still_unavailable_without_its_app(settings):
    """The generic ``unavailable_reason`` keeps the drives as they were."""
    settings.DROPBOX_APP_KEY = settings.DROPBOX_APP_SECRET = ""
    assert DropboxConnector.unavailable_reason() == DropboxConnector.oauth.unavailable
    assert DropboxConnector.operator_settings() == ("DROPBOX_APP_KEY", "DROPBOX_APP_SECRET")
    settings.DROPBOX_APP_KEY, settings.DROPBOX_APP_SECRET = "key", "secret"
    assert DropboxConnector.unavailable_reason() == ""


# --- signing in ---------------------------------------------------------------------------


def test_sign_in_checks_the_account_and_counts_its_dossiers(owner, octopus_peer):
    response = install(owner, octopus_peer.user, octopus_peer.password)
    assert response.status_code == 302 and response["Location"] == reverse("clients:list")
    page = owner.get(response["Location"]).content.decode()
    assert f"Connected as {octopus_peer.user}; 2 dossiers." in page
    installation = Installation.objects.get(connector="octopus")
    assert installation.settings["user"] == octopus_peer.user
    assert installation.secrets == {"password": octopus_peer.password}
    uuid = octopus_peer.software_house_uuid
    assert [h.get("softwareHouseUuid") for _m, _p, h, _b in octopus_peer.requests] == [uuid, uuid]
    listed = [h for method, _p, h, _b in octopus_peer.requests if method == "GET"]
    assert listed and listed[0]["Token"] in octopus_peer.tokens


def test_a_wrong_password_is_refused_in_one_line(owner, octopus_peer):
    response = install(owner, octopus_peer.user, "wrong-Password-77")
    body = response.content.decode()
    assert response.status_code == 400
    assert "Octopus refused the sign-in (HTTP 401: Invalid user or password" in body
    assert "wrong-Password-77" not in body
    assert not Installation.objects.filter(connector="octopus").exists()


def test_an_unknown_software_house_is_said(owner, octopus_peer, settings):
    settings.OCTOPUS_SOFTWARE_HOUSE_UUID = "00000000-0000-0000-0000-000000000000"
    body = install(owner, octopus_peer.user, octopus_peer.password).content.decode()
    assert "Unknown software house (softwareHouseUuid missing or unknown)" in body


# --- the dossier's mailbox and delivery -----------------------------------------------------


def test_the_mailbox_must_be_an_email_address(owner, firm, octopus_peer):
    installation = installed(owner, octopus_peer)
    company = firm["clients"][1]
    page = owner.get(reverse("integrations:configure", args=[company.pk, installation.pk]))
    assert "Manage → Dossiers → Mail box" in page.content.decode()
    response = integrate(owner, installation, company, "not an address")
    assert "Enter a valid email address." in response.content.decode()
    assert not Integration.objects.filter(client=company, installation=installation).exists()


def test_invoices_are_mailed_to_the_dossiers_mailbox(
    owner, firm, octopus_peer, smtp, make_document
):
    installation = installed(owner, octopus_peer)
    company = firm["clients"][1]
    mailbox = "peeters.aankoop@mail.octopus.example"
    assert integrate(owner, installation, company, mailbox).status_code == 302
    purchase = make_document(company, Document.Category.PURCHASE)
    sale = make_document(company, Document.Category.SALES)
    for document in (purchase, sale):
        release(document)

    assert deliver(installation).delivered == 2
    received = {}
    for message in smtp.messages:
        assert message.rcpt_tos == [mailbox]
        parsed = message_from_bytes(message.content, policy=policy.default)
        (attachment,) = parsed.iter_attachments()
        received[attachment.get_filename()] = (parsed["Message-ID"], attachment.get_content())
    for document in (purchase, sale):
        job = ExportJob.objects.get(document=document, installation=installation)
        message_id, data = received[file_name(document)]
        assert data == content(document)
        assert message_id == f"<export-{job.pk}@portal.example.be>" == job.remote_reference


def test_an_unknown_mailbox_stops_that_client_only(
    owner, firm, octopus_peer, settings, start_smtp, make_client, make_document
):
    wrong = "oud.dossier@mail.octopus.example"
    smtp = start_smtp(Recorder(refuse={wrong: REFUSED}))
    point_at(settings, smtp)
    installation = installed(owner, octopus_peer)
    gone, fine = make_client(firm["partner"], "Gone BV"), make_client(firm["partner"], "Fine BV")
    integrate(owner, installation, gone, wrong)
    integrate(owner, installation, fine, "fine@mail.octopus.example")
    release(make_document(gone, Document.Category.PURCHASE))
    kept = make_document(fine, Document.Category.PURCHASE)
    release(kept)

    deliver(installation)
    refused = Integration.objects.get(client=gone, installation=installation)
    assert refused.status == Integration.Status.ATTENTION
    assert wrong in refused.last_error and "550" in refused.last_error
    installation.refresh_from_db()
    assert installation.status == Installation.Status.OK
    assert [m.rcpt_tos for m in smtp.messages] == [["fine@mail.octopus.example"]]
