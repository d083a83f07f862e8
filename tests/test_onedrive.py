"""OneDrive for Business: the sign-in through the views and the exports, against a strict
local Microsoft (``tests/peers/microsoft.py``).

Every step is real HTTP: the views are called with Django's test client, the redirect to
Microsoft's sign-in page is followed by hand with ``requests``, and its redirect back is
handed to the callback view, as a browser would.
"""

import os
import threading
from urllib.parse import parse_qs, quote, urlsplit

import pytest
import requests
from django.conf import settings as django_settings
from django.core import checks
from django.db import connection
from django.urls import reverse
from django.utils import timezone, translation

from clients.models import Document
from clients.release import release
from exports.models import ExportJob
from extensions import registry
from extensions.connectors.onedrive import OneDriveConnector, item_path, login_url, microsoft_url
from extensions.models import Installation
from extensions.paths import file_name
from extensions.pending import SESSION_KEY
from tests.drives import (
    activate,
    at_provider,
    back_from_provider,
    client_folder,
    content,
    deliver,
    send_together,
)

ROOT = "Invoice_import"  # as the product's guide names it
pytestmark = pytest.mark.django_db

KEY = "onedrive"


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


@pytest.fixture
def owner(client, firm):
    client.force_login(firm["owner"])
    return client


def configure_page(client):
    """Store → Install → Confirm and configure: the form before the sign-in."""
    page = client.get(reverse("store:install", args=[KEY]))
    assert page.status_code == 200 and "Confirm and configure" in page.content.decode()
    return client.post(reverse("store:configure", args=[KEY]), {"confirmed": "1"})


def start_install(client, *, accept_terms=True, **settings):
    """The configure form, then *Sign in with Microsoft*: the redirect to Microsoft."""
    form = configure_page(client)
    body = form.content.decode()
    assert "Sign in with Microsoft" in body and "I accept the terms" in body
    assert "Files are sent as" in body  # the one format, stated as a fact
    policy = form["Content-Security-Policy"]  # the form may lead to Microsoft's sign-in
    assert "form-action 'self' " + django_settings.MICROSOFT_BASE_URL in policy
    data = {"name": "Lambert OneDrive", "connections": 2, **settings}
    if accept_terms:
        data["accept_terms"] = "on"
    return client.post(reverse("store:configure", args=[KEY]), data)


def at_provider_of(peer, start):
    return at_provider(start, f"{peer.url}/{peer.tenant}/oauth2/v2.0/authorize")


def install(client, peer, **settings) -> Installation:
    response = back_from_provider(client, at_provider_of(peer, start_install(client, **settings)))
    assert response.status_code == 302, response.content.decode()[:2000]
    assert response["Location"] == reverse("clients:list")
    return Installation.objects.get(connector=KEY)


def installed_with_a_client(owner, firm, peer, make_client, name="Lambert Klant BV", **kw):
    installation = install(owner, peer, **kw)
    company = make_client(firm["partner"], name)
    activate(owner, installation, company)
    return installation, company


def uploads(peer):
    return [r for r in peer.requests if r[0] == "PUT" and r[1].endswith(":/content")]


# --- the registry and addresses -----------------------------------------------------------


def test_registered_without_typed_secrets():
    assert registry.get(KEY) is OneDriveConnector
    assert OneDriveConnector.secret_fields(OneDriveConnector.settings_form) == ()
    assert OneDriveConnector.oauth.scope == ("Files.ReadWrite", "offline_access", "User.Read")
    assert OneDriveConnector.terms_url


