"""Google Drive: the sign-in through the views and the exports, against a strict local Google.

Every step is real HTTP: the views are called with Django's test client, the redirect to
Google's sign-in page is followed by hand with ``requests`` against ``tests/peers/google``,
and its redirect back is handed to the callback view, as a browser would.
"""

import threading
import time
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.core import checks
from django.db import connection
from django.urls import reverse
from django.utils import timezone, translation

from clients.models import Document
from clients.release import release
from exports.models import ExportJob
from extensions import api, registry
from extensions.connectors.gdrive import GoogleDriveConnector, google_url, quoted
from extensions.models import Installation, Integration
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


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


@pytest.fixture
def owner(client, firm):
    client.force_login(firm["owner"])
    return client


def start_install(client, **settings):
    """Store → Install → Confirm and configure → the sign-in button: the redirect to Google."""
    page = client.get(reverse("store:install", args=["gdrive"]))
    assert page.status_code == 200 and "Confirm and configure" in page.content.decode()
    form = client.post(reverse("store:configure", args=["gdrive"]), {"confirmed": "1"})
    body = form.content.decode()
    assert "Sign in with Google Drive" in body and "Continue" in body  # the warning step
    policy = form["Content-Security-Policy"]  # the form may lead to Google's sign-in page
    assert "form-action 'self' " + django_settings.GOOGLE_BASE_URL in policy
    return client.post(
        reverse("store:configure", args=["gdrive"]),
        {"name": "Lambert Drive", "connections": 2, **settings},
    )


def at_provider_of(peer, start):
    return at_provider(start, peer.url + "/o/oauth2/v2/auth")


def install(client, peer, **settings) -> Installation:
    response = back_from_provider(client, at_provider_of(peer, start_install(client, **settings)))
    assert response.status_code == 302, response.content.decode()[:2000]
    assert response["Location"] == reverse("clients:list")
    return Installation.objects.get(connector="gdrive")


# --- the registry --------------------------------------------------------------------


def test_registered_without_typed_secrets():
    assert registry.get("gdrive") is GoogleDriveConnector
    assert GoogleDriveConnector.secret_fields(GoogleDriveConnector.settings_form) == ()
    assert GoogleDriveConnector.oauth.scope[0] == "https://www.googleapis.com/auth/drive.file"


def test_query_values_are_quoted_and_escaped():
    assert quoted("Bakkerij 't Hoekje") == "'Bakkerij \\'t Hoekje'"
    assert quoted("a\\b") == "'a\\\\b'"


# --- the sign-in ---------------------------------------------------------------------


def test_sign_in_installs_and_shows_the_account(owner, firm, google_peer):
    users = get_user_model().objects.count()
    start = start_install(owner)
    sent = parse_qs(urlsplit(start["Location"]).query)
    assert sent["access_type"] == ["offline"] and sent["prompt"] == ["consent"]
    assert "https://www.googleapis.com/auth/drive.file" in sent["scope"][0].split()
    assert sent["client_id"] == [google_peer.client_id]

    response = back_from_provider(owner, at_provider_of(google_peer, start))
    assert response.status_code == 302 and response["Location"] == reverse("clients:list")
    page = owner.get(response["Location"]).content.decode()
    assert "Installation succeeded." in page

    installation = Installation.objects.get(connector="gdrive")
    assert installation.name == "Lambert Drive" and installation.connections == 2
    assert installation.settings["account"] == google_peer.account
    assert set(installation.secrets) == {"access_token", "refresh_token", "expires_at"}
    assert installation.secrets["refresh_token"] in google_peer.refresh_tokens
    with connection.cursor() as cursor:  # encrypted at rest
        cursor.execute(
            "SELECT secrets FROM extensions_installation WHERE id = %s", [installation.pk]
        )
        stored = str(cursor.fetchone()[0])
    assert installation.secrets["refresh_token"] not in stored
    assert installation.secrets["access_token"] not in stored

    manage = owner.get(reverse("store:manage", args=[installation.pk])).content.decode()
    assert "Connected as" in manage and google_peer.account in manage
    assert "Reconnect" in manage
    assert google_peer.tree() == {ROOT: None}  # the check found or made the base folder
    assert get_user_model().objects.count() == users  # nobody was created
    assert int(owner.session["_auth_user_id"]) == firm["owner"].pk  # nor signed in
    assert SESSION_KEY not in owner.session


