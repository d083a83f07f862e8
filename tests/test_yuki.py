"""Yuki: install with an access key, pick each client's administration, deliver invoices to
its archive, against a strict local Yuki (``tests/peers/yuki.py``)."""

from datetime import datetime

import pytest
import requests
from django.core import checks
from django.urls import reverse
from django.utils import timezone, translation

from clients.models import Document
from clients.release import release
from exports import engine
from exports.models import ExportJob
from extensions import registry
from extensions.connectors.base import (
    ClientRefused,
    PermanentError,
    ReauthorizationRequired,
    TransientError,
)
from extensions.connectors.yuki import FOLDERS, YukiConnector
from extensions.connectors.yuki_soap import YUKI_TIME, base_url, until_tomorrow
from extensions.models import Installation, Integration
from extensions.paths import file_name
from tests.drives import content, deliver

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


@pytest.fixture
def owner(client, firm):
    client.force_login(firm["owner"])
    return client


def install(client, key, name="Lambert Yuki"):
    """Store → Install → Confirm and configure → Sign in with Yuki."""
    page = client.post(reverse("store:configure", args=["yuki"]), {"confirmed": "1"})
    assert "Sign in with Yuki" in page.content.decode()
    assert "Settings → Integrations → Web services" in page.content.decode()
    return client.post(
        reverse("store:configure", args=["yuki"]),
        {"name": name, "connections": 1, "settings-access_key": key},
    )


def installed(owner, peer) -> Installation:
    response = install(owner, peer.access_key)
    assert response.status_code == 302, response.content.decode()[:3000]
    return Installation.objects.get(connector="yuki")