def test_without_a_base_url_the_addresses_are_microsofts(settings):
    settings.MICROSOFT_BASE_URL = ""
    settings.ONEDRIVE_TENANT = "organizations"
    backend = OneDriveConnector.oauth.client()
    assert backend.authorization_url() == (
        "https://login.microsoftonline.com/organizations/oauth2/v2.0/authorize"
    )
    assert backend.access_token_url() == (
        "https://login.microsoftonline.com/organizations/oauth2/v2.0/token"
    )
    assert microsoft_url("graph", "/v1.0/me") == "https://graph.microsoft.com/v1.0/me"
    settings.ONEDRIVE_TENANT = "0b1f6c3e-4d2a-4c8e-9f11-2a5d7e9c1b34"
    assert login_url("token") == (
        "https://login.microsoftonline.com/0b1f6c3e-4d2a-4c8e-9f11-2a5d7e9c1b34/oauth2/v2.0/token"
    )


def test_path_segments_are_encoded_one_by_one():
    assert item_path(["Invoice_import", "Café & Co BV_BE1", "a:b#c.xml"]) == (
        "Invoice_import/Caf%C3%A9%20%26%20Co%20BV_BE1/a%3Ab%23c.xml"
    )


# --- the sign-in -------------------------------------------------------------------------


def test_sign_in_installs_and_shows_the_account(owner, firm, microsoft_peer):
    start = start_install(owner)
    sent = parse_qs(urlsplit(start["Location"]).query)
    assert sent["client_id"] == [microsoft_peer.client_id]
    assert sent["scope"] == ["Files.ReadWrite offline_access User.Read"]

    response = back_from_provider(owner, at_provider_of(microsoft_peer, start))
    assert response.status_code == 302 and response["Location"] == reverse("clients:list")
    assert "Installation succeeded." in owner.get(response["Location"]).content.decode()

    installation = Installation.objects.get(connector=KEY)
    assert installation.name == "Lambert OneDrive" and installation.connections == 2
    assert installation.settings["account"] == microsoft_peer.account
    assert set(installation.secrets) == {"access_token", "refresh_token", "expires_at"}
    assert installation.secrets["refresh_token"] in microsoft_peer.refresh_tokens
    manage = owner.get(reverse("store:manage", args=[installation.pk])).content.decode()
    assert "Connected as" in manage and microsoft_peer.account in manage
    assert "Reconnect" in manage
    assert microsoft_peer.tree() == {ROOT: None}  # the check made the base folder
    assert SESSION_KEY not in owner.session


def test_the_terms_must_be_accepted_before_the_sign_in(owner, microsoft_peer):
    response = start_install(owner, accept_terms=False)
    assert response.status_code == 200
    assert "This field is required" in response.content.decode()
    assert SESSION_KEY not in owner.session
    assert microsoft_peer.requests == []


def test_cancelled_sign_in_changes_nothing(owner, microsoft_peer):
    microsoft_peer.consent = False
    response = back_from_provider(owner, at_provider_of(microsoft_peer, start_install(owner)))
    assert response["Location"] == reverse("store:extension", args=[KEY])
    assert "Sign-in was cancelled" in owner.get(response["Location"]).content.decode()
    assert not Installation.objects.filter(connector=KEY).exists()
    assert microsoft_peer.grants == 0


def test_a_state_that_does_not_match_is_refused(owner, microsoft_peer):
    back = at_provider_of(microsoft_peer, start_install(owner))
    answer = parse_qs(back.query)
    forged = {**answer, "state": ["forged-" + answer["state"][0]]}
    assert owner.get(back.path, forged).status_code == 403
    assert not Installation.objects.filter(connector=KEY).exists()
    assert microsoft_peer.grants == 0


def test_without_app_credentials_the_store_says_it_is_not_available(owner, settings):
    settings.ONEDRIVE_CLIENT_ID = ""
    settings.ONEDRIVE_CLIENT_SECRET = ""
    message = "The operator has not configured Microsoft sign-in."
    assert "Not available" in owner.get(reverse("store:index")).content.decode()
    page = owner.get(reverse("store:install", args=[KEY])).content.decode()
    assert message in page and "Confirm and configure" not in page
    response = owner.post(
        reverse("store:configure", args=[KEY]),
        {"name": "OneDrive", "connections": 2, "accept_terms": "on"},
    )
    assert response.status_code == 200 and message in response.content.decode()
    warnings = [
        w for w in checks.run_checks() if w.id == "extensions.W001" and w.msg.startswith(f"{KEY}:")
    ]
    assert [w.msg for w in warnings] == [f"{KEY}: {message}"]
    assert "ONEDRIVE_CLIENT_ID" in warnings[0].hint