def test_cancelled_sign_in_changes_nothing(owner, google_peer):
    google_peer.consent = False
    response = back_from_provider(owner, at_provider_of(google_peer, start_install(owner)))
    assert response["Location"] == reverse("store:extension", args=["gdrive"])
    assert "Sign-in was cancelled" in owner.get(response["Location"]).content.decode()
    assert not Installation.objects.filter(connector="gdrive").exists()
    assert google_peer.grants == 0


def test_a_state_that_does_not_match_is_refused_and_spends_the_sign_in(owner, google_peer):
    back = at_provider_of(google_peer, start_install(owner))
    answer = parse_qs(back.query)
    forged = {**answer, "state": ["forged-" + answer["state"][0]]}
    assert owner.get(back.path, forged).status_code == 403
    assert not Installation.objects.filter(connector="gdrive").exists()
    assert google_peer.grants == 0  # the code was never exchanged
    # Popped once: the genuine answer arriving after it finds nothing to finish.
    response = owner.get(back.path, answer)
    assert response.status_code == 302
    assert "This sign-in expired" in owner.get(response["Location"]).content.decode()
    assert not Installation.objects.filter(connector="gdrive").exists()


def test_a_member_cannot_finish_an_owners_sign_in(client, firm, google_peer):
    client.force_login(firm["owner"])
    back = at_provider_of(google_peer, start_install(client))
    client.force_login(firm["member"])
    assert back_from_provider(client, back).status_code == 403
    assert not Installation.objects.filter(connector="gdrive").exists()


def gdrive_warning(warning) -> bool:
    """Drive's own W001: other sign-in extensions warn for their own app credentials."""
    return warning.id == "extensions.W001" and warning.msg.startswith("gdrive:")


def test_without_app_credentials_the_store_says_it_is_not_available(owner, settings):
    settings.GOOGLE_DRIVE_CLIENT_ID = ""
    settings.GOOGLE_DRIVE_CLIENT_SECRET = ""
    message = "The operator has not configured Google sign-in."
    store = owner.get(reverse("store:index")).content.decode()
    assert "Not available" in store
    assert message in owner.get(reverse("store:extension", args=["gdrive"])).content.decode()
    page = owner.get(reverse("store:install", args=["gdrive"])).content.decode()
    assert message in page and "Confirm and configure" not in page
    response = owner.post(
        reverse("store:configure", args=["gdrive"]), {"name": "Drive", "connections": 2}
    )
    assert response.status_code == 200 and message in response.content.decode()
    assert SESSION_KEY not in owner.session
    warnings = [w for w in checks.run_checks() if gdrive_warning(w)]
    assert [w.msg for w in warnings] == [f"gdrive: {message}"]
    assert "GOOGLE_DRIVE_CLIENT_ID" in warnings[0].hint


def test_with_app_credentials_no_warning(google_peer):
    assert not [w for w in checks.run_checks() if gdrive_warning(w)]


# --- exports -------------------------------------------------------------------------


def test_released_documents_land_in_the_clients_folders(
    owner, firm, google_peer, make_client, make_document
):
    installation = install(owner, google_peer)
    company = make_client(firm["partner"], "Bakkerij 't Hoekje BV")  # a quote to escape
    activate(owner, installation, company)
    purchase = make_document(company, Document.Category.PURCHASE, number="AP/2025/1")
    sale = make_document(company, Document.Category.SALES)
    report = make_document(company, Document.Category.REPORT)
    for document in (purchase, sale, report):
        release(document)

    assert deliver(installation).delivered == 2  # transaction reports are off by default
    folder = client_folder(company)
    assert google_peer.tree() == {
        ROOT: None,
        folder: None,
        f"{folder}/AP": None,
        f"{folder}/AR": None,
        f"{folder}/AP/{file_name(purchase)}": content(purchase),
        f"{folder}/AR/{file_name(sale)}": content(sale),
    }
    assert len(google_peer.files) == 6
    assert not ExportJob.objects.filter(document=report).exists()


def drive_calls(google_peer, since: int) -> list[tuple[str, str, str]]:
    """(method, path, query) of the Drive API requests from the ``since``-th on."""
    return [
        (method, path, query.get("q", ""))
        for method, path, query, *_ in google_peer.requests[since:]
        if path.startswith(("/drive/", "/upload/"))
    ]


