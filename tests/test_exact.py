"""Exact Online: the sign-in through the views, the client's administration picked from
Exact's list, and the exports, against a strict local Exact Online (``tests/peers/exact``).

Every step is real HTTP: the views are called with Django's test client, the redirect to
Exact's sign-in page is followed with ``requests`` and its redirect back is handed to the
callback view, as a browser would.
"""

import re
import threading
import time
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.db import connection
from django.urls import reverse
from django.utils import timezone, translation

from clients.models import Document
from clients.release import release
from exports import engine
from exports.models import ExportJob
from extensions import registry
from extensions.api import RateLimited
from extensions.connectors.base import PermanentError, TransientError
from extensions.connectors.exact import REGIONS, ExactConnector, quoted, subject_of
from extensions.models import Installation, Integration
from extensions.paths import file_name
from extensions.pending import SESSION_KEY
from tests import contract
from tests.drives import at_provider, back_from_provider, content, deliver
from tests.peers.exact import DOCUMENT_TYPES, NOT_BASE64

pytestmark = pytest.mark.django_db

PURCHASE_TYPE = next(t["ID"] for t in DOCUMENT_TYPES if t["Description"] == "Purchase invoice")
SALES_TYPE = next(t["ID"] for t in DOCUMENT_TYPES if t["Description"] == "Sales invoice")


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


@pytest.fixture
def owner(client, firm):
    client.force_login(firm["owner"])
    return client


def start_install(client, region="be"):
    """Store → Install → Confirm and configure (the region) → the sign-in button."""
    page = client.get(reverse("store:install", args=["exact"]))
    assert page.status_code == 200 and "Confirm and configure" in page.content.decode()
    form = client.post(reverse("store:configure", args=["exact"]), {"confirmed": "1"})
    body = form.content.decode()
    assert "Sign in with Exact Online" in body
    assert "current AND future administrations" in body  # the advice for Exact's consent
    assert "Belgium (exactonline.be)" in body and "address where your firm signs in" in body
    policy = form["Content-Security-Policy"]  # the form may lead to Exact's sign-in page
    assert "form-action 'self' " + django_settings.EXACT_BASE_URL in policy
    data = {"name": "Lambert Exact", "connections": 2, "settings-region": region}
    return client.post(reverse("store:configure", args=["exact"]), data)


def at_provider_of(peer, start):
    return at_provider(start, peer.url + "/api/oauth2/auth")


def install(client, peer, region="be") -> Installation:
    response = back_from_provider(client, at_provider_of(peer, start_install(client, region)))
    assert response.status_code == 302, response.content.decode()[:2000]
    assert response["Location"] == reverse("clients:list")
    return Installation.objects.get(connector="exact")


def activate(client, installation, company, division="202"):
    """The Integrations tab: the administration picked from Exact's list."""
    url = reverse("integrations:configure", args=[company.pk, installation.pk])
    page = client.get(url).content.decode()
    offered = re.findall(r'name="categories" value="(\w+)"', page)
    assert sorted(offered) == ["purchase", "sales"]  # no transaction reports for Exact
    response = client.post(url, {"categories": offered, "client-division": division})
    assert response.status_code == 302, response.content.decode()[:3000]
    return Integration.objects.get(client=company, installation=installation)


def ready(owner, firm, peer, make_client, name="Bakkerij Peeters BV", division="202"):
    installation = install(owner, peer)
    company = make_client(firm["partner"], name)
    activate(owner, installation, company, division)
    return installation, company


def released(make_document, company, category, **fields):
    document = make_document(company, category, **fields)
    release(document)
    return document


def export_files(installation, documents):
    """The files the engine would send for these documents, built as the engine does."""
    connector = Installation.objects.get(pk=installation.pk).connector_instance()
    return [
        engine.build_file(ExportJob.objects.get(document=document), connector)
        for document in documents
    ]


# --- the registry and the pure parts ---------------------------------------------------


