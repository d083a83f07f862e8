"""Zenvoices through the views and the engine, against the strict local Zenvoices of
``tests/peers/zenvoices.py``: its documented login and envelope, and the assumed
companies list and inbox of docs/connectors/zenvoices.md."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone, translation

from clients.models import Document
from clients.release import release
from exports import engine
from exports.models import ExportJob
from extensions import registry
from extensions.connectors.zenvoices import ZenvoicesConnector, ZenvoicesSettingsForm, base_url
from extensions.models import Installation, Integration
from extensions.paths import file_name
from tests.peers.zenvoices import INBOX

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


def install(partner, peer, password=None, organisation="lambert") -> Installation:
    return Installation.objects.create(
        partner=partner,
        connector="zenvoices",
        name="Lambert Zenvoices",
        settings={"username": peer.username, "organisation": organisation},
        secrets={"password": password or peer.password},
    )


def integrate(installation, company, code="DUBOIS") -> Integration:
    return Integration.objects.create(
        client=company,
        installation=installation,
        categories=["purchase", "sales"],
        client_settings={"company": code},
        activated_at=timezone.now() - timedelta(minutes=1),
    )


@pytest.fixture
def connected(firm, zenvoices_peer):
    installation = install(firm["partner"], zenvoices_peer)
    return installation, integrate(installation, firm["clients"][1])


def deliver(integration):
    return engine.deliver(engine.destination_of(integration))


def content(document) -> bytes:
    with document.file.open("rb") as stored:
        return stored.read()


# --- install ------------------------------------------------------------------------


def test_registered_with_the_password_as_its_secret():
    assert registry.get("zenvoices") is ZenvoicesConnector
    assert ZenvoicesConnector.secret_fields(ZenvoicesSettingsForm) == ("password",)
    assert ZenvoicesConnector.binding_fields == ("username", "organisation")


def test_the_address_is_zenvoices_unless_set(settings):
    settings.ZENVOICES_BASE_URL = ""
    assert base_url() == "https://app.zenvoices.com"


def configure(client, **data):
    url = reverse("store:configure", args=["zenvoices"])
    client.post(url, {"confirmed": "1"})
    return client.post(url, {"name": "Lambert Zenvoices", "connections": 2, **data})


def typed(peer, **changes):
    values = {
        "settings-username": peer.username,
        "settings-password": peer.password,
        "settings-organisation": peer.organisation,
    }
    return {**values, **changes}


def test_install_signs_in_keeps_the_token_and_says_what_it_reached(client, firm, zenvoices_peer):
    client.force_login(firm["owner"])
    response = configure(client, **typed(zenvoices_peer))
    assert response.status_code == 302, response.content.decode()[-2000:]
    installation = Installation.objects.get(name="Lambert Zenvoices")
    assert installation.settings["organisation"] == "lambert"
    assert installation.secrets["password"] == zenvoices_peer.password
    assert installation.secrets["access_token"] in zenvoices_peer.tokens
    assert installation.secrets["expires_at"] > timezone.now().timestamp() + 86000
    login = zenvoices_peer.calls("POST", "/api/TokenAuth/TokenLogin")[0]
    assert login.json() == {
        "userNameOrEmailAddress": zenvoices_peer.username,
        "password": zenvoices_peer.password,
        "tenancyName": "lambert",
    }
    page = client.get(response["Location"]).content.decode()
    assert "Signed in to Zenvoices as api@lambert.be (organisation lambert)" in page
    assert "2 companies are visible" in page


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"settings-username": ""}, "This field is required"),
        ({"settings-password": ""}, "Enter the Zenvoices password"),
        ({"settings-password": "wrong pass"}, "Login failed! Invalid user name or password"),
        ({"settings-organisation": ""}, "Zenvoices refused the sign-in"),
    ],
    ids=["no-user", "no-password", "wrong-password", "missing-organisation"],
)
def test_install_refuses_what_is_missing_or_wrong(client, firm, zenvoices_peer, changes, said):
    client.force_login(firm["owner"])
    response = configure(client, **typed(zenvoices_peer, **changes))
    body = response.content.decode()
    assert response.status_code != 302 and said in body
    assert "wrong pass" not in body
    assert not Installation.objects.filter(name="Lambert Zenvoices").exists()


def test_a_user_without_the_api_permissions_is_told_which(client, firm, zenvoices_peer):
    zenvoices_peer.permissions = set()  # not given in Manage > Organisation > Users
    client.force_login(firm["owner"])
    response = configure(client, **typed(zenvoices_peer))
    assert "API &gt; Inbox access and API &gt; Companies &gt; List access" in (
        response.content.decode()
    )
    assert not Installation.objects.filter(name="Lambert Zenvoices").exists()


# --- the client's company ------------------------------------------------------------


def test_the_client_form_offers_zenvoices_companies(client, firm, zenvoices_peer):
    installation = install(firm["partner"], zenvoices_peer)
    company = firm["clients"][1]
    client.force_login(firm["member"])
    url = reverse("integrations:configure", args=[company.pk, installation.pk])
    page = client.get(url).content.decode()
    assert "Bakkerij Peeters BV (PEETERS)" in page and "Menuiserie Dubois SRL (DUBOIS)" in page

    response = client.post(url, {"categories": ["purchase"], "client-company": "DUBOIS"})
    assert response.status_code == 302
    integration = Integration.objects.get(client=company, installation=installation)
    assert integration.client_settings == {"company": "DUBOIS"}
    shown = client.get(response["Location"]).content.decode()
    assert "the Zenvoices company Menuiserie Dubois SRL (DUBOIS)" in shown
    assert zenvoices_peer.logins == 1  # the token was kept across the requests


def test_a_company_zenvoices_no_longer_lists_is_refused_on_save(client, firm, zenvoices_peer):
    installation = install(firm["partner"], zenvoices_peer)
    company = firm["clients"][1]
    client.force_login(firm["member"])
    url = reverse("integrations:configure", args=[company.pk, installation.pk])
    client.get(url)
    del zenvoices_peer.companies["DUBOIS"]
    response = client.post(url, {"categories": ["purchase"], "client-company": "DUBOIS"})
    assert "Select a valid choice" in response.content.decode()
    assert not Integration.objects.filter(client=company, installation=installation).exists()


# --- delivery -----------------------------------------------------------------------


def test_purchase_and_sales_invoices_reach_the_companys_inbox(
    zenvoices_peer, connected, make_document
):
    _installation, integration = connected
    purchase = make_document(integration.client, Document.Category.PURCHASE)
    sale = make_document(integration.client, Document.Category.SALES)
    release(purchase)
    release(sale)

    assert deliver(integration).delivered == 2
    uploads = {u.type: u for u in zenvoices_peer.uploads}
    for kind, document in (("purchase", purchase), ("sales", sale)):
        job = ExportJob.objects.get(document=document)
        assert uploads[kind].company == "DUBOIS"
        assert uploads[kind].content == content(document)
        assert uploads[kind].filename == file_name(document)
        assert uploads[kind].external_id == job.idempotency_key
        assert uploads[kind].idempotency_key == job.idempotency_key
        assert job.remote_reference == str(uploads[kind].id)


def test_the_token_is_kept_and_renewed_only_when_needed(zenvoices_peer, connected, make_document):
    installation, integration = connected
    for _round in range(2):
        release(make_document(integration.client, Document.Category.PURCHASE))
        assert deliver(integration).delivered == 1
    assert zenvoices_peer.logins == 1  # one login for both deliveries

    # Near its expiry as far as we know: renewed before the first call.
    Installation.objects.get(pk=installation.pk).credentials.save({"expires_at": 0})
    release(make_document(integration.client, Document.Category.PURCHASE))
    assert deliver(integration).delivered == 1
    assert zenvoices_peer.logins == 2

    # Refused by Zenvoices before its time: one new login, the request repeated.
    zenvoices_peer.expire_tokens()
    release(make_document(integration.client, Document.Category.PURCHASE))
    assert deliver(integration).delivered == 1
    assert zenvoices_peer.logins == 3
    installation.refresh_from_db()
    assert installation.secrets["access_token"] in zenvoices_peer.tokens
    assert installation.secrets["password"] == zenvoices_peer.password


def test_a_retry_after_a_lost_answer_leaves_one_document(zenvoices_peer, connected, make_document):
    _installation, integration = connected
    document = make_document(integration.client, Document.Category.PURCHASE)
    release(document)
    zenvoices_peer.lose_next_answer = True

    assert deliver(integration).stopped == "transient"
    job = ExportJob.objects.get(document=document)
    ExportJob.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())
    assert deliver(integration).delivered == 1

    assert len(zenvoices_peer.uploads) == 1
    lookups = zenvoices_peer.calls("GET", "/public-api/v1/inbox")
    assert [(r.query["companyCode"], r.query["externalId"]) for r in lookups] == [
        ("DUBOIS", job.idempotency_key)
    ] * 2
    job.refresh_from_db()
    assert job.remote_reference == str(zenvoices_peer.uploads[0].id)


def test_a_refused_document_fails_with_zenvoices_reason(zenvoices_peer, connected, make_document):
    _installation, integration = connected
    document = make_document(integration.client, Document.Category.SALES)
    release(document)
    zenvoices_peer.reject_next = "Duplicate invoice number for this supplier"

    assert deliver(integration).dead == 1
    job = ExportJob.objects.get(document=document)
    assert job.status == ExportJob.Status.DEAD
    assert "Zenvoices refused the document" in job.last_error
    assert "Duplicate invoice number for this supplier (HTTP 400)" in job.last_error


@pytest.mark.parametrize("status", [429, 503])
def test_busy_or_failing_zenvoices_retries_after_its_delay(
    zenvoices_peer, connected, make_document, status
):
    _installation, integration = connected
    document = make_document(integration.client, Document.Category.PURCHASE)
    release(document)
    zenvoices_peer.fail(status, retry_after=600)

    assert deliver(integration).stopped == "transient"
    job = ExportJob.objects.get(document=document)
    assert (job.status, job.attempts) == (ExportJob.Status.FAILED, 1)
    assert job.next_attempt_at >= timezone.now() + timedelta(seconds=590)


def test_a_changed_password_waits_for_a_person(zenvoices_peer, connected, make_document):
    installation, integration = connected
    document = make_document(integration.client, Document.Category.PURCHASE)
    release(document)
    zenvoices_peer.password = "changed in Zenvoices"

    assert deliver(integration).delivered == 0
    installation.refresh_from_db()
    assert installation.status == Installation.Status.RECONNECT
    assert "Zenvoices refused the sign-in" in installation.last_error
    assert "Login failed!" in installation.last_error
    job = ExportJob.objects.get(document=document)
    assert (job.status, job.attempts) == (ExportJob.Status.PENDING, 0)


def test_a_removed_permission_needs_attention(zenvoices_peer, connected, make_document):
    installation, integration = connected
    release(make_document(integration.client, Document.Category.PURCHASE))
    zenvoices_peer.permissions.discard(INBOX)

    assert deliver(integration).delivered == 0
    installation.refresh_from_db()
    assert installation.status == Installation.Status.ATTENTION
    assert "API > Inbox access" in installation.last_error


def test_a_company_zenvoices_no_longer_knows_stops_that_client_only(
    firm, zenvoices_peer, connected, make_document
):
    installation, integration = connected
    other = integrate(installation, firm["clients"][0], "PEETERS")
    gone = make_document(integration.client, Document.Category.PURCHASE)
    kept = make_document(other.client, Document.Category.PURCHASE)
    release(gone)
    release(kept)
    del zenvoices_peer.companies["DUBOIS"]

    deliver(integration)
    integration.refresh_from_db()
    assert integration.status == Integration.Status.ATTENTION
    assert "Zenvoices does not know this client's company" in integration.last_error
    job = ExportJob.objects.get(document=kept, integration=other)
    assert job.status == ExportJob.Status.DELIVERED
    assert ExportJob.objects.get(document=gone).attempts == 0
    assert [u.company for u in zenvoices_peer.uploads] == ["PEETERS"]