def test_a_later_connection_finds_the_folders_without_asking_the_drive(
    owner, firm, google_peer, make_client, make_document
):
    """Folder ids are kept for every worker: a month-end backlog spread over many drains
    and connections looks each folder up once."""
    installation = install(owner, google_peer)
    company = make_client(firm["partner"], "Vanhove BV")
    activate(owner, installation, company)
    release(make_document(company, Document.Category.PURCHASE, number="A-1"))
    assert deliver(installation).delivered == 1
    before = len(google_peer.requests)

    release(make_document(company, Document.Category.PURCHASE, number="A-2"))
    assert deliver(installation).delivered == 1  # another drain, another connection
    calls = drive_calls(google_peer, before)
    assert not [call for call in calls if "folder" in call[2]]
    assert [method for method, *_ in calls] == ["GET", "POST"]  # our key looked up, the upload


def test_a_folder_deleted_by_hand_is_made_again(
    owner, firm, google_peer, make_client, make_document
):
    installation = install(owner, google_peer)
    company = make_client(firm["partner"], "Vanhove BV")
    activate(owner, installation, company)
    release(make_document(company, Document.Category.PURCHASE, number="A-1"))
    assert deliver(installation).delivered == 1
    with google_peer.lock:  # the firm deletes the AP folder, and the trash is emptied
        gone = {id for id, item in google_peer.files.items() if item.name == "AP"}
        gone |= {id for id, item in google_peer.files.items() if set(item.parents) & gone}
        for id in gone:
            del google_peer.files[id]

    later = make_document(company, Document.Category.PURCHASE, number="A-2")
    release(later)
    assert deliver(installation).delivered == 1
    path = f"{client_folder(company)}/AP/{file_name(later)}"
    assert google_peer.tree()[path] == content(later)
    assert [name for name in google_peer.tree() if name.endswith("/AP")] == [
        f"{client_folder(company)}/AP"
    ]


def test_transaction_reports_when_the_installation_enables_them(
    owner, firm, google_peer, make_client, make_document
):
    installation = install(owner, google_peer, **{"settings-include_reports": "on"})
    company = make_client(firm["partner"], "Garage Peeters")
    activate(owner, installation, company)
    report = make_document(company, Document.Category.REPORT)
    release(report)
    assert deliver(installation).delivered == 1
    path = f"{client_folder(company)}/CODA/{file_name(report)}"
    assert google_peer.tree()[path] == content(report)


def test_without_reports_the_integrations_tab_does_not_offer_them(owner, firm, google_peer):
    installation = install(owner, google_peer)
    company = firm["clients"][1]
    url = reverse("integrations:configure", args=[company.pk, installation.pk])
    page = owner.get(url).content.decode()
    assert 'value="purchase"' in page and 'value="report"' not in page
    refused = owner.post(url, {"categories": ["purchase", "report"]})
    assert refused.status_code == 200 and "Select a valid choice" in refused.content.decode()
    assert not Integration.objects.filter(client=company, installation=installation).exists()


def test_an_expired_access_token_is_renewed_once(
    owner, firm, google_peer, make_client, make_document
):
    installation = install(owner, google_peer)
    company = make_client(firm["partner"], "Renew BV")
    activate(owner, installation, company)
    # Expired as far as we know: renewed before the first call.
    Installation.objects.get(pk=installation.pk).credentials.save({"expires_at": 0})
    first = make_document(company, Document.Category.PURCHASE)
    release(first)
    assert deliver(installation).delivered == 1
    assert google_peer.refreshes == 1
    # Expired at Google before we expected it: the 401 renews it once and repeats.
    google_peer.expire_access_tokens()
    second = make_document(company, Document.Category.PURCHASE)
    release(second)
    assert deliver(installation).delivered == 1
    assert google_peer.refreshes == 2
    installation.refresh_from_db()
    assert installation.secrets["access_token"] in google_peer.access_tokens
    assert installation.status == Installation.Status.OK