def test_registered_without_typed_secrets():
    assert registry.get("exact") is ExactConnector
    assert ExactConnector.secret_fields(ExactConnector.settings_form) == ()
    assert ExactConnector.secret_fields(ExactConnector.client_form) == ()
    assert ExactConnector.accepts == {"purchase", "sales"}  # not CODA reports
    assert ExactConnector.one_per_firm
    assert "region" in ExactConnector.binding_fields


def test_every_region_has_its_own_address(settings):
    settings.EXACT_BASE_URL = ""
    spec = ExactConnector.oauth
    assert spec.client().authorization_url() == "https://start.exactonline.be/api/oauth2/auth"
    backend = spec.client(settings={"region": "nl"})
    assert backend.authorization_url() == "https://start.exactonline.nl/api/oauth2/auth"
    assert backend.access_token_url() == "https://start.exactonline.nl/api/oauth2/token"
    assert spec.client(settings={"region": "co.uk"}).access_token_url() == (
        "https://start.exactonline.co.uk/api/oauth2/token"
    )
    assert spec.authorization_origins() == sorted(url for url, _label in REGIONS.values())


def test_a_subject_quote_is_doubled_in_the_filter():
    assert quoted("PS-41 Purchase invoice O'Brien") == "'PS-41 Purchase invoice O''Brien'"


# --- the sign-in ---------------------------------------------------------------------


def test_sign_in_installs_and_shows_the_account(owner, firm, exact_peer):
    users = get_user_model().objects.count()
    start = start_install(owner)
    sent = parse_qs(urlsplit(start["Location"]).query)
    assert sent["client_id"] == [exact_peer.client_id]
    assert sent["response_type"] == ["code"] and sent["state"][0]

    response = back_from_provider(owner, at_provider_of(exact_peer, start))
    assert response.status_code == 302 and response["Location"] == reverse("clients:list")
    page = owner.get(response["Location"]).content.decode()
    assert "Installation succeeded." in page and "3 administrations are shared" in page

    installation = Installation.objects.get(connector="exact")
    assert installation.settings["region"] == "be"
    assert installation.settings["account"] == ("Hélène Lambert (helene@lambert-boekhouding.be)")
    assert set(installation.secrets) == {"access_token", "refresh_token", "expires_at"}
    assert installation.secrets["refresh_token"] in exact_peer.refresh_tokens
    # expires_in came as the string "600": ten minutes from now.
    assert 590 < installation.secrets["expires_at"] - time.time() <= 600
    (token_request,) = [r for r in exact_peer.requests if r[1] == "/api/oauth2/token"]
    assert token_request[3]["Content-Type"] == "application/x-www-form-urlencoded"
    assert any(r[1] == "/api/v1/current/Me" for r in exact_peer.requests)  # no division

    manage = owner.get(reverse("store:manage", args=[installation.pk])).content.decode()
    assert "Connected as" in manage and "Hélène Lambert" in manage
    assert "Belgium (exactonline.be)" in manage and "Reconnect" in manage
    assert get_user_model().objects.count() == users  # nobody was created
    assert SESSION_KEY not in owner.session


def test_the_region_chosen_is_where_the_sign_in_goes(owner, settings):
    settings.EXACT_BASE_URL = ""
    settings.EXACT_CLIENT_ID, settings.EXACT_CLIENT_SECRET = "app-id", "app-secret"
    start = start_install(owner, region="nl")
    assert start["Location"].startswith("https://start.exactonline.nl/api/oauth2/auth?")
    assert owner.session[SESSION_KEY]["settings"]["region"] == "nl"


def test_a_region_exact_does_not_have_is_refused(owner, exact_peer):
    response = start_install(owner, region="xx")
    assert response.status_code == 200 and "Select a valid choice" in response.content.decode()
    assert not exact_peer.requests


def test_cancelled_sign_in_changes_nothing(owner, exact_peer):
    exact_peer.consent = False
    response = back_from_provider(owner, at_provider_of(exact_peer, start_install(owner)))
    assert response["Location"] == reverse("store:extension", args=["exact"])
    assert "Sign-in was cancelled" in owner.get(response["Location"]).content.decode()
    assert not Installation.objects.filter(connector="exact").exists()
    assert exact_peer.grants == 0