def integrate(client, installation, company, administration) -> Integration:
    url = reverse("integrations:configure", args=[company.pk, installation.pk])
    response = client.post(
        url, {"categories": ["purchase", "sales"], "client-administration": administration}
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    return Integration.objects.get(client=company, installation=installation)


def ready(owner, firm, peer, name="Bakkerij Peeters BV"):
    installation = installed(owner, peer)
    company = firm["clients"][1]  # the other one also exports to the firm's SFTP
    integrate(owner, installation, company, peer.administration(name))
    return installation, company


def export_file(installation, company, make_document, category=Document.Category.PURCHASE):
    document = make_document(company, category)
    release(document)
    job = ExportJob.objects.get(document=document)
    return engine.build_file(job, installation.connector_instance())


# --- the registry and the pure parts ---------------------------------------------------


def test_registered_with_its_secret_fields(settings):
    assert registry.get("yuki") is YukiConnector
    assert YukiConnector.secret_fields(YukiConnector.settings_form) == ("access_key",)
    assert YukiConnector.accepts == {"purchase", "sales"}
    settings.YUKI_BASE_URL = ""
    assert base_url() == "https://api.yukiworks.be/ws/"


def test_the_daily_count_starts_again_at_midnight_in_brussels():
    assert until_tomorrow(datetime(2026, 12, 1, 23, 30, tzinfo=YUKI_TIME)) == 1800
    # The night summer time ends is 25 hours long in Brussels.
    assert until_tomorrow(datetime(2026, 10, 25, 0, 0, tzinfo=YUKI_TIME)) == 25 * 3600


# --- installing ---------------------------------------------------------------------------


def test_sign_in_with_the_key_installs_and_counts_the_administrations(owner, yuki_peer):
    response = install(owner, yuki_peer.access_key)
    assert response.status_code == 302 and response["Location"] == reverse("clients:list")
    page = owner.get(response["Location"]).content.decode()
    assert "Signed in to Yuki; the access key&#x27;s domain holds 2 administration(s)." in page
    installation = Installation.objects.get(connector="yuki")
    assert installation.secrets == {"access_key": yuki_peer.access_key}
    assert installation.settings["service_url"] == base_url()
    assert installation.status == Installation.Status.OK


def test_a_wrong_key_is_refused_with_yukis_reason(owner, yuki_peer):
    response = install(owner, "not-a-key-0f9e")
    body = response.content.decode()
    assert response.status_code == 400
    assert "Yuki refused the web-service access key (Authentication failed.)" in body
    assert "not-a-key-0f9e" not in body
    assert not Installation.objects.filter(connector="yuki").exists()


def test_the_key_is_required(owner, yuki_peer):
    response = install(owner, "")
    assert "Enter the web-service access key." in response.content.decode()
    assert not yuki_peer.requests


# --- the client's administration ----------------------------------------------------------


def test_the_administration_is_picked_from_yukis_list(owner, firm, yuki_peer):
    installation = installed(owner, yuki_peer)
    company = firm["clients"][0]
    url = reverse("integrations:configure", args=[company.pk, installation.pk])
    page = owner.get(url).content.decode()
    assert "Bakkerij Peeters BV (BE0403.019.261)" in page
    assert "Menuiserie Dubois SRL (BE0477.472.701)" in page

    chosen = yuki_peer.administration("Menuiserie Dubois SRL")
    response = owner.post(
        url, {"categories": ["purchase", "sales"], "client-administration": chosen}
    )
    assert response.status_code == 302
    integration = Integration.objects.get(client=company, installation=installation)
    assert integration.client_settings == {"administration": chosen}
    said = owner.get(response["Location"]).content.decode()
    assert "Invoices go to the Yuki administration Menuiserie Dubois SRL" in said


def test_an_administration_yuki_does_not_list_is_refused(owner, firm, yuki_peer):
    installation = installed(owner, yuki_peer)
    company = firm["clients"][0]
    url = reverse("integrations:configure", args=[company.pk, installation.pk])
    response = owner.post(
        url, {"categories": ["purchase"], "client-administration": "7d3c1a52-not-listed"}
    )
    assert "Select a valid choice" in response.content.decode()
    assert not Integration.objects.filter(client=company, installation=installation).exists()


def test_an_administration_removed_in_yuki_stops_that_client(owner, firm, yuki_peer):
    installation, company = ready(owner, firm, yuki_peer)
    integration = Integration.objects.get(client=company, installation=installation)
    del yuki_peer.administrations[integration.client_settings["administration"]]
    test = reverse("integrations:test", args=[company.pk, integration.pk])
    page = owner.get(owner.post(test)["Location"]).content.decode()
    assert "Yuki no longer lists the administration chosen for this client" in page


# --- delivery -----------------------------------------------------------------------------


def test_invoices_land_in_the_administrations_purchase_and_sales_folders(
    owner, firm, yuki_peer, make_document
):
    installation, company = ready(owner, firm, yuki_peer)
    purchase = make_document(company, Document.Category.PURCHASE)
    sale = make_document(company, Document.Category.SALES)
    for document in (purchase, sale):
        release(document)
    before = yuki_peer.authentications

    assert deliver(installation).delivered == 2
    administration = yuki_peer.administration("Bakkerij Peeters BV")
    stored = {
        (d.administration, d.folder, d.file_name): d.content for d in yuki_peer.documents.values()
    }
    assert stored == {
        (administration, FOLDERS["purchase"], file_name(purchase)): content(purchase),
        (administration, FOLDERS["sales"], file_name(sale)): content(sale),
    }
    assert yuki_peer.authentications == before + 1  # one session for the batch
    job = ExportJob.objects.get(document=purchase)
    (ours,) = [d for d in yuki_peer.documents.values() if d.file_name == file_name(purchase)]
    assert job.remote_reference == ours.id


def test_a_retry_after_a_lost_answer_leaves_one_document(owner, firm, yuki_peer, make_document):
    installation, company = ready(owner, firm, yuki_peer)
    document = make_document(company, Document.Category.PURCHASE)
    release(document)
    yuki_peer.lose_next_answer = True

    assert deliver(installation).stopped == "transient"
    job = ExportJob.objects.get(document=document)
    assert job.status == ExportJob.Status.FAILED
    ExportJob.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())
    assert deliver(installation).delivered == 1

    (only,) = yuki_peer.documents.values()
    assert only.content == content(document)
    job.refresh_from_db()
    assert job.remote_reference == only.id


def test_the_daily_limit_waits_until_tomorrow(owner, firm, yuki_peer, make_document):
    installation, company = ready(owner, firm, yuki_peer)
    exported = export_file(installation, company, make_document)
    yuki_peer.daily_limit = yuki_peer.calls + 1  # the session opens, then Yuki says no
    with (
        pytest.raises(TransientError) as caught,
        installation.connector_instance().open() as session,
    ):
        session.send(exported)
    assert "Daily limit exceeded" in str(caught.value)
    assert abs(caught.value.retry_after - until_tomorrow()) < 60
    assert not yuki_peer.documents


