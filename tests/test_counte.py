"""Count-e against its strict local peer (tests/peers/document_apis.py), which speaks the
contract of docs/connectors/counte.md: installing, a client's customer number, exports."""

import pytest
from django.urls import reverse
from django.utils import translation

from clients.models import Document
from exports.models import ExportJob
from extensions import registry
from extensions.connectors.counte import CounteClientForm, CounteConnector, CounteSettingsForm
from extensions.models import Installation, Integration
from tests.document_apis import (
    activate,
    activated,
    at_least,
    content,
    deliver,
    due_now,
    install,
    installed,
    job_of,
    released,
    uploaded,
)

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


@pytest.fixture
def owner(client, firm):
    client.force_login(firm["owner"])
    return client


def settings_of(peer, **changes):
    return {
        "api_url": peer.api_url,
        "database": peer.database,
        "username": peer.username,
        "password": peer.password,
        **changes,
    }


@pytest.fixture
def ready(owner, firm, counte_peer, make_client):
    """Installed, two clients activated with their customer numbers."""
    installation, _page = installed(owner, "counte", **settings_of(counte_peer))
    dubois = make_client(firm["partner"], "Menuiserie Dubois SRL")
    peeters = make_client(firm["partner"], "Bakkerij Peeters BV")
    activated(owner, installation, dubois, customer_number="40012")
    activated(owner, installation, peeters, customer_number="40013")
    return installation, dubois, peeters


def test_registered_with_its_secret_fields():
    assert registry.get("counte") is CounteConnector
    assert CounteConnector.secret_fields(CounteSettingsForm) == ("password",)
    assert CounteConnector.accepts == {"purchase", "sales"}  # no CODA: see the contract


# --- installing ---------------------------------------------------------------------


def test_install_checks_the_sign_in_and_says_what_it_reached(owner, counte_peer):
    installation, page = installed(
        owner, "counte", **settings_of(counte_peer, api_url=counte_peer.api_url + "/ ")
    )
    assert "Connected to Count-e at 127.0.0.1, database LAMBERT, as lambert.api." in page
    assert installation.settings["api_url"] == counte_peer.api_url  # trimmed
    assert installation.secrets == {"password": counte_peer.password}
    [me] = counte_peer.requests
    assert (me.method, me.path) == ("GET", "/api/me")
    assert me.headers["x-database"] == "LAMBERT"


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"api_url": ""}, "api_url", "This field is required."),
        ({"api_url": "ftp://count-e.example/api"}, "api_url", "Use an https:// address."),
        ({"api_url": "https://u:p@count-e.example/api"}, "api_url", "Remove the user name"),
        ({"api_url": "https://count-e.example/api?x=1"}, "api_url", "Remove the part after"),
        ({"database": "  "}, "database", "This field is required."),
        ({"username": ""}, "username", "This field is required."),
        ({"username": "a:b"}, "username", "cannot contain a colon"),
        ({"password": ""}, "password", "Enter the password."),
    ],
)
def test_each_invalid_setting_is_refused(changes, field, message):
    values = {
        "api_url": "https://lambert.count-e.example/api",
        "database": "LAMBERT",
        "username": "lambert.api",
        "password": "pw",
        **changes,
    }
    form = CounteSettingsForm(values)
    assert not form.is_valid()
    assert message in " ".join(form.errors[field]), form.errors


def test_plain_http_is_refused_unless_private_hosts_are_allowed(settings):
    settings.EXPORT_ALLOW_PRIVATE_HOSTS = False
    form = CounteSettingsForm(
        {
            "api_url": "http://count-e.example/api",
            "database": "D",
            "username": "u",
            "password": "p",
        }
    )
    assert not form.is_valid()
    assert form.errors["api_url"] == ["Use an https:// address."]


def test_wrong_credentials_keep_the_form_with_count_es_reason(owner, counte_peer):
    response = install(owner, "counte", **settings_of(counte_peer, password="not it"))
    body = response.content.decode()
    assert response.status_code == 400
    assert "Count-e refused the credentials" in body
    assert "User name or password is not valid. (invalid_credentials)" in body
    assert not Installation.objects.filter(connector="counte").exists()


def test_an_unknown_database_is_a_setting_to_correct(owner, counte_peer):
    response = install(owner, "counte", **settings_of(counte_peer, database="ELSEWHERE"))
    assert "Count-e refused a setting (Unknown database ELSEWHERE." in response.content.decode()


# --- the client's customer number ---------------------------------------------------


def test_the_customer_number_is_digits():
    assert CounteClientForm({"customer_number": " 40012 "}).is_valid()
    for value in ("", "4001a", "40 12"):
        form = CounteClientForm({"customer_number": value})
        assert not form.is_valid(), value