def test_a_state_that_does_not_match_is_refused(owner, exact_peer):
    back = at_provider_of(exact_peer, start_install(owner))
    answer = parse_qs(back.query)
    forged = {**answer, "state": ["forged-" + answer["state"][0]]}
    assert owner.get(back.path, forged).status_code == 403
    assert not Installation.objects.filter(connector="exact").exists()
    assert exact_peer.grants == 0


def test_without_app_credentials_the_store_says_it_is_not_available(owner, settings):
    settings.EXACT_CLIENT_ID = settings.EXACT_CLIENT_SECRET = ""
    page = owner.get(reverse("store:install", args=["exact"])).content.decode()
    assert "The operator has not configured Exact Online sign-in." in page
    assert "Confirm and configure" not in page


def test_a_second_install_offers_the_first_instead(owner, firm, exact_peer):
    installation = install(owner, exact_peer)
    page = owner.get(reverse("store:install", args=["exact"])).content.decode()
    assert "Your firm already has Exact Online" in page and "Lambert Exact" in page
    assert "Hélène Lambert (helene@lambert-boekhouding.be)" in page  # its account
    assert f'href="{installation.get_absolute_url()}"' in page  # its Manage page
    assert f'href="{reverse("clients:list")}"' in page  # where clients get it
    assert "Confirm and configure" not in page
    # Posting the configure form anyway starts no second sign-in.
    data = {"name": "Second", "connections": 1, "settings-region": "be"}
    response = owner.post(reverse("store:configure", args=["exact"]), data)
    assert (
        response.status_code == 200
        and "Your firm already has Exact Online" in response.content.decode()
    )
    assert SESSION_KEY not in owner.session
    assert exact_peer.grants == 1
    assert Installation.objects.filter(connector="exact").count() == 1


def test_another_firms_installation_is_not_offered(client, firm, exact_peer):
    Installation.objects.create(
        partner=firm["other"], connector="exact", name="Elders Exact", settings={"region": "be"}
    )
    client.force_login(firm["owner"])
    page = client.get(reverse("store:install", args=["exact"])).content.decode()
    assert "Confirm and configure" in page and "Elders Exact" not in page


# --- the client's administration -----------------------------------------------------


def test_the_client_form_offers_exacts_administrations(owner, firm, exact_peer, make_client):
    exact_peer.page_size = 2  # three administrations: two pages, followed through __next
    installation = install(owner, exact_peer)
    company = make_client(firm["partner"], "Bakkerij Peeters BV")
    url = reverse("integrations:configure", args=[company.pk, installation.pk])
    page = owner.get(url).content.decode()
    for label in (
        "101 \u2013 Fiduciaire Lambert",
        "202 \u2013 Bakkerij Peeters BV",
        "303 \u2013 Menuiserie",
    ):
        assert label in page
    listed = [r for r in exact_peer.requests if r[1].endswith("/system/Divisions")]
    assert listed[-2][1] == "/api/v1/101/system/Divisions"  # the current division's list
    assert "$skiptoken" in listed[-1][2] and "Code" in listed[-1][2]["$select"]

    integration = activate(owner, installation, company, "202")
    assert integration.client_settings == {"division": "202"}


@pytest.mark.parametrize("division", ["303", "999"], ids=["removed", "unknown"])
def test_an_administration_exact_does_not_list_is_refused_on_save(
    owner, firm, exact_peer, make_client, division
):
    installation = install(owner, exact_peer)
    company = make_client(firm["partner"], "Menuiserie Dubois SRL")
    url = reverse("integrations:configure", args=[company.pk, installation.pk])
    assert "303 \u2013 Menuiserie Dubois SRL" in owner.get(url).content.decode()
    del exact_peer.divisions[303]  # no longer shared with the signed-in user
    response = owner.post(url, {"categories": ["purchase"], "client-division": division})
    assert "Select a valid choice" in response.content.decode()
    assert not Integration.objects.filter(client=company, installation=installation).exists()


# --- exports -------------------------------------------------------------------------