# --- exports -----------------------------------------------------------------------------


def test_released_documents_land_in_the_clients_folders(
    owner, firm, microsoft_peer, make_client, make_document
):
    installation, company = installed_with_a_client(
        owner, firm, microsoft_peer, make_client, "Café & Co BV"
    )
    purchase = make_document(company, Document.Category.PURCHASE, number="AP/2025/1")
    sale = make_document(company, Document.Category.SALES)
    report = make_document(company, Document.Category.REPORT)
    for document in (purchase, sale, report):
        release(document)

    assert deliver(installation).delivered == 2  # transaction reports are off by default
    folder = client_folder(company)
    assert microsoft_peer.tree() == {
        ROOT: None,
        folder: None,
        f"{folder}/AP": None,
        f"{folder}/AR": None,
        f"{folder}/AP/{file_name(purchase)}": content(purchase),
        f"{folder}/AR/{file_name(sale)}": content(sale),
    }
    assert not ExportJob.objects.filter(document=report).exists()
    raw = next(r for r in uploads(microsoft_peer) if "AP/" in r[1])[1]
    assert quote(f"{company.name}_{company.vat_number}", safe="") in raw  # é, & and spaces


def test_transaction_reports_when_the_installation_enables_them(
    owner, firm, microsoft_peer, make_client, make_document
):
    installation, company = installed_with_a_client(
        owner, firm, microsoft_peer, make_client, **{"settings-include_reports": "on"}
    )
    report = make_document(company, Document.Category.REPORT)
    release(report)
    assert deliver(installation).delivered == 1
    assert microsoft_peer.tree()[f"{client_folder(company)}/CODA/{file_name(report)}"] == (
        content(report)
    )


def test_rotated_refresh_tokens_are_kept_across_renewals(
    owner, firm, microsoft_peer, make_client, make_document
):
    installation, company = installed_with_a_client(owner, firm, microsoft_peer, make_client)
    spent = []
    for _ in range(2):  # each delivery finds its token expired and renews it
        installation.refresh_from_db()
        spent.append(installation.secrets["refresh_token"])
        installation.credentials.save({"expires_at": 0})
        release(make_document(company, Document.Category.PURCHASE))
        assert deliver(installation).delivered == 1
    installation.refresh_from_db()
    assert microsoft_peer.refreshes == 2
    newest = installation.secrets["refresh_token"]
    assert newest not in spent and microsoft_peer.refresh_tokens == {newest}
    refreshes = [r for r in microsoft_peer.requests if b"grant_type=refresh_token" in r[4]]
    assert all(b"scope=Files.ReadWrite+offline_access+User.Read" in r[4] for r in refreshes)
    # The spent ones no longer work at Microsoft.
    for old in spent:
        answer = requests.post(
            login_url("token"),
            data={
                "grant_type": "refresh_token",
                "refresh_token": old,
                "client_id": microsoft_peer.client_id,
                "client_secret": microsoft_peer.client_secret,
                "scope": "Files.ReadWrite offline_access User.Read",
            },
            timeout=10,
        )
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


def test_an_access_token_refused_by_graph_is_renewed_once(
    owner, firm, microsoft_peer, make_client, make_document
):
    installation, company = installed_with_a_client(owner, firm, microsoft_peer, make_client)
    microsoft_peer.expire_access_tokens()
    release(make_document(company, Document.Category.PURCHASE))
    assert deliver(installation).delivered == 1
    assert microsoft_peer.refreshes == 1