def test_activating_checks_the_customer_number_at_count_e(owner, firm, counte_peer, make_client):
    installation, _page = installed(owner, "counte", **settings_of(counte_peer))
    company = make_client(firm["partner"], "Menuiserie Dubois SRL")
    refused = activate(owner, installation, company, customer_number="99999")
    assert refused.status_code == 400
    assert "Unknown customer number 99999." in refused.content.decode()
    assert not Integration.objects.filter(client=company).exists()

    response = activate(owner, installation, company, customer_number="40012")
    assert response.status_code == 302
    page = owner.get(response["Location"]).content.decode()
    assert "Count-e knows customer 40012: Menuiserie Dubois SRL." in page


# --- exports ------------------------------------------------------------------------


def test_released_invoices_go_to_the_clients_customer_number(ready, counte_peer, make_document):
    installation, dubois, peeters = ready
    purchase = released(make_document, dubois, Document.Category.PURCHASE)
    sale = released(make_document, peeters, Document.Category.SALES)
    assert deliver(installation).delivered == 2

    sent = {body["customerNumber"]: body for body in uploaded(counte_peer)}
    assert sent["40012"]["type"] == "purchase"
    assert sent["40012"]["content"] == content(purchase)
    assert sent["40013"]["type"] == "sales"
    assert sent["40013"]["content"] == content(sale)
    for document, number in ((purchase, "40012"), (sale, "40013")):
        job = job_of(document)
        assert sent[number]["reference"] == sent[number]["idempotency-key"] == str(job.pk)
        assert job.remote_reference.startswith("doc-")


def test_a_retry_after_a_lost_answer_finds_the_first(ready, counte_peer, make_document):
    installation, dubois, _peeters = ready
    document = released(make_document, dubois)
    counte_peer.lose_next_answer = True
    assert deliver(installation).stopped == "transient"
    assert job_of(document).status == ExportJob.Status.FAILED
    due_now(document)
    assert deliver(installation).delivered == 1

    assert len(counte_peer.documents) == 1 and len(counte_peer.uploads()) == 1
    assert job_of(document).remote_reference == counte_peer.documents[0].id


def test_a_refused_document_fails_with_count_es_reason(ready, counte_peer, make_document):
    installation, dubois, _peeters = ready
    document = released(make_document, dubois)
    counte_peer.fail(422, "invalid_document", "Line 12: the VAT category is missing.")
    assert deliver(installation).delivered == 0
    job = job_of(document)
    assert job.status == ExportJob.Status.DEAD
    assert "Count-e refused the document: Line 12: the VAT category is missing." in job.last_error


def test_an_unknown_customer_stops_that_client_only(ready, counte_peer, make_document):
    installation, dubois, peeters = ready
    del counte_peer.customers["40012"]  # removed in Count-e meanwhile
    waiting = released(make_document, dubois)
    other = released(make_document, peeters)
    assert deliver(installation).delivered == 1

    assert job_of(other).status == ExportJob.Status.DELIVERED
    job = job_of(waiting)
    assert job.status == ExportJob.Status.PENDING and job.attempts == 0
    integration = Integration.objects.get(client=dubois)
    assert integration.status == Integration.Status.ATTENTION
    assert "Unknown customer number 40012." in integration.last_error
    installation.refresh_from_db()
    assert installation.status == Installation.Status.OK


def test_a_changed_password_waits_for_a_person(ready, counte_peer, make_document):
    installation, dubois, _peeters = ready
    counte_peer.password = "changed in Count-e"
    document = released(make_document, dubois)
    assert deliver(installation).delivered == 0
    installation.refresh_from_db()
    assert installation.status == Installation.Status.RECONNECT
    assert "Count-e refused the credentials" in installation.last_error
    job = job_of(document)
    assert job.status == ExportJob.Status.PENDING and job.attempts == 0


@pytest.mark.parametrize(("status", "wait"), [(429, 120), (503, 300)])
def test_a_busy_count_e_is_tried_again_after_its_delay(
    ready, counte_peer, make_document, status, wait
):
    installation, dubois, _peeters = ready
    document = released(make_document, dubois)
    counte_peer.fail(status, "busy", "Try again later.", retry_after=wait)
    assert deliver(installation).stopped == "transient"
    job = job_of(document)
    assert job.status == ExportJob.Status.FAILED
    assert job.next_attempt_at >= at_least(wait - 1)
    assert "Try again later." in job.last_error
    due_now(document)
    assert deliver(installation).delivered == 1


def test_a_re_send_is_taken_again(ready, counte_peer, make_document, owner):
    """A person's Re-send carries another key: the lookup finds nothing, Count-e takes it."""
    installation, dubois, _peeters = ready
    document = released(make_document, dubois)
    assert deliver(installation).delivered == 1
    job = job_of(document)
    owner.post(reverse("exports:resend", args=[dubois.pk, document.pk, job.pk]))
    assert deliver(installation).delivered == 1

    assert [d.idempotency_key for d in counte_peer.documents] == [str(job.pk), f"{job.pk}-1"]
    assert [d.content for d in counte_peer.documents] == [content(document)] * 2