def test_released_invoices_arrive_in_the_clients_administration(
    owner, firm, exact_peer, make_client, make_document
):
    installation, company = ready(owner, firm, exact_peer, make_client)
    purchase = released(make_document, company, Document.Category.PURCHASE, number="AP/1")
    sale = released(make_document, company, Document.Category.SALES, number="AR/'7")
    report = released(make_document, company, Document.Category.REPORT)

    assert deliver(installation).delivered == 2
    assert not ExportJob.objects.filter(document=report).exists()  # Exact takes no CODA
    held = {subject: (kind, files) for subject, kind, files in exact_peer.held(202)}
    jobs = {d: ExportJob.objects.get(document=d) for d in (purchase, sale)}
    for document, kind in ((purchase, PURCHASE_TYPE), (sale, SALES_TYPE)):
        subject = next(s for s in held if s.startswith(f"PS-{jobs[document].pk} "))
        assert held[subject] == (kind, [(file_name(document), content(document))])
        assert document.number in subject
    assert not exact_peer.held(101) and not exact_peer.held(303)
    documents = {d["Subject"]: i for i, d in exact_peer.documents[202].items()}
    for job in jobs.values():
        job.refresh_from_db()
        assert job.status == ExportJob.Status.DELIVERED
        assert job.remote_reference in documents.values()
    for method, entity in (("POST", "Documents"), ("POST", "DocumentAttachments")):
        for request in exact_peer.api_requests(method, entity):
            headers = request[3]
            assert headers["Accept"] == "application/json"
            assert headers["Content-Type"] == "application/json"
            assert headers["Prefer"] == "return=representation"
            assert headers["Authorization"].startswith("Bearer ")
    assert len(exact_peer.api_requests("GET", "DocumentTypes")) == 1  # once per connection


@pytest.mark.parametrize("lost", ["Documents", "DocumentAttachments"])
def test_a_retry_after_a_lost_answer_leaves_one_document(
    owner, firm, exact_peer, make_client, make_document, lost
):
    installation, company = ready(owner, firm, exact_peer, make_client)
    document = released(make_document, company, Document.Category.PURCHASE)
    exact_peer.lose_answer_to = lost

    assert deliver(installation).stopped == "transient"
    job = ExportJob.objects.get(document=document)
    assert job.status == ExportJob.Status.FAILED
    ExportJob.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())
    assert deliver(installation).delivered == 1

    ((subject, kind, files),) = exact_peer.held(202)
    assert subject.startswith(f"PS-{job.pk} ") and kind == PURCHASE_TYPE
    assert files == [(file_name(document), content(document))]  # attached once
    assert len(exact_peer.api_requests("POST", "Documents")) == 1


@pytest.mark.django_db(transaction=True)
def test_twenty_deliveries_on_an_expired_token_renew_it_once(firm, exact_peer, make_document):
    """Twenty workers find the access token expired together: one renews it under the
    row's lock, the others read the new tokens; the rotated refresh token is never sent
    again, so nobody needs to reconnect."""
    exact_peer.minutely_limit = 1000
    installation = Installation.objects.create(
        partner=firm["partner"],
        connector="exact",
        name="Exact",
        settings={"region": "be", "account": "Hélène Lambert"},
        secrets={"refresh_token": exact_peer.signed_in(), "expires_at": 0},
    )
    company = firm["clients"][1]
    Integration.objects.create(
        client=company,
        installation=installation,
        categories=["purchase", "sales"],
        client_settings={"division": "202"},
        activated_at=timezone.now() - timedelta(minutes=5),
    )
    documents = [released(make_document, company, Document.Category.PURCHASE) for _ in range(20)]
    files = export_files(installation, documents)
    start = threading.Barrier(len(files))
    receipts, errors = [], []

    def worker(export_file):
        try:
            connector = Installation.objects.get(pk=installation.pk).connector_instance()
            start.wait()
            with connector.open() as session:
                receipts.append(session.send(export_file))
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(f,)) for f in files]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert len(receipts) == 20 and exact_peer.refreshes == 1
    assert exact_peer.grants == 0 and not exact_peer.refused_calls
    held = exact_peer.held(202)
    assert sorted(files_[0][1] for _s, _t, files_ in held) == sorted(f.content for f in files)
    installation.refresh_from_db()
    assert installation.status == Installation.Status.OK
    assert exact_peer.refresh_tokens == {installation.secrets["refresh_token"]}


