"""Lyanthe through the views and the engine, against the strict local Lyanthe of
``tests/peers/lyanthe.py`` (the contract of docs/connectors/lyanthe.md, all assumed)."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone, translation

from clients.models import Document
from clients.release import release
from exports import engine
from exports.models import ExportJob
from extensions import registry
from extensions.connectors.lyanthe import LyantheConnector, LyantheSettingsForm
from extensions.models import Installation, Integration
from extensions.paths import file_name

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


def install(partner, peer, password=None) -> Installation:
    return Installation.objects.create(
        partner=partner,
        connector="lyanthe",
        name="Lambert Lyanthe",
        settings={"username": peer.username},
        secrets={"password": password or peer.password},
    )


def integrate(installation, company, administration="ADM-102") -> Integration:
    return Integration.objects.create(
        client=company,
        installation=installation,
        categories=["purchase", "sales"],
        client_settings={"administration": administration},
        activated_at=timezone.now() - timedelta(minutes=1),
    )


@pytest.fixture
def connected(firm, lyanthe_peer):
    installation = install(firm["partner"], lyanthe_peer)
    return installation, integrate(installation, firm["clients"][1])


def deliver(integration):
    return engine.deliver(engine.destination_of(integration))


def content(document) -> bytes:
    with document.file.open("rb") as stored:
        return stored.read()


# --- install ------------------------------------------------------------------------


def test_registered_with_the_password_as_its_secret():
    assert registry.get("lyanthe") is LyantheConnector
    assert LyantheConnector.secret_fields(LyantheSettingsForm) == ("password",)
    assert LyantheConnector.binding_fields == ("username",)


def configure(client, **data):
    url = reverse("store:configure", args=["lyanthe"])
    client.post(url, {"confirmed": "1"})
    return client.post(url, {"name": "Lambert Lyanthe", "connections": 2, **data})


def test_install_signs_in_and_says_what_it_reached(client, firm, lyanthe_peer):
    client.force_login(firm["owner"])
    response = configure(
        client,
        **{"settings-username": lyanthe_peer.username, "settings-password": lyanthe_peer.password},
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    installation = Installation.objects.get(name="Lambert Lyanthe")
    assert installation.settings["username"] == lyanthe_peer.username
    assert installation.secrets == {"password": lyanthe_peer.password}
    page = client.get(response["Location"]).content.decode()
    assert "Signed in to Lyanthe" in page and "2 administrations are visible" in page


@pytest.mark.parametrize(
    ("data", "said"),
    [
        ({"settings-username": "", "settings-password": "x"}, "This field is required"),
        ({"settings-username": "lambert-api", "settings-password": ""}, "Enter the Lyanthe"),
        (
            {"settings-username": "lambert-api", "settings-password": "wrong pass"},
            "Lyanthe refused the user name or password",
        ),
    ],
    ids=["no-user", "no-password", "wrong-password"],
)
def test_install_refuses_what_is_missing_or_wrong(client, firm, lyanthe_peer, data, said):
    client.force_login(firm["owner"])
    response = configure(client, **data)
    body = response.content.decode()
    assert response.status_code != 302 and said in body
    assert "wrong pass" not in body
    assert not Installation.objects.filter(name="Lambert Lyanthe").exists()


# --- the client's administration ------------------------------------------------------


def test_the_client_form_offers_lyanthes_administrations(client, firm, lyanthe_peer):
    installation = install(firm["partner"], lyanthe_peer)
    company = firm["clients"][1]
    client.force_login(firm["member"])
    url = reverse("integrations:configure", args=[company.pk, installation.pk])
    page = client.get(url).content.decode()
    assert "Bakkerij Peeters BV (ADM-101)" in page and "Menuiserie Dubois SRL (ADM-102)" in page

    response = client.post(url, {"categories": ["purchase"], "client-administration": "ADM-102"})
    assert response.status_code == 302
    integration = Integration.objects.get(client=company, installation=installation)
    assert integration.client_settings == {"administration": "ADM-102"}
    shown = client.get(response["Location"]).content.decode()
    assert "Documents go to the Lyanthe administration Menuiserie Dubois SRL" in shown


def test_the_administration_with_the_clients_vat_number_is_offered_first(
    client, firm, lyanthe_peer
):
    installation = install(firm["partner"], lyanthe_peer)
    company = firm["clients"][1]
    lyanthe_peer.administrations["ADM-102"]["vatNumber"] = company.vat_number
    client.force_login(firm["member"])
    page = client.get(reverse("integrations:configure", args=[company.pk, installation.pk]))
    assert '<option value="ADM-102" selected>' in page.content.decode()


def test_an_administration_lyanthe_no_longer_lists_is_refused_on_save(client, firm, lyanthe_peer):
    installation = install(firm["partner"], lyanthe_peer)
    company = firm["clients"][1]
    client.force_login(firm["member"])
    url = reverse("integrations:configure", args=[company.pk, installation.pk])
    client.get(url)
    del lyanthe_peer.administrations["ADM-102"]  # removed in Lyanthe meanwhile
    response = client.post(url, {"categories": ["purchase"], "client-administration": "ADM-102"})
    assert "Select a valid choice" in response.content.decode()
    assert not Integration.objects.filter(client=company, installation=installation).exists()


def test_a_list_lyanthe_refuses_is_said_on_the_field(client, firm, lyanthe_peer):
    installation = install(firm["partner"], lyanthe_peer, password="changed since")
    company = firm["clients"][1]
    client.force_login(firm["member"])
    url = reverse("integrations:configure", args=[company.pk, installation.pk])
    response = client.post(url, {"categories": ["purchase"], "client-administration": "ADM-102"})
    body = response.content.decode()
    assert "The list could not be fetched from the destination" in body
    assert "Lyanthe refused the user name or password" in body
    assert "changed since" not in body
    assert not Integration.objects.filter(client=company, installation=installation).exists()


# --- delivery -----------------------------------------------------------------------


def test_purchase_and_sales_invoices_reach_the_clients_administration(
    lyanthe_peer, connected, make_document
):
    _installation, integration = connected
    purchase = make_document(integration.client, Document.Category.PURCHASE)
    sale = make_document(integration.client, Document.Category.SALES)
    release(purchase)
    release(sale)

    assert deliver(integration).delivered == 2
    assert lyanthe_peer.logins == 1  # one login for the batch, not one per document
    uploads = {u.type: u for u in lyanthe_peer.uploads}
    for kind, document in (("purchase", purchase), ("sales", sale)):
        job = ExportJob.objects.get(document=document)
        assert uploads[kind].administration == "ADM-102"
        assert uploads[kind].content == content(document)
        assert uploads[kind].filename == file_name(document)
        assert uploads[kind].content_type == "application/xml"
        assert uploads[kind].idempotency_key == job.idempotency_key
        assert job.remote_reference == uploads[kind].id


def test_a_refused_token_is_renewed_by_one_new_login(lyanthe_peer, connected, make_document):
    installation, integration = connected
    with installation.connector_instance().open() as session:
        session.api.login()
        lyanthe_peer.expire_tokens()
        release(make_document(integration.client, Document.Category.PURCHASE))
        job = ExportJob.objects.get(integration=integration)
        session.send(engine.build_file(job, installation.connector_instance()))
    assert lyanthe_peer.logins == 2
    assert len(lyanthe_peer.uploads) == 1


def test_a_retry_after_a_lost_answer_leaves_one_document(lyanthe_peer, connected, make_document):
    _installation, integration = connected
    document = make_document(integration.client, Document.Category.PURCHASE)
    release(document)
    lyanthe_peer.lose_next_answer = True

    assert deliver(integration).stopped == "transient"
    job = ExportJob.objects.get(document=document)
    ExportJob.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())
    assert deliver(integration).delivered == 1

    assert len(lyanthe_peer.uploads) == 1
    assert len(lyanthe_peer.calls("GET", r"/v1/administrations/ADM-102/documents")) == 2
    job.refresh_from_db()
    assert job.remote_reference == lyanthe_peer.uploads[0].id


def test_a_refused_document_fails_with_lyanthes_reason(lyanthe_peer, connected, make_document):
    _installation, integration = connected
    document = make_document(integration.client, Document.Category.SALES)
    release(document)
    lyanthe_peer.reject_next = "Customer not found in this administration"

    assert deliver(integration).dead == 1
    job = ExportJob.objects.get(document=document)
    assert job.status == ExportJob.Status.DEAD
    assert "Lyanthe refused the document" in job.last_error
    assert "Customer not found in this administration (HTTP 422)" in job.last_error


@pytest.mark.parametrize("status", [429, 503])
def test_busy_or_failing_lyanthe_retries_after_its_delay(
    lyanthe_peer, connected, make_document, status
):
    _installation, integration = connected
    document = make_document(integration.client, Document.Category.PURCHASE)
    release(document)
    lyanthe_peer.fail(status, retry_after=600)

    assert deliver(integration).stopped == "transient"
    job = ExportJob.objects.get(document=document)
    assert (job.status, job.attempts) == (ExportJob.Status.FAILED, 1)
    assert job.next_attempt_at >= timezone.now() + timedelta(seconds=590)


def test_a_changed_password_waits_for_a_person(lyanthe_peer, connected, make_document):
    installation, integration = connected
    document = make_document(integration.client, Document.Category.PURCHASE)
    release(document)
    lyanthe_peer.users[lyanthe_peer.username] = "changed in Lyanthe"

    assert deliver(integration).delivered == 0
    installation.refresh_from_db()
    assert installation.status == Installation.Status.RECONNECT
    assert "Lyanthe refused the user name or password" in installation.last_error
    assert lyanthe_peer.password not in installation.last_error
    job = ExportJob.objects.get(document=document)
    assert (job.status, job.attempts) == (ExportJob.Status.PENDING, 0)


def test_an_administration_lyanthe_no_longer_knows_stops_that_client_only(
    firm, lyanthe_peer, connected, make_document
):
    installation, integration = connected
    other = integrate(installation, firm["clients"][0], "ADM-101")
    gone = make_document(integration.client, Document.Category.PURCHASE)
    kept = make_document(other.client, Document.Category.PURCHASE)
    release(gone)
    release(kept)
    del lyanthe_peer.administrations["ADM-102"]

    engine.deliver(engine.destination_of(integration))
    integration.refresh_from_db()
    assert integration.status == Integration.Status.ATTENTION
    assert "Lyanthe no longer knows this client's administration" in integration.last_error
    assert (
        ExportJob.objects.get(document=kept, integration=other).status
        == ExportJob.Status.DELIVERED
    )
    assert ExportJob.objects.get(document=gone).attempts == 0
    assert [u.administration for u in lyanthe_peer.uploads] == ["ADM-101"]
