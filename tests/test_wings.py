"""Wings Online against its strict local peer (tests/peers/document_apis.py), which speaks
the contract of docs/connectors/wings.md: the Wings8 user, a client's internal number and
journals, exports."""

import pytest
from django.utils import translation

from clients.models import Document
from exports.models import ExportJob
from extensions import registry
from extensions.connectors.wings import WingsClientForm, WingsConnector, WingsSettingsForm
from extensions.models import Installation, Integration
from extensions.paths import file_name
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
)

pytestmark = pytest.mark.django_db
JOURNALS = {"internal_number": "17", "purchase_journal": "AK", "sales_journal": "VK"}


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


@pytest.fixture
def owner(client, firm):
    client.force_login(firm["owner"])
    return client


@pytest.fixture
def ready(owner, firm, wings_peer, make_client):
    """Installed, two clients activated: one in dossier 17, one in dossier 18."""
    wings_peer.dossiers["18"] = {"AK2": "purchase", "VK2": "sales"}
    installation, _page = installed(
        owner, "wings", username=wings_peer.username, password=wings_peer.password
    )
    dubois = make_client(firm["partner"], "Menuiserie Dubois SRL")
    peeters = make_client(firm["partner"], "Bakkerij Peeters BV")
    activated(owner, installation, dubois, **JOURNALS)
    activated(
        owner,
        installation,
        peeters,
        internal_number="18",
        purchase_journal="AK2",
        sales_journal="VK2",
    )
    return installation, dubois, peeters


def test_registered_with_its_secret_fields():
    assert registry.get("wings") is WingsConnector
    assert WingsConnector.secret_fields(WingsSettingsForm) == ("password",)
    assert WingsConnector.accepts == {"purchase", "sales"}


# --- installing ---------------------------------------------------------------------


def test_install_signs_in_and_says_as_whom(owner, wings_peer):
    installation, page = installed(
        owner, "wings", username=" Wings8123 ", password=wings_peer.password
    )
    assert "Connected to Wings Online (127.0.0.1) as Wings8123." in page
    assert installation.settings["username"] == "Wings8123"
    assert installation.secrets == {"password": wings_peer.password}
    assert [(r.method, r.path) for r in wings_peer.requests] == [("GET", "/api/v1/me")]


PREFIX = "A Wings Online user name starts with Wings8, e.g. Wings8123."


@pytest.mark.parametrize(
    ("username", "message"),
    [
        ("wings8123", PREFIX),
        ("Wings7123", PREFIX),
        ("Wings8", PREFIX),
        ("123Wings8", PREFIX),
        ("Wings8 12", "A user name has no spaces or colons."),
        ("", "This field is required."),
    ],
)
def test_the_user_name_must_start_with_wings8(username, message):
    form = WingsSettingsForm({"username": username, "password": "pw"})
    assert not form.is_valid()
    assert form.errors["username"] == [message]


def test_a_password_is_needed_on_first_install():
    form = WingsSettingsForm({"username": "Wings8123", "password": ""})
    assert not form.is_valid()
    assert form.errors == {"password": ["Enter the password."]}
    kept = WingsSettingsForm(
        {"username": "Wings8123", "password": ""}, has_stored_secrets={"password"}
    )
    assert kept.is_valid(), kept.errors


def test_wrong_credentials_keep_the_form_with_wings_reason(owner, wings_peer):
    response = install(owner, "wings", username="Wings8123", password="not it")
    body = response.content.decode()
    assert response.status_code == 400
    assert "Wings refused the credentials" in body
    assert "User name or password is not valid. (invalid_credentials)" in body
    assert not Installation.objects.filter(connector="wings").exists()


# --- the client's dossier and journals ----------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("internal_number", ""),
        ("internal_number", "17a"),
        ("purchase_journal", ""),
        ("purchase_journal", "A K"),
        ("sales_journal", "VERKOOPJOURNAAL"),
    ],
)
def test_each_invalid_client_field_is_refused(field, value):
    form = WingsClientForm({**JOURNALS, field: value})
    assert not form.is_valid()
    assert field in form.errors


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"internal_number": "99"}, "Unknown internal number 99."),
        ({"purchase_journal": "VK"}, "Wings has no purchase journal VK in dossier 17"),
        ({"sales_journal": "ZZ"}, "its sales journals are: VK."),
    ],
)
def test_activating_checks_the_dossier_and_journals(
    owner, firm, wings_peer, make_client, fields, said
):
    installation, _page = installed(
        owner, "wings", username=wings_peer.username, password=wings_peer.password
    )
    company = make_client(firm["partner"], "Menuiserie Dubois SRL")
    refused = activate(owner, installation, company, **{**JOURNALS, **fields})
    assert refused.status_code == 400
    assert said in refused.content.decode()
    assert not Integration.objects.filter(client=company).exists()

    response = activate(owner, installation, company, **JOURNALS)
    page = owner.get(response["Location"]).content.decode()
    assert "Wings dossier 17 has journals AK and VK." in page