@pytest.mark.parametrize(("left", "refreshes"), [(300, 0), (20, 1)])
def test_a_token_is_renewed_only_in_its_last_seconds(
    owner, firm, exact_peer, make_client, make_document, left, refreshes
):
    """Exact allows about one renewal per 9.5 minutes of a 10-minute token."""
    installation, company = ready(owner, firm, exact_peer, make_client)
    Installation.objects.get(pk=installation.pk).credentials.save(
        {"expires_at": time.time() + left}
    )
    released(make_document, company, Document.Category.SALES)
    assert deliver(installation).delivered == 1
    assert exact_peer.refreshes == refreshes


def test_an_access_token_exact_refuses_is_renewed_once(
    owner, firm, exact_peer, make_client, make_document
):
    installation, company = ready(owner, firm, exact_peer, make_client)
    exact_peer.expire_access_tokens()  # expired at Exact before we expected it
    released(make_document, company, Document.Category.SALES)
    assert deliver(installation).delivered == 1
    assert exact_peer.refreshes == 1


def test_an_old_refresh_token_needs_reconnect_then_the_documents_arrive(
    owner, firm, exact_peer, make_client, make_document
):
    installation, company = ready(owner, firm, exact_peer, make_client)
    stored = Installation.objects.get(pk=installation.pk)
    # Someone spent our refresh token (another copy of it): Exact rotated it away.
    spent = requests.post(
        exact_peer.url + "/api/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": stored.secrets["refresh_token"],
            "client_id": exact_peer.client_id,
            "client_secret": exact_peer.client_secret,
        },
        timeout=10,
    )
    assert spent.status_code == 200
    stored.credentials.save({"expires_at": 0})
    document = released(make_document, company, Document.Category.PURCHASE)

    assert deliver(installation).delivered == 0
    installation.refresh_from_db()
    assert installation.status == Installation.Status.RECONNECT
    assert "Old refresh token used." in installation.last_error
    assert "Reconnect" in installation.last_error
    for name in ("access_token", "refresh_token"):
        assert installation.secrets[name] not in installation.last_error
    job = ExportJob.objects.get(document=document)
    assert job.status == ExportJob.Status.PENDING and job.attempts == 0

    start = owner.post(reverse("store:reconnect", args=[installation.pk]))
    response = back_from_provider(owner, at_provider_of(exact_peer, start))
    assert response["Location"] == installation.get_absolute_url()
    installation.refresh_from_db()
    assert installation.status == Installation.Status.OK
    assert deliver(installation).delivered == 1
    ((_subject, _kind, files),) = exact_peer.held(202)
    assert files == [(file_name(document), content(document))]


def test_an_administration_no_longer_shared_stops_only_that_client(
    owner, firm, exact_peer, make_client, make_document
):
    installation, company = ready(owner, firm, exact_peer, make_client)
    released(make_document, company, Document.Category.PURCHASE)
    del exact_peer.divisions[202]
    assert deliver(installation).delivered == 0
    integration = Integration.objects.get(client=company, installation=installation)
    assert integration.status == Integration.Status.ATTENTION
    assert "administration 202" in integration.last_error
    installation.refresh_from_db()
    assert installation.status == Installation.Status.OK


# --- rate limits and errors -------------------------------------------------------------


def _reset_in(peer, name="minute_reset") -> float:
    return peer.windows[202][name] / 1000 - time.time()


def test_a_used_up_minute_hands_its_reset_to_the_engine_without_a_429(
    owner, firm, exact_peer, make_client, make_document
):
    installation, company = ready(owner, firm, exact_peer, make_client)
    first, second = [
        released(make_document, company, Document.Category.PURCHASE) for _ in range(2)
    ]
    files = export_files(installation, [first, second])
    exact_peer.minutely_limit, exact_peer.minutely_reset_in = 4, 40.0  # one document's calls
    exact_peer.windows.clear()
    connector = Installation.objects.get(pk=installation.pk).connector_instance()
    with connector.open() as session:
        session.send(files[0])
        with pytest.raises(RateLimited) as caught:
            session.send(files[1])
    assert caught.value.retry_after == pytest.approx(_reset_in(exact_peer), abs=1.0)
    assert 35 < caught.value.retry_after <= 40
    assert exact_peer.refused_calls == 0  # waited for the reset instead of earning a 429


