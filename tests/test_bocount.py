"""BoCount through the views and the engine, against the strict local web service of
``tests/peers/bocount.py``: the firm's address on install, each client's own web-service
user on its Integrations tab, and one client's refused password stopping that client only."""

import base64
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone, translation

from clients.models import Document
from clients.release import release
from exports import engine
from exports.models import ExportJob
from extensions import registry
from extensions.connectors.bocount import (
    BocountClientForm,
    BocountConnector,
    BocountSettingsForm,
    service_address,
)
from extensions.models import Installation, Integration
from extensions.paths import file_name

pytestmark = pytest.mark.django_db

PEETERS, DUBOIS = "BE0403019261", "BE0417497106"
DUBOIS_PASSWORD = "Dubois ws/pass 2"  # as tests/peers/bocount.py has it


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


@pytest.fixture
def owner(client, firm):
    client.force_login(firm["owner"])
    return client


def install(partner, peer, name="Lambert BoCount") -> Installation:
    return Installation.objects.create(
        partner=partner,
        connector="bocount",
        name=name,
        settings={"base_url": peer.base_url},
    )


def integrate(installation, company, user, password, number) -> Integration:
    """An integration as its form stores it: the password entered for the firm's address."""
    return Integration.objects.create(
        client=company,
        installation=installation,
        categories=["purchase", "sales"],
        client_settings={
            "username": user,
            "company_number": number,
            "entered_for": service_address(installation.settings["base_url"]),
        },
        client_secrets={"password": password},
        activated_at=timezone.now() - timedelta(minutes=1),
    )


def content(document) -> bytes:
    with document.file.open("rb") as stored:
        return stored.read()


def deliver(integration):
    return engine.deliver(engine.destination_of(integration))


@pytest.fixture
def dubois(firm, bocount_peer):
    """The firm's BoCount, and its second client connected with its own user."""
    installation = install(firm["partner"], bocount_peer)
    company = firm["clients"][1]
    password = bocount_peer.users["ws-dubois"][0]
    return installation, integrate(installation, company, "ws-dubois", password, DUBOIS)


# --- declarations and forms -----------------------------------------------------------


def test_registered_per_client_with_the_clients_password_as_its_secret():
    assert registry.get("bocount") is BocountConnector
    assert BocountConnector.connection_scope == "integration"
    assert BocountConnector.secret_fields(BocountSettingsForm) == ()
    assert BocountConnector.secret_fields(BocountClientForm) == ("password",)
    assert BocountConnector.accepts == {"purchase", "sales"}


def test_the_address_must_be_https_without_credentials_or_query(settings):
    def errors(url):
        return BocountSettingsForm({"base_url": url}).errors.get("base_url", [])

    settings.EXPORT_ALLOW_PRIVATE_HOSTS = False
    assert BocountSettingsForm({"base_url": "bocount.lambert.be/ws"}).is_valid()
    assert "https" in str(errors("http://bocount.lambert.be/ws"))
    assert "user name and password" in str(errors("https://u:p@bocount.lambert.be/ws"))
    assert "after ? or #" in str(errors("https://bocount.lambert.be/ws?db=1"))
    assert errors("")
    form = BocountSettingsForm({"base_url": "https://BoCount.Lambert.be/ws//"})
    assert form.is_valid() and form.cleaned_data["base_url"] == "https://bocount.lambert.be/ws/"


def test_install_checks_the_web_service(owner, firm, bocount_peer):
    url = reverse("store:configure", args=["bocount"])
    owner.post(url, {"confirmed": "1"})
    response = owner.post(
        url,
        {"name": "Lambert BoCount", "connections": 2, "settings-base_url": bocount_peer.base_url},
    )
    assert response.status_code == 302, response.content.decode()[-2000:]
    installation = Installation.objects.get(name="Lambert BoCount")
    assert installation.settings["base_url"] == bocount_peer.base_url
    assert installation.secrets == {}
    assert [r.path for r in bocount_peer.requests] == ["/webservice/status"]
    page = owner.get(response["Location"]).content.decode()
    assert "Reached the BoCount web service" in page and "version 3.1" in page


def test_install_refuses_an_address_where_no_bocount_answers(owner, bocount_peer):
    url = reverse("store:configure", args=["bocount"])
    owner.post(url, {"confirmed": "1"})
    response = owner.post(
        url,
        {"name": "Wrong", "connections": 1, "settings-base_url": bocount_peer.url + "/nothing/"},
    )
    assert response.status_code != 302
    assert "HTTP 404" in response.content.decode()
    assert not Installation.objects.filter(name="Wrong").exists()


# --- the client's web-service user ----------------------------------------------------


def client_post(user="ws-dubois", password=DUBOIS_PASSWORD, number="BE 0417.497.106"):
    return {
        "categories": ["purchase", "sales"],
        "client-username": user,
        "client-password": password,
        "client-company_number": number,
    }