def test_a_revoked_grant_waits_for_reconnect_then_sends(
    owner, firm, microsoft_peer, make_client, make_document
):
    installation, company = installed_with_a_client(owner, firm, microsoft_peer, make_client)
    microsoft_peer.revoke()
    document = make_document(company, Document.Category.PURCHASE)
    release(document)

    assert deliver(installation).delivered == 0
    installation.refresh_from_db()
    assert installation.status == Installation.Status.RECONNECT
    assert "invalid_grant" in installation.last_error and "Reconnect" in installation.last_error
    for value in installation.secrets.values():
        assert str(value) not in installation.last_error
    job = ExportJob.objects.get(document=document)
    assert job.status == ExportJob.Status.PENDING and job.attempts == 0

    start = owner.post(reverse("store:reconnect", args=[installation.pk]))
    response = back_from_provider(owner, at_provider_of(microsoft_peer, start))
    assert response["Location"] == installation.get_absolute_url()
    assert "Configuration saved." in owner.get(response["Location"]).content.decode()
    installation.refresh_from_db()
    assert installation.status == Installation.Status.OK
    assert installation.name == "Lambert OneDrive"

    assert deliver(installation).delivered == 1
    path = f"{client_folder(company)}/AP/{file_name(document)}"
    assert microsoft_peer.tree()[path] == content(document)


def test_a_retry_after_a_lost_answer_leaves_one_item(
    owner, firm, microsoft_peer, make_client, make_document
):
    installation, company = installed_with_a_client(owner, firm, microsoft_peer, make_client)
    document = make_document(company, Document.Category.PURCHASE)
    release(document)
    microsoft_peer.lose_next_answer = True

    assert deliver(installation).stopped == "transient"
    job = ExportJob.objects.get(document=document)
    assert job.status == ExportJob.Status.FAILED
    ExportJob.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())
    assert deliver(installation).delivered == 1

    path = (*client_folder(company).split("/"), "AP", file_name(document))
    files = [names for names, item in microsoft_peer.items.items() if not item.folder]
    assert files == [path]
    item = microsoft_peer.items[path]
    assert item.content == content(document) and item.versions == 2
    job.refresh_from_db()
    assert job.status == ExportJob.Status.DELIVERED and job.remote_reference == item.id


@pytest.mark.parametrize("large", [False, True], ids=["simple", "upload-session"])
def test_a_re_send_overwrites_in_place(
    owner, firm, microsoft_peer, make_client, make_document, settings, large
):
    if large:
        settings.ONEDRIVE_SIMPLE_UPLOAD_MAX_BYTES = 1024
        settings.ONEDRIVE_FRAGMENT_BYTES = 320 * 1024
    installation, company = installed_with_a_client(owner, firm, microsoft_peer, make_client)
    data = b"<Invoice>" + bytes(range(256)) * (3000 if large else 4) + b"</Invoice>"
    document = make_document(company, Document.Category.PURCHASE, data=data)
    release(document)
    assert deliver(installation).delivered == 1
    path = (*client_folder(company).split("/"), "AP", file_name(document))
    first = microsoft_peer.items[path]
    first.content = b"changed by someone at the firm"

    job = ExportJob.objects.get(document=document)
    owner.post(reverse("exports:resend", args=[company.pk, document.pk, job.pk]))
    assert deliver(installation).delivered == 1

    assert microsoft_peer.items[path].id == first.id and microsoft_peer.replaced == 1
    assert microsoft_peer.items[path].content == data
    assert len([item for item in microsoft_peer.items.values() if not item.folder]) == 1
    job.refresh_from_db()
    assert job.remote_reference == first.id and job.resends == 1