def test_a_429_comes_back_after_the_minutes_reset(
    owner, firm, exact_peer, make_client, make_document
):
    installation, company = ready(owner, firm, exact_peer, make_client)
    document = released(make_document, company, Document.Category.PURCHASE)
    exact_peer.minutely_limit, exact_peer.minutely_reset_in = 0, 30.0
    exact_peer.windows.clear()
    (export_file,) = export_files(installation, [document])
    connector = Installation.objects.get(pk=installation.pk).connector_instance()
    with pytest.raises(RateLimited) as caught, connector.open() as session:
        session.send(export_file)
    assert caught.value.retry_after == pytest.approx(_reset_in(exact_peer), abs=1.0)
    assert "API rate limit exceeded." in str(caught.value)

    assert deliver(installation).stopped == "transient"
    job = ExportJob.objects.get(document=document)
    assert job.status == ExportJob.Status.FAILED
    assert job.next_attempt_at >= timezone.now() + timedelta(seconds=25)
    installation.refresh_from_db()
    assert installation.status != Installation.Status.RECONNECT


def test_a_used_up_day_waits_for_the_days_reset(
    owner, firm, exact_peer, make_client, make_document
):
    installation, company = ready(owner, firm, exact_peer, make_client)
    document = released(make_document, company, Document.Category.PURCHASE)
    exact_peer.daily_limit = 0
    exact_peer.windows.clear()
    (export_file,) = export_files(installation, [document])
    connector = Installation.objects.get(pk=installation.pk).connector_instance()
    with pytest.raises(RateLimited) as caught, connector.open() as session:
        session.send(export_file)
    assert caught.value.retry_after == pytest.approx(_reset_in(exact_peer, "day_reset"), abs=1.0)
    assert caught.value.retry_after > 3600


def test_a_minute_that_resets_within_seconds_is_waited_out_on_the_connection(
    owner, firm, exact_peer, make_client, make_document
):
    installation, company = ready(owner, firm, exact_peer, make_client)
    documents = [released(make_document, company, Document.Category.SALES) for _ in range(2)]
    exact_peer.minutely_limit, exact_peer.minutely_reset_in = 4, 1.0
    exact_peer.windows.clear()
    report = deliver(installation)
    assert report.delivered == 2 and not report.stopped  # one drain, no engine retry
    assert exact_peer.refused_calls == 0
    assert len(exact_peer.held(202)) == len(documents)


@pytest.mark.parametrize(
    ("status", "expected"), [(400, PermanentError), (500, TransientError), (503, TransientError)]
)
def test_exacts_errors_are_one_line_with_its_reason(
    owner, firm, exact_peer, make_client, make_document, status, expected
):
    installation, company = ready(owner, firm, exact_peer, make_client)
    document = released(make_document, company, Document.Category.PURCHASE)
    (export_file,) = export_files(installation, [document])
    exact_peer.fail(status, "Subject: the value is too long\nsecond line")
    connector = Installation.objects.get(pk=installation.pk).connector_instance()
    with pytest.raises(expected) as caught, connector.open() as session:
        session.send(export_file)
    message = str(caught.value)
    assert f"HTTP {status}: Subject: the value is too long" in message and "\n" not in message
    for value in connector.destination.secrets.values():
        assert str(value) not in message