def test_the_client_form_offers_the_clients_vat_number_and_checks_its_user(
    client, firm, bocount_peer
):
    installation = install(firm["partner"], bocount_peer)
    company = firm["clients"][1]
    client.force_login(firm["member"])
    url = reverse("integrations:configure", args=[company.pk, installation.pk])
    page = client.get(url).content.decode()
    assert f'value="{company.vat_number}"' in page

    response = client.post(url, client_post())
    assert response.status_code == 302, response.content.decode()[-2000:]
    integration = Integration.objects.get(client=company, installation=installation)
    assert integration.client_settings == {
        "username": "ws-dubois",
        "company_number": DUBOIS,
        "entered_for": bocount_peer.base_url.rstrip("/"),
    }
    assert integration.client_secrets == {"password": DUBOIS_PASSWORD}
    shown = client.get(response["Location"]).content.decode()
    assert "Signed in to BoCount" in shown and "Menuiserie Dubois SRL" in shown


@pytest.mark.parametrize(
    ("post", "field", "error"),
    [
        (client_post(number="BE 0417.497.107"), "company_number", "check digits"),
        (client_post(number=""), "company_number", "required"),
        (client_post(user=""), "username", "required"),
        (client_post(password=""), "password", "Enter this client&#x27;s web-service password"),
    ],
    ids=["vat-checksum", "no-vat", "no-user", "no-password"],
)
def test_each_invalid_field_is_refused(client, firm, bocount_peer, post, field, error):
    installation = install(firm["partner"], bocount_peer)
    company = firm["clients"][1]
    client.force_login(firm["member"])
    url = reverse("integrations:configure", args=[company.pk, installation.pk])
    response = client.post(url, post)
    assert response.status_code == 200
    assert error in response.content.decode()
    assert not Integration.objects.filter(client=company, installation=installation).exists()
    assert not bocount_peer.calls("GET", r"/webservice/companies/.*")  # not sent on


@pytest.mark.parametrize(
    ("post", "said"),
    [
        (client_post(password="wrong"), "BoCount refused this client&#x27;s web-service user"),
        (client_post(number="BE 0403.019.261"), "BoCount has no company"),
    ],
    ids=["wrong-password", "unknown-company"],
)
def test_what_bocount_refuses_keeps_the_form_unsaved(client, firm, bocount_peer, post, said):
    installation = install(firm["partner"], bocount_peer)
    company = firm["clients"][1]
    client.force_login(firm["member"])
    url = reverse("integrations:configure", args=[company.pk, installation.pk])
    response = client.post(url, post)
    body = response.content.decode()
    assert said in body
    assert "wrong" not in body.split(said, 1)[1][:300]  # the password is not echoed
    assert not Integration.objects.filter(client=company, installation=installation).exists()


# --- delivery ----------------------------------------------------------------------------


def test_purchase_and_sales_invoices_reach_the_clients_company(
    firm, bocount_peer, dubois, make_document
):
    _installation, integration = dubois
    company = integration.client
    purchase = make_document(company, Document.Category.PURCHASE, number="AP/2025/7")
    sale = make_document(company, Document.Category.SALES, number="VF-2025-0042")
    for document in (purchase, sale):
        release(document)

    assert deliver(integration).delivered == 2
    uploads = {u.type: u for u in bocount_peer.uploads}
    assert set(uploads) == {"purchase", "sales"}
    for kind, document in (("purchase", purchase), ("sales", sale)):
        job = ExportJob.objects.get(document=document)
        assert uploads[kind].company == DUBOIS
        assert uploads[kind].content == content(document)
        assert uploads[kind].filename == file_name(document)
        assert uploads[kind].idempotency_key == job.idempotency_key
        assert job.remote_reference == uploads[kind].id
    upload = bocount_peer.calls("POST", r"/webservice/companies/.*/documents")[0]
    user, _colon, password = base64.b64decode(upload.headers["authorization"][6:]).partition(b":")
    assert (user, password) == (b"ws-dubois", DUBOIS_PASSWORD.encode())