def test_a_revoked_grant_waits_for_reconnect_then_sends(
    owner, firm, google_peer, make_client, make_document
):
    installation = install(owner, google_peer, **{"settings-include_reports": "on"})
    company = make_client(firm["partner"], "Revoked BV")
    integration = activate(owner, installation, company)
    google_peer.revoke()  # the firm removed the app's access in its Google account
    document = make_document(company, Document.Category.PURCHASE)
    release(document)

    report = deliver(installation)
    assert report.delivered == 0
    installation.refresh_from_db()
    assert installation.status == Installation.Status.RECONNECT
    assert "Reconnect" in installation.last_error
    assert "invalid_grant" in installation.last_error
    job = ExportJob.objects.get(document=document)
    assert job.status == ExportJob.Status.PENDING and job.attempts == 0  # nothing lost

    start = owner.post(reverse("store:reconnect", args=[installation.pk]))
    response = back_from_provider(owner, at_provider_of(google_peer, start))
    assert response["Location"] == installation.get_absolute_url()
    page = owner.get(response["Location"]).content.decode()
    assert "Configuration saved." in page, page[page.find("<main") : page.find("<main") + 1500]
    installation.refresh_from_db()
    assert installation.status == Installation.Status.OK
    assert installation.name == "Lambert Drive" and installation.settings["include_reports"]
    assert installation.secrets["refresh_token"] in google_peer.refresh_tokens
    assert Integration.objects.current().filter(pk=integration.pk, active=True).exists()

    assert deliver(installation).delivered == 1
    path = f"{client_folder(company)}/AP/{file_name(document)}"
    assert google_peer.tree()[path] == content(document)


def test_a_retry_after_a_lost_answer_leaves_one_file(
    owner, firm, google_peer, make_client, make_document
):
    installation = install(owner, google_peer)
    company = make_client(firm["partner"], "Lost BV")
    activate(owner, installation, company)
    document = make_document(company, Document.Category.PURCHASE)
    release(document)
    google_peer.lose_next_answer = True

    assert deliver(installation).stopped == "transient"
    job = ExportJob.objects.get(document=document)
    assert job.status == ExportJob.Status.FAILED
    ExportJob.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())
    assert deliver(installation).delivered == 1

    uploaded = [f for f in google_peer.files.values() if f.name == file_name(document)]
    assert len(uploaded) == 1 and uploaded[0].content == content(document)
    job.refresh_from_db()
    assert job.status == ExportJob.Status.DELIVERED and job.remote_reference == uploaded[0].id


@pytest.mark.parametrize("large", [False, True], ids=["multipart", "resumable"])
def test_a_re_send_writes_the_same_file_again(
    owner, firm, google_peer, make_client, make_document, settings, large
):
    """A person's Re-send carries a new send key: the file found by the document's key is
    written again in place (files.update), never a second copy, whatever its size."""
    if large:
        settings.GOOGLE_DRIVE_MULTIPART_MAX_BYTES = 1024
        settings.GOOGLE_DRIVE_CHUNK_BYTES = 256 * 1024
    installation = install(owner, google_peer)
    company = make_client(firm["partner"], "Again BV")
    activate(owner, installation, company)
    data = b"<Invoice>" + bytes(range(256)) * (2400 if large else 4) + b"</Invoice>"
    document = make_document(company, Document.Category.PURCHASE, data=data)
    release(document)
    assert deliver(installation).delivered == 1
    (first,) = [f for f in google_peer.files.values() if f.name == file_name(document)]
    google_peer.files[first.id].content = b"changed by someone at the firm"

    job = ExportJob.objects.get(document=document)
    owner.post(reverse("exports:resend", args=[company.pk, document.pk, job.pk]))
    assert deliver(installation).delivered == 1

    copies = [f for f in google_peer.files.values() if f.name == file_name(document)]
    assert [f.id for f in copies] == [first.id]  # the same file, no second copy
    assert copies[0].content == data
    assert google_peer.updates == 1
    job.refresh_from_db()
    assert job.remote_reference == first.id and job.resends == 1


def test_a_large_file_goes_in_resumable_chunks(
    owner, firm, google_peer, make_client, make_document, settings
):
    settings.GOOGLE_DRIVE_MULTIPART_MAX_BYTES = 1024
    settings.GOOGLE_DRIVE_CHUNK_BYTES = 256 * 1024
    installation = install(owner, google_peer)
    company = make_client(firm["partner"], "Large BV")
    activate(owner, installation, company)
    data = b"<Invoice>" + bytes(range(256)) * 2400 + b"</Invoice>"  # about 600 KB
    document = make_document(company, Document.Category.PURCHASE, data=data)
    release(document)
    assert deliver(installation).delivered == 1
    assert google_peer.chunks == 3
    path = f"{client_folder(company)}/AP/{file_name(document)}"
    assert google_peer.tree()[path] == data
    uploads = [r for r in google_peer.requests if r[1] == "/upload/drive/v3/files"]
    assert {r[2].get("uploadType") for r in uploads} == {"resumable"}