def test_the_fake_refuses_an_attachment_that_is_not_base64(exact_peer):
    """What Exact answers, so the connector's base64 is proven by the fake accepting it."""
    token = exact_peer.signed_in()
    tokens = requests.post(
        exact_peer.url + "/api/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": token,
            "client_id": exact_peer.client_id,
            "client_secret": exact_peer.client_secret,
        },
        timeout=10,
    ).json()
    assert tokens["expires_in"] == "600"
    headers = {
        "Authorization": f"Bearer {tokens['access_token']}",
        "Accept": "application/json",
        "Content-Type": "application/json",
    }
    created = requests.post(
        exact_peer.url + "/api/v1/202/documents/Documents",
        json={"Subject": "x", "Type": PURCHASE_TYPE},
        headers=headers,
        timeout=10,
    ).json()["d"]
    refused = requests.post(
        exact_peer.url + "/api/v1/202/documents/DocumentAttachments",
        json={"Document": created["ID"], "FileName": "a.xml", "Attachment": "<Invoice/>"},
        headers=headers,
        timeout=10,
    )
    assert refused.status_code == 400
    assert refused.json()["error"]["message"]["value"] == NOT_BASE64
    # A used refresh token is refused with Exact's words.
    again = requests.post(
        exact_peer.url + "/api/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": token,
            "client_id": exact_peer.client_id,
            "client_secret": exact_peer.client_secret,
        },
        timeout=10,
    )
    assert again.status_code == 401
    assert again.json() == {
        "error": "unauthorized_client",
        "error_description": "Old refresh token used.",
    }


def test_the_subject_holds_the_exports_stable_key(
    owner, firm, exact_peer, make_client, make_document
):
    installation, company = ready(owner, firm, exact_peer, make_client)
    document = released(make_document, company, Document.Category.PURCHASE, number="AP/9")
    (export_file,) = export_files(installation, [document])
    job = ExportJob.objects.get(document=document)
    assert subject_of(export_file) == f"PS-{job.pk} Purchase invoice AP/9"


def test_the_region_cannot_be_changed_under_a_sign_in(owner, firm, exact_peer):
    installation = install(owner, exact_peer)
    tokens = dict(installation.secrets)
    response = owner.post(
        reverse("store:manage", args=[installation.pk]),
        {"name": "Lambert Exact", "connections": 2, "settings-region": "nl"},
    )
    body = response.content.decode()
    assert "the sign-in belongs to the previous one" in body
    assert "uninstall Exact Online and install it again" in body
    installation.refresh_from_db()
    assert installation.settings["region"] == "be" and installation.secrets == tokens
    same = owner.post(
        reverse("store:manage", args=[installation.pk]),
        {"name": "Lambert Exact", "connections": 3, "settings-region": "be"},
    )
    assert same.status_code == 302, same.content.decode()[:2000]
    installation.refresh_from_db()
    assert installation.connections == 3 and installation.secrets == tokens


def test_test_connection_names_the_account(owner, firm, exact_peer):
    installation = install(owner, exact_peer)
    page = owner.post(reverse("store:test", args=[installation.pk]), follow=True)
    assert "Connected to Exact Online as Hélène Lambert" in page.content.decode()


def test_the_fake_takes_a_code_once(exact_peer):
    authorize = requests.get(
        exact_peer.url + "/api/oauth2/auth",
        params={
            "client_id": exact_peer.client_id,
            "redirect_uri": "https://portal.example/store/signin/callback/",
            "response_type": "code",
            "state": "s1",
        },
        allow_redirects=False,
        timeout=10,
    )
    code = parse_qs(urlsplit(authorize.headers["Location"]).query)["code"][0]
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": "https://portal.example/store/signin/callback/",
        "client_id": exact_peer.client_id,
        "client_secret": exact_peer.client_secret,
    }
    token_url = exact_peer.url + "/api/oauth2/token"
    assert requests.post(token_url, data=form, timeout=10).status_code == 200
    assert requests.post(token_url, data=form, timeout=10).status_code == 400


@pytest.mark.parametrize("once", [True, False])
def test_one_per_firm_is_a_declaration_any_connector_can_make(owner, firm, once):
    """The shared install view reads the declaration, not Exact's key."""
    connector = contract.memory_connector("single-test", one_per_firm=once)
    with registry.registered(connector):
        Installation.objects.create(partner=firm["partner"], connector="single-test", name="Kept")
        page = owner.get(reverse("store:install", args=["single-test"])).content.decode()
    assert ("Your firm already has Memory" in page) is once
    assert ("Confirm and configure" in page) is not once