# --- exports ------------------------------------------------------------------------


def test_released_invoices_go_to_the_dossier_and_journal_of_their_kind(
    ready, wings_peer, make_document
):
    installation, dubois, peeters = ready
    purchase = released(make_document, dubois, Document.Category.PURCHASE)
    sale = released(make_document, dubois, Document.Category.SALES)
    other = released(make_document, peeters, Document.Category.SALES)
    assert deliver(installation).delivered == 3

    by_where = {(d.where, d.fields["journal"]): d for d in wings_peer.documents}
    assert set(by_where) == {("17", "AK"), ("17", "VK"), ("18", "VK2")}
    for key, document, kind in (
        (("17", "AK"), purchase, "purchase"),
        (("17", "VK"), sale, "sales"),
        (("18", "VK2"), other, "sales"),
    ):
        held = by_where[key]
        job = job_of(document)
        assert held.content == content(document)
        assert held.fields["type"] == kind
        assert held.fields["fileName"] == file_name(document)
        assert held.fields["reference"] == held.idempotency_key == str(job.pk)
        assert job.remote_reference == held.id
    assert sorted(request.path for request in wings_peer.uploads()) == [
        "/api/v1/dossiers/17/documents",
        "/api/v1/dossiers/17/documents",
        "/api/v1/dossiers/18/documents",
    ]


def test_a_retry_after_a_lost_answer_finds_the_first(ready, wings_peer, make_document):
    installation, dubois, _peeters = ready
    document = released(make_document, dubois)
    wings_peer.lose_next_answer = True
    assert deliver(installation).stopped == "transient"
    due_now(document)
    assert deliver(installation).delivered == 1

    assert len(wings_peer.documents) == 1 and len(wings_peer.uploads()) == 1
    lookups = [r for r in wings_peer.requests if r.method == "GET" and r.query.get("reference")]
    assert {r.query["reference"] for r in lookups} == {str(job_of(document).pk)}
    assert job_of(document).remote_reference == wings_peer.documents[0].id


def test_a_journal_removed_in_wings_stops_that_client_only(ready, wings_peer, make_document):
    installation, dubois, peeters = ready
    del wings_peer.dossiers["17"]["AK"]
    waiting = released(make_document, dubois, Document.Category.PURCHASE)
    other = released(make_document, peeters, Document.Category.PURCHASE)
    assert deliver(installation).delivered == 1

    assert job_of(other).status == ExportJob.Status.DELIVERED
    job = job_of(waiting)
    assert job.status == ExportJob.Status.PENDING and job.attempts == 0
    integration = Integration.objects.get(client=dubois)
    assert integration.status == Integration.Status.ATTENTION
    assert "No purchase journal AK in dossier 17." in integration.last_error
    assert "Integrations tab" in integration.last_error


def test_a_refused_document_fails_with_wings_reason(ready, wings_peer, make_document):
    installation, dubois, _peeters = ready
    document = released(make_document, dubois)
    wings_peer.fail(422, "invalid_document", "The supplier's VAT number is missing.")
    assert deliver(installation).delivered == 0
    job = job_of(document)
    assert job.status == ExportJob.Status.DEAD
    assert "Wings refused the document: The supplier's VAT number is missing." in job.last_error


def test_a_changed_password_waits_for_a_person(ready, wings_peer, make_document):
    installation, dubois, _peeters = ready
    wings_peer.password = "changed at Wings"
    document = released(make_document, dubois)
    assert deliver(installation).delivered == 0
    installation.refresh_from_db()
    assert installation.status == Installation.Status.RECONNECT
    assert job_of(document).attempts == 0


@pytest.mark.parametrize(("status", "wait"), [(429, 60), (502, 600)])
def test_a_busy_wings_is_tried_again_after_its_delay(
    ready, wings_peer, make_document, status, wait
):
    installation, dubois, _peeters = ready
    document = released(make_document, dubois)
    wings_peer.fail(status, "busy", "Maintenance.", retry_after=wait)
    assert deliver(installation).stopped == "transient"
    job = job_of(document)
    assert job.status == ExportJob.Status.FAILED
    assert job.next_attempt_at >= at_least(wait - 1)