def test_a_large_file_goes_in_an_upload_session_without_the_token(
    owner, firm, microsoft_peer, make_client, make_document, settings
):
    settings.ONEDRIVE_SIMPLE_UPLOAD_MAX_BYTES = 1024
    settings.ONEDRIVE_FRAGMENT_BYTES = 400 * 1024  # rounded down to 320 KiB
    installation, company = installed_with_a_client(owner, firm, microsoft_peer, make_client)
    data = b"<Invoice>" + bytes(range(256)) * 3000 + b"</Invoice>"  # about 750 KB
    document = make_document(company, Document.Category.PURCHASE, data=data)
    release(document)
    assert deliver(installation).delivered == 1

    assert len(microsoft_peer.fragments) == 3
    assert not any("Authorization" in headers for headers in microsoft_peer.fragments)
    assert [h["Content-Range"] for h in microsoft_peer.fragments] == [
        f"bytes 0-327679/{len(data)}",
        f"bytes 327680-655359/{len(data)}",
        f"bytes 655360-{len(data) - 1}/{len(data)}",
    ]
    assert uploads(microsoft_peer) == []
    path = f"{client_folder(company)}/AP/{file_name(document)}"
    assert microsoft_peer.tree()[path] == data


@pytest.mark.parametrize(
    ("status", "code"), [(429, "activityLimitReached"), (403, "throttledRequest")]
)
def test_a_short_throttle_is_waited_out_on_the_connection(
    owner, firm, microsoft_peer, make_client, make_document, status, code
):
    installation, company = installed_with_a_client(owner, firm, microsoft_peer, make_client)
    document = make_document(company, Document.Category.PURCHASE)
    release(document)
    microsoft_peer.fail(status, code, retry_after=0)

    report = deliver(installation)
    assert report.delivered == 1 and not report.stopped  # the same drain, no engine retry
    assert ExportJob.objects.get(document=document).attempts == 1


@pytest.mark.parametrize(
    ("status", "code"),
    [(429, "activityLimitReached"), (503, "serviceNotAvailable"), (403, "activityLimitReached")],
)
def test_throttling_waits_for_the_servers_delay(
    owner, firm, microsoft_peer, make_client, make_document, status, code
):
    installation, company = installed_with_a_client(owner, firm, microsoft_peer, make_client)
    document = make_document(company, Document.Category.PURCHASE)
    release(document)
    microsoft_peer.fail(status, code, retry_after=3600)

    assert deliver(installation).stopped == "transient"
    job = ExportJob.objects.get(document=document)
    assert job.status == ExportJob.Status.FAILED
    assert job.next_attempt_at >= timezone.now() + timezone.timedelta(minutes=59)
    installation.refresh_from_db()
    assert installation.status not in (
        Installation.Status.RECONNECT,
        Installation.Status.ATTENTION,
    )
    ExportJob.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())
    assert deliver(installation).delivered == 1


@pytest.mark.parametrize(
    ("status", "code", "said"),
    [
        (507, "quotaLimitReached", "OneDrive is full"),
        (403, "quotaLimitReached", "OneDrive is full"),
        (403, "accessDenied", "refused to let the signed-in account write"),
    ],
)
def test_a_full_or_refusing_drive_needs_attention(
    owner, firm, microsoft_peer, make_client, make_document, status, code, said
):
    installation, company = installed_with_a_client(owner, firm, microsoft_peer, make_client)
    document = make_document(company, Document.Category.PURCHASE)
    release(document)
    microsoft_peer.fail(status, code)

    assert deliver(installation).delivered == 0
    installation.refresh_from_db()
    assert installation.status == Installation.Status.ATTENTION
    assert said in installation.last_error
    job = ExportJob.objects.get(document=document)
    assert job.status == ExportJob.Status.PENDING and job.attempts == 0


def test_another_refusal_of_one_document_is_permanent(
    owner, firm, microsoft_peer, make_client, make_document
):
    installation, company = installed_with_a_client(owner, firm, microsoft_peer, make_client)
    document = make_document(company, Document.Category.PURCHASE)
    release(document)
    microsoft_peer.fail(400, "invalidRequest")
    deliver(installation)
    assert ExportJob.objects.get(document=document).status == ExportJob.Status.DEAD