@pytest.mark.parametrize(
    ("status", "reason"), [(403, "userRateLimitExceeded"), (429, "rateLimitExceeded")]
)
def test_rate_limits_retry_after_the_servers_delay(
    owner, firm, google_peer, make_client, make_document, status, reason
):
    installation = install(owner, google_peer)
    company = make_client(firm["partner"], "Busy BV")
    activate(owner, installation, company)
    document = make_document(company, Document.Category.PURCHASE)
    release(document)
    google_peer.fail(status, reason, retry_after=3600)

    assert deliver(installation).stopped == "transient"
    job = ExportJob.objects.get(document=document)
    assert job.status == ExportJob.Status.FAILED
    assert job.next_attempt_at >= timezone.now() + timezone.timedelta(minutes=59)
    installation.refresh_from_db()
    assert installation.status != Installation.Status.RECONNECT
    ExportJob.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())
    assert deliver(installation).delivered == 1


@pytest.mark.parametrize(
    ("status", "reason", "retry_after"),
    [(429, "rateLimitExceeded", 1), (403, "userRateLimitExceeded", None)],
)
def test_a_short_rate_limit_is_waited_out_on_the_connection(
    owner, firm, google_peer, make_client, make_document, status, reason, retry_after
):
    installation = install(owner, google_peer)
    company = make_client(firm["partner"], "Steady BV")
    activate(owner, installation, company)
    document = make_document(company, Document.Category.PURCHASE)
    release(document)
    google_peer.fail(status, reason, retry_after=retry_after)

    report = deliver(installation)
    assert report.delivered == 1 and not report.stopped  # waited out on the connection
    job = ExportJob.objects.get(document=document)
    assert job.status == ExportJob.Status.DELIVERED and job.attempts == 1
    path = f"{client_folder(company)}/AP/{file_name(document)}"
    assert google_peer.tree()[path] == content(document)


def test_a_rate_limit_that_never_ends_goes_back_to_the_engine(
    owner, firm, google_peer, make_client, make_document
):
    """ "Retry-After: 0" again and again: a few tries on the connection, then the job is
    retried later like any transient failure, instead of holding the worker."""
    installation = install(owner, google_peer)
    company = make_client(firm["partner"], "Busy BV")
    activate(owner, installation, company)
    release(make_document(company, Document.Category.PURCHASE))
    for _ in range(10):
        google_peer.fail(429, "rateLimitExceeded", retry_after=0)
    report = deliver(installation)
    assert report.stopped == "transient" and report.delivered == 0
    assert len(google_peer.failures) == 10 - api.RATE_LIMIT_TRIES


def test_no_token_appears_in_an_error(owner, firm, google_peer, make_client, make_document):
    installation = install(owner, google_peer)
    company = make_client(firm["partner"], "Quiet BV")
    activate(owner, installation, company)
    google_peer.revoke()
    document = make_document(company, Document.Category.PURCHASE)
    release(document)
    deliver(installation)
    installation.refresh_from_db()
    for value in installation.secrets.values():
        assert str(value) not in installation.last_error


@pytest.mark.django_db(transaction=True)
def test_two_workers_make_one_folder(firm, google_peer):
    """Both find no folder, then create it under the installation's lock, looking again."""
    installation = Installation.objects.create(
        partner=firm["partner"],
        connector="gdrive",
        name="Drive",
        settings={"account": google_peer.account},
        secrets={},
    )
    with requests.Session() as browser:  # tokens as a sign-in leaves them
        code_answer = browser.get(
            google_peer.url + "/o/oauth2/v2/auth",
            params={
                "client_id": google_peer.client_id,
                "redirect_uri": "http://testserver/back/",
                "response_type": "code",
                "scope": GoogleDriveConnector.oauth.scope[0],
                "access_type": "offline",
                "prompt": "consent",
                "state": "s",
            },
            allow_redirects=False,
            timeout=10,
        )
        code = parse_qs(urlsplit(code_answer.headers["Location"]).query)["code"][0]
        tokens = browser.post(
            google_peer.url + "/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": "http://testserver/back/",
                "client_id": google_peer.client_id,
                "client_secret": google_peer.client_secret,
            },
            timeout=10,
        ).json()
    installation.credentials.save(
        {
            "access_token": tokens["access_token"],
            "refresh_token": tokens["refresh_token"],
            "expires_at": time.time() + 3000,
        }
    )
    google_peer.delay = 0.05  # both look before either creates
    made, errors = [], []

    def worker():
        try:
            connector = Installation.objects.get(pk=installation.pk).connector_instance()
            with connector.open() as session:
                made.append(session.folder((ROOT, "Bakkerij_BE0123456749", "AP")))
        except Exception as exc:  # reported below, with the thread's own error
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert len(set(made)) == 1
    assert google_peer.tree() == {
        ROOT: None,
        f"{ROOT}/Bakkerij_BE0123456749": None,
        f"{ROOT}/Bakkerij_BE0123456749/AP": None,
    }
    assert len(google_peer.files) == 3