def test_one_clients_refused_password_stops_that_client_only(
    client, firm, bocount_peer, make_client, make_document
):
    installation = install(firm["partner"], bocount_peer)
    peeters = make_client(firm["partner"], "Bakkerij Peeters", enterprise_number="0403019261")
    dubois = firm["clients"][1]
    refused = integrate(installation, peeters, "ws-peeters", "Peeters ws/pass 1", PEETERS)
    working = integrate(
        installation, dubois, "ws-dubois", bocount_peer.users["ws-dubois"][0], DUBOIS
    )
    bocount_peer.users["ws-peeters"] = ("changed in BoCount", {PEETERS})
    waiting = make_document(peeters, Document.Category.PURCHASE)
    sent = make_document(dubois, Document.Category.PURCHASE)
    release(waiting)
    release(sent)

    assert deliver(refused).delivered == 0
    assert deliver(working).delivered == 1

    refused.refresh_from_db()
    assert refused.status == Integration.Status.RECONNECT
    assert "BoCount refused this client's web-service user" in refused.last_error
    job = ExportJob.objects.get(document=waiting)
    assert (job.status, job.attempts) == (ExportJob.Status.PENDING, 0)  # nothing lost
    installation.refresh_from_db()
    assert installation.status == Installation.Status.OK
    assert ExportJob.objects.get(document=sent).status == ExportJob.Status.DELIVERED
    assert [u.company for u in bocount_peer.uploads] == [DUBOIS]

    # The client's password entered again on its tab: the waiting invoice goes.
    bocount_peer.users["ws-peeters"] = ("the new one", {PEETERS})
    client.force_login(firm["member"])
    edit = reverse("integrations:edit", args=[peeters.pk, refused.pk])
    response = client.post(edit, client_post("ws-peeters", "the new one", PEETERS))
    assert response.status_code == 302, response.content.decode()[-1500:]
    refused.refresh_from_db()
    assert refused.status == Integration.Status.OK
    assert deliver(refused).delivered == 1
    assert [u.company for u in bocount_peer.uploads] == [DUBOIS, PEETERS]


def test_a_changed_address_asks_the_clients_password_again(
    client, firm, bocount_peer, dubois, make_document
):
    installation, integration = dubois
    moved = bocount_peer.url + "/elsewhere/"
    installation.settings = {"base_url": moved}
    installation.save()
    release(make_document(integration.client, Document.Category.PURCHASE))
    before = len(bocount_peer.requests)

    assert deliver(integration).delivered == 0
    integration.refresh_from_db()
    assert integration.status == Integration.Status.RECONNECT
    assert "address changed" in integration.last_error
    assert len(bocount_peer.requests) == before  # the password went nowhere

    client.force_login(firm["member"])
    url = reverse("integrations:edit", args=[integration.client.pk, integration.pk])
    response = client.post(url, client_post(password=""))
    assert "address changed since this client&#x27;s password was entered" in (
        response.content.decode()
    )


def test_a_retry_after_a_lost_answer_leaves_one_document(bocount_peer, dubois, make_document):
    _installation, integration = dubois
    document = make_document(integration.client, Document.Category.SALES)
    release(document)
    bocount_peer.lose_next_answer = True

    assert deliver(integration).stopped == "transient"
    job = ExportJob.objects.get(document=document)
    assert job.status == ExportJob.Status.FAILED
    ExportJob.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())
    assert deliver(integration).delivered == 1

    assert len(bocount_peer.uploads) == 1
    assert len(bocount_peer.calls("GET", r"/webservice/companies/.*/documents")) == 2
    job.refresh_from_db()
    assert job.status == ExportJob.Status.DELIVERED
    assert job.remote_reference == bocount_peer.uploads[0].id


def test_a_refused_document_fails_with_bocounts_reason(bocount_peer, dubois, make_document):
    _installation, integration = dubois
    first = make_document(integration.client, Document.Category.PURCHASE)
    second = make_document(integration.client, Document.Category.PURCHASE)
    release(first)
    release(second)
    bocount_peer.reject_next = "Supplier VAT number unknown in this company"

    report = deliver(integration)
    assert (report.dead, report.delivered) == (1, 1)  # the batch went on
    dead = ExportJob.objects.get(status=ExportJob.Status.DEAD, document__in=[first, second])
    assert "BoCount refused the document" in dead.last_error
    assert "Supplier VAT number unknown in this company (HTTP 422)" in dead.last_error


@pytest.mark.parametrize("status", [429, 503])
def test_busy_or_failing_service_retries_after_its_delay(
    bocount_peer, dubois, make_document, status
):
    _installation, integration = dubois
    document = make_document(integration.client, Document.Category.PURCHASE)
    release(document)
    bocount_peer.fail(status, retry_after=600)

    assert deliver(integration).stopped == "transient"
    job = ExportJob.objects.get(document=document)
    assert (job.status, job.attempts) == (ExportJob.Status.FAILED, 1)
    assert job.next_attempt_at >= timezone.now() + timedelta(seconds=590)


def test_a_company_bocount_no_longer_has_stops_that_client(bocount_peer, dubois, make_document):
    _installation, integration = dubois
    release(make_document(integration.client, Document.Category.PURCHASE))
    del bocount_peer.companies[DUBOIS]

    assert deliver(integration).delivered == 0
    integration.refresh_from_db()
    assert integration.status == Integration.Status.ATTENTION
    assert "BoCount has no company with this client's company number" in integration.last_error