def test_an_ended_session_is_opened_again_once(owner, firm, yuki_peer, make_document):
    installation, company = ready(owner, firm, yuki_peer)
    first = export_file(installation, company, make_document)
    second = export_file(installation, company, make_document)
    with installation.connector_instance().open() as session:
        session.send(first)
        before = yuki_peer.authentications
        yuki_peer.expire_sessions()
        session.send(second)
    assert yuki_peer.authentications == before + 1
    assert {d.file_name for d in yuki_peer.documents.values()} == {
        first.filename,
        second.filename,
    }


def test_a_refused_document_is_refused_for_good_with_yukis_words(
    owner, firm, yuki_peer, make_document
):
    installation, company = ready(owner, firm, yuki_peer)
    exported = export_file(installation, company, make_document)
    yuki_peer.refuse_upload("The file is larger than allowed.")
    with (
        pytest.raises(PermanentError, match=r"The file is larger than allowed\."),
        installation.connector_instance().open() as session,
    ):
        session.send(exported)


def test_a_server_error_without_a_fault_is_transient(owner, firm, yuki_peer):
    installation, _company = ready(owner, firm, yuki_peer)
    yuki_peer.fail_next_with = 503
    with (
        pytest.raises(TransientError, match="503"),
        installation.connector_instance().open(),
    ):
        pass  # the session's Authenticate meets the 503


def test_a_client_without_an_administration_waits_alone(owner, firm, yuki_peer, make_document):
    installation, company = ready(owner, firm, yuki_peer)
    exported = export_file(installation, company, make_document)
    unset = exported.__class__(**{**exported.__dict__, "client_settings": {}})
    with pytest.raises(ClientRefused), installation.connector_instance().open() as session:
        session.send(unset)


def test_a_new_yuki_address_gets_no_key(owner, firm, yuki_peer, settings):
    installation = installed(owner, yuki_peer)
    asked = len(yuki_peer.requests)
    settings.YUKI_BASE_URL = "http://127.0.0.1:9/elsewhere/ws/"
    with pytest.raises(ReauthorizationRequired, match="Yuki's address changed"):
        Installation.objects.get(pk=installation.pk).connector_instance().check()
    assert len(yuki_peer.requests) == asked


# --- the fake refuses what Yuki refuses ---------------------------------------------------


def test_the_local_yuki_refuses_what_yuki_refuses(yuki_peer):
    """So the tests above prove the connector speaks Yuki's dialect."""
    url = yuki_peer.url + "/ws/Archive.asmx"

    def post(action, body, content_type="text/xml; charset=utf-8", service_url=url):
        headers = {"Content-Type": content_type}
        if action:
            headers["SOAPAction"] = f'"http://www.theyukicompany.com/{action}"'
        return requests.post(service_url, data=body, headers=headers, timeout=5)

    def envelope(operation, inner, namespace="http://www.theyukicompany.com/"):
        return (
            '<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>'
            f'<{operation} xmlns="{namespace}">{inner}</{operation}></soap:Body></soap:Envelope>'
        )

    key = f"<accessKey>{yuki_peer.access_key}</accessKey>"
    assert post("Authenticate", envelope("Authenticate", key)).status_code == 200
    as_json = post("Authenticate", envelope("Authenticate", key), "application/json")
    assert as_json.status_code == 415
    missing = post(None, envelope("Authenticate", key))
    assert missing.status_code == 500 and "valid action" in missing.text
    wrong_ns = post("Authenticate", envelope("Authenticate", key, "http://example.com/"))
    assert wrong_ns.status_code == 500 and "<faultstring>" in wrong_ns.text
    session = post("Authenticate", envelope("Authenticate", key)).text
    session_id = session.split("<AuthenticateResult>")[1].split("<")[0]
    cased = post(
        "Administrations",
        envelope("Administrations", f"<sessionId>{session_id}</sessionId>"),
        service_url=yuki_peer.url + "/ws/AccountingInfo.asmx",
    )
    assert "Session is invalid or expired." in cased.text
    right = post(
        "Administrations",
        envelope("Administrations", f"<sessionID>{session_id}</sessionID>"),
        service_url=yuki_peer.url + "/ws/AccountingInfo.asmx",
    )
    assert right.status_code == 200 and "Bakkerij Peeters BV" in right.text


def test_no_warning_about_yuki(settings):
    """Yuki needs nothing of the operator: each firm types its own key."""
    assert YukiConnector.unavailable_reason() == ""
    warnings = [w for w in checks.run_checks() if w.id == "extensions.W001"]
    assert not [w for w in warnings if w.msg.startswith("yuki:")]
