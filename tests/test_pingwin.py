"""PingWin against its strict local peer (tests/peers/document_apis.py), which speaks the
contract of docs/connectors/pingwin.md: API key, CLID and file ID, exports."""

import pytest
from django.utils import translation

from clients.models import Document
from exports.models import ExportJob
from extensions import registry
from extensions.connectors.pingwin import (
    DEFAULT_BASE_URL,
    PingWinApi,
    PingWinConnector,
    PingWinSettingsForm,
)
from extensions.models import Installation
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


def settings_of(peer, **changes):
    return {"api_key": peer.api_key, "clid": peer.clid, "file_id": "2025", **changes}


@pytest.fixture
def ready(owner, firm, pingwin_peer, make_client):
    installation, _page = installed(owner, "pingwin", **settings_of(pingwin_peer))
    company = make_client(firm["partner"], "Bakkerij Peeters BV")
    activated(owner, installation, company)
    return installation, company


def test_registered_with_its_secret_fields():
    assert registry.get("pingwin") is PingWinConnector
    assert PingWinConnector.secret_fields(PingWinSettingsForm) == ("api_key",)
    assert PingWinConnector.accepts == {"purchase", "sales"}


def test_without_a_base_url_the_assumed_address_is_used(settings):
    settings.PINGWIN_BASE_URL = ""
    api = PingWinApi({"clid": "C", "file_id": "1"}, {"api_key": "k"})
    assert api.base_url == DEFAULT_BASE_URL + "/v1"


# --- installing ---------------------------------------------------------------------


def test_install_checks_the_file_and_says_which(owner, pingwin_peer):
    installation, page = installed(
        owner, "pingwin", **settings_of(pingwin_peer, clid=f" {pingwin_peer.clid} ")
    )
    assert "Connected to PingWin (127.0.0.1): file 2025, Bakkerij Peeters BV." in page
    assert (installation.settings["clid"], installation.settings["file_id"]) == (
        pingwin_peer.clid,
        "2025",
    )
    assert installation.secrets == {"api_key": pingwin_peer.api_key}
    [request] = pingwin_peer.requests
    assert (request.method, request.path) == ("GET", "/v1/files/2025")
    assert request.headers["x-clid"] == pingwin_peer.clid


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"api_key": ""}, "api_key", "Enter the API key."),
        ({"api_key": "ab cd"}, "api_key", "An API key has no spaces"),
        ({"clid": ""}, "clid", "This field is required."),
        ({"clid": "CL 47"}, "clid", "without spaces"),
        ({"file_id": ""}, "file_id", "This field is required."),
        ({"file_id": "20/25"}, "file_id", "without spaces"),
    ],
)
def test_each_invalid_setting_is_refused(changes, field, message):
    form = PingWinSettingsForm({"api_key": "k", "clid": "CL-1", "file_id": "2025", **changes})
    assert not form.is_valid()
    assert message in " ".join(form.errors[field]), form.errors


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"api_key": "wrong-key"}, "PingWin refused the credentials (The API key"),
        ({"clid": "CL-0000"}, "PingWin refused the credentials (Unknown CLID CL-0000."),
        ({"file_id": "9999"}, "PingWin refused a setting (No file 9999 for this CLID."),
    ],
)
def test_a_refusal_keeps_the_form_with_pingwins_reason(owner, pingwin_peer, changes, said):
    response = install(owner, "pingwin", **settings_of(pingwin_peer, **changes))
    body = response.content.decode().replace("&#x27;", "'")
    assert response.status_code == 400
    assert said in body
    assert "wrong-key" not in body
    assert not Installation.objects.filter(connector="pingwin").exists()


# --- exports ------------------------------------------------------------------------


def test_released_invoices_go_to_the_file(ready, pingwin_peer, make_document):
    installation, company = ready
    purchase = released(make_document, company, Document.Category.PURCHASE)
    sale = released(make_document, company, Document.Category.SALES)
    assert deliver(installation).delivered == 2

    held = {d.fields["type"]: d for d in pingwin_peer.documents}
    for kind, document in (("purchase", purchase), ("sales", sale)):
        job = job_of(document)
        assert held[kind].where == "2025"
        assert held[kind].content == content(document)
        assert held[kind].fields["fileName"] == file_name(document)
        assert held[kind].idempotency_key == str(job.pk)
        assert job.remote_reference == held[kind].id


def test_a_retry_after_a_lost_answer_is_answered_with_the_first(
    ready, pingwin_peer, make_document
):
    """No lookup in this contract: the retry carries the same Idempotency-Key."""
    installation, company = ready
    document = released(make_document, company)
    pingwin_peer.lose_next_answer = True
    assert deliver(installation).stopped == "transient"
    due_now(document)
    assert deliver(installation).delivered == 1

    assert len(pingwin_peer.documents) == 1
    keys = [r.headers["idempotency-key"] for r in pingwin_peer.uploads()]
    assert keys == [str(job_of(document).pk)] * 2
    assert job_of(document).remote_reference == pingwin_peer.documents[0].id


def test_a_refused_document_fails_with_pingwins_reason(ready, pingwin_peer, make_document):
    installation, company = ready
    document = released(make_document, company)
    pingwin_peer.fail(422, "invalid_document", "The invoice date is in a closed period.")
    assert deliver(installation).delivered == 0
    job = job_of(document)
    assert job.status == ExportJob.Status.DEAD
    assert "PingWin refused the document: The invoice date is in a closed period." in (
        job.last_error
    )


def test_a_file_removed_at_pingwin_waits_for_a_person(ready, pingwin_peer, make_document):
    installation, company = ready
    del pingwin_peer.files["2025"]
    document = released(make_document, company)
    assert deliver(installation).delivered == 0
    installation.refresh_from_db()
    assert installation.status == Installation.Status.RECONNECT
    assert "No file 2025 for this CLID." in installation.last_error
    assert job_of(document).attempts == 0


@pytest.mark.parametrize(("status", "wait"), [(429, 30), (500, 240)])
def test_a_busy_pingwin_is_tried_again_after_its_delay(
    ready, pingwin_peer, make_document, status, wait
):
    installation, company = ready
    document = released(make_document, company)
    pingwin_peer.fail(status, "busy", "Busy.", retry_after=wait)
    assert deliver(installation).stopped == "transient"
    job = job_of(document)
    assert job.status == ExportJob.Status.FAILED
    assert job.next_attempt_at >= at_least(wait - 1)