def test_saving_on_manage_keeps_the_sign_in(owner, firm, microsoft_peer):
    installation = install(owner, microsoft_peer)
    tokens = dict(installation.secrets)
    response = owner.post(
        reverse("store:manage", args=[installation.pk]),
        {"name": "Lambert OneDrive", "connections": 2, "settings-include_reports": "on"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    installation.refresh_from_db()
    assert installation.settings["include_reports"] is True
    assert installation.secrets == tokens
    test = owner.post(reverse("store:test", args=[installation.pk]), follow=True)
    assert f"Connected to OneDrive as {microsoft_peer.account}" in test.content.decode()


def test_with_app_credentials_no_warning(microsoft_peer):
    assert not [
        w for w in checks.run_checks() if w.id == "extensions.W001" and w.msg.startswith(f"{KEY}:")
    ]


def test_a_member_cannot_finish_an_owners_sign_in(client, firm, microsoft_peer):
    client.force_login(firm["owner"])
    back = at_provider_of(microsoft_peer, start_install(client))
    client.force_login(firm["member"])
    assert back_from_provider(client, back).status_code == 403
    assert not Installation.objects.filter(connector=KEY).exists()


def test_a_lost_answer_to_the_last_fragment_leaves_one_item(
    owner, firm, microsoft_peer, make_client, make_document, settings
):
    settings.ONEDRIVE_SIMPLE_UPLOAD_MAX_BYTES = 1024
    settings.ONEDRIVE_FRAGMENT_BYTES = 320 * 1024
    installation, company = installed_with_a_client(owner, firm, microsoft_peer, make_client)
    data = b"<Invoice>" + bytes(range(256)) * 2000 + b"</Invoice>"
    document = make_document(company, Document.Category.PURCHASE, data=data)
    release(document)
    microsoft_peer.lose_next_answer = True
    assert deliver(installation).stopped == "transient"
    ExportJob.objects.filter(document=document).update(next_attempt_at=timezone.now())
    assert deliver(installation).delivered == 1
    files = [item for item in microsoft_peer.items.values() if not item.folder]
    assert len(files) == 1 and files[0].content == data and files[0].versions == 2


@pytest.mark.django_db(transaction=True)
def test_two_workers_spend_a_rotating_refresh_token_once(firm, microsoft_peer):
    """Both find the access token expired; one renews under the row's lock, the other
    reads the new tokens: the refresh token Microsoft replaced is never sent again."""
    refresh = "R.signed-in-" + os.urandom(4).hex()
    microsoft_peer.refresh_tokens.add(refresh)
    installation = Installation.objects.create(
        partner=firm["partner"],
        connector=KEY,
        name="OneDrive",
        settings={"account": microsoft_peer.account},
        secrets={"refresh_token": refresh, "expires_at": 0},
    )
    results, errors = [], []

    def worker():
        try:
            connector = Installation.objects.get(pk=installation.pk).connector_instance()
            results.append(connector.check())
        except Exception as exc:  # reported below, with the thread's own error
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors and len(results) == 4
    assert microsoft_peer.refreshes == 1
    installation.refresh_from_db()
    assert microsoft_peer.refresh_tokens == {installation.secrets["refresh_token"]}
    assert microsoft_peer.tree() == {ROOT: None}


@pytest.mark.django_db(transaction=True)
def test_twenty_deliveries_on_an_expired_token_renew_it_once(
    owner, firm, microsoft_peer, make_client, make_document
):
    """Twenty workers find the access token expired together: one renews it under the
    row's lock, the others use what it saved; nobody is asked to reconnect."""
    installation = install(owner, microsoft_peer)
    company = make_client(firm["partner"], "Twintig Leveringen BV")
    activate(owner, installation, company)
    before = microsoft_peer.refreshes

    assert send_together(installation, company, make_document) == []
    assert microsoft_peer.refreshes == before + 1
    installation.refresh_from_db()
    assert installation.status == Installation.Status.OK
    folder = f"{client_folder(company)}/AP/"
    files = [path for path in microsoft_peer.tree() if path.startswith(folder)]
    assert len(files) == 20
