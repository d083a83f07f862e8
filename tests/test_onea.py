"""Onea against its strict local peer (tests/peers/document_apis.py), which speaks the
contract of docs/connectors/onea.md: the platform and API key, exports."""

import pytest
from django.utils import translation

from clients.models import Document
from exports.models import ExportJob
from extensions import registry
from extensions.connectors.onea import OneaApi, OneaConnector, OneaSettingsForm
from extensions.models import Installation, Integration
from extensions.paths import file_name
from tests.document_apis import (
    activated,
    at_least,
    content,
    deliver,
    due_now,
    install,
    installed,
    job_of,
    released,
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


@pytest.fixture
def ready(owner, firm, onea_peer, make_client):
    """Installed for Unit4 Venice, two clients activated (nothing to type per client)."""
    installation, _page = installed(owner, "onea", platform="vis", api_key=onea_peer.api_key)
    dubois = make_client(firm["partner"], "Menuiserie Dubois SRL")
    peeters = make_client(firm["partner"], "Bakkerij Peeters BV")
    activated(owner, installation, dubois)
    activated(owner, installation, peeters)
    return installation, dubois, peeters


def test_registered_with_its_secret_fields():
    assert registry.get("onea") is OneaConnector
    assert OneaConnector.secret_fields(OneaSettingsForm) == ("api_key",)
    assert OneaConnector.client_form is None
    assert OneaConnector.accepts == {"purchase", "sales"}


@pytest.mark.parametrize(
    ("platform", "url"),
    [
        ("eis", "https://eis.onea.be/api/v1"),
        ("vis", "https://vis.onea.be/api/v1"),
        ("ois", "https://ois.onea.be/api/v1"),
    ],
)
def test_each_platform_is_its_own_onea_address(settings, platform, url):
    settings.ONEA_BASE_URL = ""
    assert OneaApi({"platform": platform}, {"api_key": "k"}).base_url == url


# --- installing ---------------------------------------------------------------------


def test_install_checks_the_key_and_says_what_it_reached(owner, onea_peer):
    installation, page = installed(
        owner, "onea", platform="vis", api_key=f"  {onea_peer.api_key} "
    )
    assert "Connected to Onea for Unit4 Venice (127.0.0.1) as Fiduciaire Lambert." in page
    assert installation.settings["platform"] == "vis"
    assert installation.secrets == {"api_key": onea_peer.api_key}  # trimmed
    [me] = onea_peer.requests
    assert (me.method, me.path, me.headers["x-api-key"]) == (
        "GET",
        "/api/v1/me",
        onea_peer.api_key,
    )


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"platform": "xis", "api_key": "k"}, "platform", "Select a valid choice."),
        ({"platform": "", "api_key": "k"}, "platform", "This field is required."),
        ({"platform": "eis", "api_key": ""}, "api_key", "Enter the API key."),
        ({"platform": "eis", "api_key": "ab cd"}, "api_key", "An API key has no spaces"),
    ],
)
def test_each_invalid_setting_is_refused(values, field, message):
    form = OneaSettingsForm(values)
    assert not form.is_valid()
    assert message in " ".join(form.errors[field]), form.errors


def test_a_wrong_key_keeps_the_form_with_oneas_reason_and_without_the_key(owner, onea_peer):
    typed = "typed-key-51xq"
    response = install(owner, "onea", platform="eis", api_key=typed)
    body = response.content.decode()
    assert response.status_code == 400
    assert "Onea refused the credentials (The API key" in body and "(invalid_api_key)" in body
    assert typed not in body  # the peer echoed it; the message does not
    assert not Installation.objects.filter(connector="onea").exists()


# --- exports ------------------------------------------------------------------------


def test_released_invoices_carry_the_clients_enterprise_number(ready, onea_peer, make_document):
    installation, dubois, peeters = ready
    purchase = released(make_document, dubois, Document.Category.PURCHASE)
    sale = released(make_document, peeters, Document.Category.SALES)
    assert deliver(installation).delivered == 2

    held = {d.fields["companyNumber"]: d for d in onea_peer.documents}
    assert set(held) == {dubois.enterprise_number, peeters.enterprise_number}
    for company, document, direction in ((dubois, purchase, "purchase"), (peeters, sale, "sales")):
        stored = held[company.enterprise_number]
        job = job_of(document)
        assert stored.content == content(document)
        assert stored.fields["direction"] == direction
        assert stored.fields["fileName"] == file_name(document)
        assert stored.fields["reference"] == stored.idempotency_key == str(job.pk)
        assert job.remote_reference == stored.id


def test_a_retry_after_a_lost_answer_finds_the_first(ready, onea_peer, make_document):
    installation, dubois, _peeters = ready
    document = released(make_document, dubois)
    onea_peer.lose_next_answer = True
    assert deliver(installation).stopped == "transient"
    due_now(document)
    assert deliver(installation).delivered == 1

    assert len(onea_peer.documents) == 1 and len(onea_peer.uploads()) == 1
    assert job_of(document).remote_reference == onea_peer.documents[0].id


def test_a_dossier_the_key_does_not_reach_stops_that_client_only(ready, onea_peer, make_document):
    installation, dubois, peeters = ready
    onea_peer.companies = {peeters.enterprise_number}
    waiting = released(make_document, dubois)
    other = released(make_document, peeters)
    assert deliver(installation).delivered == 1

    assert job_of(other).status == ExportJob.Status.DELIVERED
    assert job_of(waiting).status == ExportJob.Status.PENDING
    integration = Integration.objects.get(client=dubois)
    assert integration.status == Integration.Status.ATTENTION
    assert f"No dossier with company number {dubois.enterprise_number}" in integration.last_error


def test_a_refused_document_fails_with_oneas_reason(ready, onea_peer, make_document):
    installation, dubois, _peeters = ready
    document = released(make_document, dubois)
    onea_peer.fail(422, "invalid_document", "Unsupported invoice profile.")
    assert deliver(installation).delivered == 0
    job = job_of(document)
    assert job.status == ExportJob.Status.DEAD
    assert "Onea refused the document: Unsupported invoice profile." in job.last_error


def test_a_revoked_key_waits_for_a_person(ready, onea_peer, make_document):
    installation, dubois, _peeters = ready
    onea_peer.api_key = "a new key"
    document = released(make_document, dubois)
    assert deliver(installation).delivered == 0
    installation.refresh_from_db()
    assert installation.status == Installation.Status.RECONNECT
    assert job_of(document).attempts == 0


@pytest.mark.parametrize(("status", "wait"), [(429, 3600), (503, 90)])
def test_a_busy_onea_is_tried_again_after_its_delay(ready, onea_peer, make_document, status, wait):
    installation, dubois, _peeters = ready
    document = released(make_document, dubois)
    onea_peer.fail(status, "busy", "Exact Online limit reached.", retry_after=wait)
    assert deliver(installation).stopped == "transient"
    job = job_of(document)
    assert job.status == ExportJob.Status.FAILED
    assert job.next_attempt_at >= at_least(wait - 1)
    assert "Exact Online limit reached." in job.last_error