def test_a_new_refresh_token_from_google_is_kept(
    owner, firm, google_peer, make_client, make_document
):
    installation = install(owner, google_peer)
    company = make_client(firm["partner"], "Rotate BV")
    activate(owner, installation, company)
    google_peer.rotate_refresh_tokens = True
    first_refresh = installation.secrets["refresh_token"]
    for _ in range(2):  # each delivery finds its token expired and renews it
        installation.credentials.save({"expires_at": 0})
        release(make_document(company, Document.Category.PURCHASE))
        assert deliver(installation).delivered == 1
    installation.refresh_from_db()
    assert google_peer.refreshes == 2
    assert installation.secrets["refresh_token"] != first_refresh
    assert google_peer.refresh_tokens == {installation.secrets["refresh_token"]}


def test_saving_on_manage_keeps_the_sign_in(owner, firm, google_peer):
    installation = install(owner, google_peer)
    tokens = dict(installation.secrets)
    response = owner.post(
        reverse("store:manage", args=[installation.pk]),
        {"name": "Lambert Drive", "connections": 2, "settings-include_reports": "on"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    installation.refresh_from_db()
    assert installation.settings["include_reports"] is True
    assert installation.settings["account"] == google_peer.account
    assert installation.secrets == tokens
    test = owner.post(reverse("store:test", args=[installation.pk]), follow=True)
    assert f"Connected to Google Drive as {google_peer.account}" in test.content.decode()


def test_without_a_base_url_the_addresses_are_googles(settings):
    settings.GOOGLE_BASE_URL = ""
    backend = GoogleDriveConnector.oauth.client()
    assert backend.authorization_url() == "https://accounts.google.com/o/oauth2/v2/auth"
    assert backend.access_token_url() == "https://oauth2.googleapis.com/token"
    assert google_url("apis", "/drive/v3/files") == "https://www.googleapis.com/drive/v3/files"
    assert google_url("apis", "/upload/drive/v3/files") == (
        "https://www.googleapis.com/upload/drive/v3/files"
    )


def test_the_token_request_goes_through_the_outbound_guard(owner, google_peer, settings):
    back = at_provider_of(google_peer, start_install(owner))
    settings.EXPORT_ALLOW_PRIVATE_HOSTS = False  # the test server is on loopback
    response = back_from_provider(owner, back)
    assert response["Location"] == reverse("store:extension", args=["gdrive"])
    page = owner.get(response["Location"]).content.decode()
    assert "loopback address; exports to private networks are disabled" in page
    assert google_peer.grants == 0
    assert not Installation.objects.filter(connector="gdrive").exists()


@pytest.mark.django_db(transaction=True)
def test_twenty_deliveries_on_an_expired_token_renew_it_once(
    owner, firm, google_peer, make_client, make_document
):
    """Twenty workers find the access token expired together: one renews it under the
    row's lock, the others use what it saved; nobody is asked to reconnect."""
    installation = install(owner, google_peer)
    company = make_client(firm["partner"], "Twintig Leveringen BV")
    activate(owner, installation, company)
    before = google_peer.refreshes

    assert send_together(installation, company, make_document) == []
    assert google_peer.refreshes == before + 1
    installation.refresh_from_db()
    assert installation.status == Installation.Status.OK
    folder = f"{client_folder(company)}/AP/"
    files = [path for path in google_peer.tree() if path.startswith(folder)]
    assert len(files) == 20
