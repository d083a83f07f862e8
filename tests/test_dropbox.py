"""Dropbox: the sign-in through the views and the exports, against a strict local Dropbox.

Every step is real HTTP: the views are called with Django's test client, the redirect to
Dropbox's sign-in page is followed by hand with ``requests`` against
``tests/peers/dropbox``, and its redirect back is handed to the callback view, as a
browser would.
"""

import json
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.core import checks
from django.urls import reverse
from django.utils import timezone, translation

from clients.models import Document
from clients.release import release
from exports import engine
from exports.models import ExportJob
from extensions import registry
from extensions.connectors.base import DestinationRefused
from extensions.connectors.dropbox import (
    DropboxConnector,
    content_hash,
    dropbox_url,
    header_arg,
)
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

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _english():
    with translation.override("en"):
        yield


@pytest.fixture
def owner(client, firm):
    client.force_login(firm["owner"])
    return client


def start_install(client, accept_terms=True, **settings):
    """Store → Install → Confirm and configure → the sign-in button: the redirect."""
    page = client.get(reverse("store:install", args=["dropbox"]))
    assert page.status_code == 200 and "Confirm and configure" in page.content.decode()
    form = client.post(reverse("store:configure", args=["dropbox"]), {"confirmed": "1"})
    body = form.content.decode()
    assert "Sign in with Dropbox" in body
    assert "I accept the terms of this extension" in body
    assert f'href="{DropboxConnector.terms_url}"' in body  # the terms can be read first
    assert "Files are sent as" in body  # the one format, stated as a fact
    policy = form["Content-Security-Policy"]  # the form may lead to Dropbox's sign-in page
    assert "form-action 'self' " + django_settings.DROPBOX_BASE_URL in policy
    data = {"name": "Lambert Dropbox", "connections": 2, **settings}
    if accept_terms:
        data["accept_terms"] = "on"
    return client.post(reverse("store:configure", args=["dropbox"]), data)


def at_provider_of(peer, start):
    return at_provider(start, peer.url + "/oauth2/authorize")


def install(client, peer, **settings) -> Installation:
    response = back_from_provider(client, at_provider_of(peer, start_install(client, **settings)))
    assert response.status_code == 302, response.content.decode()[:2000]
    assert response["Location"] == reverse("clients:list")
    return Installation.objects.get(connector="dropbox")


def ready(owner, firm, peer, make_client, name, **settings):
    """Installed, one client activated: (installation, client)."""
    installation = install(owner, peer, **settings)
    company = make_client(firm["partner"], name)
    activate(owner, installation, company)
    return installation, company


# --- the registry and the pure parts ---------------------------------------------------


def test_registered_without_typed_secrets():
    assert registry.get("dropbox") is DropboxConnector
    assert DropboxConnector.secret_fields(DropboxConnector.settings_form) == ()
    assert "files.content.write" in DropboxConnector.oauth.scope
    assert DropboxConnector.terms_url


def test_the_header_argument_is_ascii_json():
    arg = header_arg({"path": "/Invoice_import/Boulangerie Hélène SRL/AP/a.xml"})
    assert arg.isascii() and "H\\u00e9l\\u00e8ne" in arg
    assert json.loads(arg)["path"] == "/Invoice_import/Boulangerie Hélène SRL/AP/a.xml"
    assert header_arg({"path": "/a\x7fb"}) == '{"path":"/a\\u007fb"}'


def test_the_content_hash_is_dropboxs():
    # Dropbox's own example: the SHA-256 of the concatenated SHA-256 of each 4 MiB block.
    import hashlib

    data = b"x" * (4 * 1024 * 1024 + 10)
    blocks = hashlib.sha256(data[: 4 * 1024 * 1024]).digest()
    blocks += hashlib.sha256(data[4 * 1024 * 1024 :]).digest()
    assert content_hash(data) == hashlib.sha256(blocks).hexdigest()
    assert content_hash(b"") == hashlib.sha256(b"").hexdigest()


def test_without_a_base_url_the_addresses_are_dropboxs(settings):
    settings.DROPBOX_BASE_URL = ""
    backend = DropboxConnector.oauth.client()
    assert backend.authorization_url() == "https://www.dropbox.com/oauth2/authorize"
    assert backend.access_token_url() == "https://api.dropboxapi.com/oauth2/token"
    assert dropbox_url("content", "/2/files/upload") == (
        "https://content.dropboxapi.com/2/files/upload"
    )
    assert dropbox_url("api", "/2/files/get_metadata") == (
        "https://api.dropboxapi.com/2/files/get_metadata"
    )


# --- the sign-in ---------------------------------------------------------------------


def test_sign_in_installs_and_shows_the_account(owner, firm, dropbox_peer):
    users = get_user_model().objects.count()
    start = start_install(owner)
    sent = parse_qs(urlsplit(start["Location"]).query)
    assert sent["token_access_type"] == ["offline"]
    assert sent["client_id"] == [dropbox_peer.app_key]
    assert "files.content.write" in sent["scope"][0].split()

    response = back_from_provider(owner, at_provider_of(dropbox_peer, start))
    assert response.status_code == 302 and response["Location"] == reverse("clients:list")
    page = owner.get(response["Location"]).content.decode()
    assert "Installation succeeded." in page

    installation = Installation.objects.get(connector="dropbox")
    assert installation.name == "Lambert Dropbox" and installation.connections == 2
    assert installation.settings["account"] == dropbox_peer.account
    assert set(installation.secrets) == {"access_token", "refresh_token", "expires_at"}
    assert installation.secrets["refresh_token"] in dropbox_peer.refresh_tokens
    manage = owner.get(reverse("store:manage", args=[installation.pk])).content.decode()
    assert "Connected as" in manage and dropbox_peer.account in manage
    assert "Reconnect" in manage
    # users/get_current_account was asked with no body at all, as Dropbox wants.
    asked = [r for r in dropbox_peer.requests if r[1] == "/2/users/get_current_account"]
    assert asked and all(r[3] == b"" for r in asked)
    assert get_user_model().objects.count() == users  # nobody was created
    assert SESSION_KEY not in owner.session


def test_the_terms_must_be_accepted_before_signing_in(owner, dropbox_peer):
    response = start_install(owner, accept_terms=False)
    assert response.status_code == 200
    assert "This field is required" in response.content.decode()
    assert SESSION_KEY not in owner.session
    assert not dropbox_peer.requests


def test_cancelled_sign_in_changes_nothing(owner, dropbox_peer):
    dropbox_peer.consent = False
    response = back_from_provider(owner, at_provider_of(dropbox_peer, start_install(owner)))
    assert response["Location"] == reverse("store:extension", args=["dropbox"])
    assert "Sign-in was cancelled" in owner.get(response["Location"]).content.decode()
    assert not Installation.objects.filter(connector="dropbox").exists()
    assert dropbox_peer.grants == 0


def test_a_state_that_does_not_match_is_refused(owner, dropbox_peer):
    back = at_provider_of(dropbox_peer, start_install(owner))
    answer = parse_qs(back.query)
    forged = {**answer, "state": ["forged-" + answer["state"][0]]}
    assert owner.get(back.path, forged).status_code == 403
    assert not Installation.objects.filter(connector="dropbox").exists()
    assert dropbox_peer.grants == 0


def test_without_app_credentials_the_store_says_it_is_not_available(owner, settings):
    settings.DROPBOX_APP_KEY = ""
    settings.DROPBOX_APP_SECRET = ""
    message = "The operator has not configured Dropbox sign-in."
    assert "Not available" in owner.get(reverse("store:index")).content.decode()
    page = owner.get(reverse("store:install", args=["dropbox"])).content.decode()
    assert message in page and "Confirm and configure" not in page
    warnings = [w for w in checks.run_checks() if w.id == "extensions.W001"]
    assert f"dropbox: {message}" in [w.msg for w in warnings]
    (ours,) = [w for w in warnings if w.msg.startswith("dropbox:")]
    assert "DROPBOX_APP_KEY" in ours.hint


def test_with_app_credentials_no_warning(dropbox_peer):
    warnings = [w for w in checks.run_checks() if w.id == "extensions.W001"]
    assert not [w for w in warnings if w.msg.startswith("dropbox:")]


# --- exports -------------------------------------------------------------------------


def test_released_documents_land_in_the_clients_folders(
    owner, firm, dropbox_peer, make_client, make_document
):
    installation, company = ready(owner, firm, dropbox_peer, make_client, "Boulangerie Hélène SRL")
    purchase = make_document(company, Document.Category.PURCHASE, number="AP/2025/1")
    sale = make_document(company, Document.Category.SALES)
    report = make_document(company, Document.Category.REPORT)
    for document in (purchase, sale, report):
        release(document)

    assert deliver(installation).delivered == 2  # transaction reports are off by default
    folder = client_folder(company)
    assert dropbox_peer.tree() == {
        f"{folder}/AP/{file_name(purchase)}": content(purchase),
        f"{folder}/AR/{file_name(sale)}": content(sale),
    }
    assert not ExportJob.objects.filter(document=report).exists()
    # The name travelled escaped in the header, and arrived whole.
    assert all(arg.isascii() for arg in dropbox_peer.args)
    assert any("H\\u00e9l\\u00e8ne" in arg for arg in dropbox_peer.args)
    job = ExportJob.objects.get(document=purchase)
    path = f"/{folder}/AP/{file_name(purchase)}"
    assert job.remote_reference == dropbox_peer.files[path.lower()].id


def test_transaction_reports_when_the_installation_enables_them(
    owner, firm, dropbox_peer, make_client, make_document
):
    installation, company = ready(
        owner,
        firm,
        dropbox_peer,
        make_client,
        "Garage Peeters",
        **{"settings-include_reports": "on"},
    )
    report = make_document(company, Document.Category.REPORT)
    release(report)
    assert deliver(installation).delivered == 1
    path = f"{client_folder(company)}/CODA/{file_name(report)}"
    assert dropbox_peer.tree() == {path: content(report)}


def test_an_expired_access_token_is_renewed_once(
    owner, firm, dropbox_peer, make_client, make_document
):
    installation, company = ready(owner, firm, dropbox_peer, make_client, "Renew BV")
    # Expired as far as we know: renewed before the first call.
    Installation.objects.get(pk=installation.pk).credentials.save({"expires_at": 0})
    release(make_document(company, Document.Category.PURCHASE))
    assert deliver(installation).delivered == 1
    assert dropbox_peer.refreshes == 1
    # Expired at Dropbox before we expected it: 401 expired_access_token, renewed once.
    dropbox_peer.expire_access_tokens()
    release(make_document(company, Document.Category.PURCHASE))
    assert deliver(installation).delivered == 1
    assert dropbox_peer.refreshes == 2
    installation.refresh_from_db()
    assert installation.secrets["access_token"] in dropbox_peer.access_tokens
    assert installation.secrets["refresh_token"] in dropbox_peer.refresh_tokens  # kept
    assert installation.status == Installation.Status.OK


def test_a_token_refused_after_renewal_needs_reconnect(
    owner, firm, dropbox_peer, make_client, make_document
):
    installation, company = ready(owner, firm, dropbox_peer, make_client, "Refused Token BV")
    release(make_document(company, Document.Category.PURCHASE))
    dropbox_peer.refuse_access_tokens = True
    assert deliver(installation).delivered == 0
    assert dropbox_peer.refreshes == 1  # renewed once, not in a loop
    installation.refresh_from_db()
    assert installation.status == Installation.Status.RECONNECT
    assert "Dropbox refused the access token" in installation.last_error
    assert "invalid_access_token" in installation.last_error


def test_a_revoked_grant_waits_for_reconnect_then_sends(
    owner, firm, dropbox_peer, make_client, make_document
):
    installation, company = ready(owner, firm, dropbox_peer, make_client, "Revoked BV")
    dropbox_peer.revoke()  # the firm disconnected the app in its Dropbox settings
    document = make_document(company, Document.Category.PURCHASE)
    release(document)

    assert deliver(installation).delivered == 0
    installation.refresh_from_db()
    assert installation.status == Installation.Status.RECONNECT
    assert "Reconnect" in installation.last_error and "invalid_grant" in installation.last_error
    for value in installation.secrets.values():
        assert str(value) not in installation.last_error
    job = ExportJob.objects.get(document=document)
    assert job.status == ExportJob.Status.PENDING and job.attempts == 0  # nothing lost

    start = owner.post(reverse("store:reconnect", args=[installation.pk]))
    response = back_from_provider(owner, at_provider_of(dropbox_peer, start))
    assert response["Location"] == installation.get_absolute_url()
    assert "Configuration saved." in owner.get(response["Location"]).content.decode()
    installation.refresh_from_db()
    assert installation.status == Installation.Status.OK
    assert installation.secrets["refresh_token"] in dropbox_peer.refresh_tokens

    assert deliver(installation).delivered == 1
    path = f"{client_folder(company)}/AP/{file_name(document)}"
    assert dropbox_peer.tree() == {path: content(document)}


@pytest.mark.parametrize("hashless", [False, True], ids=["content-hash", "size-and-date"])
def test_a_retry_after_a_lost_answer_leaves_one_file(
    owner, firm, dropbox_peer, make_client, make_document, hashless
):
    dropbox_peer.hashless = hashless
    installation, company = ready(owner, firm, dropbox_peer, make_client, "Lost BV")
    document = make_document(company, Document.Category.PURCHASE)
    release(document)
    dropbox_peer.lose_next_answer = True

    assert deliver(installation).stopped == "transient"
    job = ExportJob.objects.get(document=document)
    assert job.status == ExportJob.Status.FAILED
    ExportJob.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())
    assert deliver(installation).delivered == 1

    path = f"{client_folder(company)}/AP/{file_name(document)}"
    assert dropbox_peer.tree() == {path: content(document)}
    metadata = [r for r in dropbox_peer.requests if r[1] == "/2/files/get_metadata"]
    assert len(metadata) == 1  # the retry met the conflict and found the file is ours
    job.refresh_from_db()
    assert job.status == ExportJob.Status.DELIVERED
    assert job.remote_reference == dropbox_peer.files[f"/{path}".lower()].id


def test_someone_elses_file_at_the_path_is_not_replaced(
    owner, firm, dropbox_peer, make_client, make_document
):
    installation, company = ready(owner, firm, dropbox_peer, make_client, "Taken BV")
    document = make_document(company, Document.Category.PURCHASE)
    release(document)
    path = f"/{client_folder(company)}/AP/{file_name(document)}"
    dropbox_peer.put(path, b"a file someone put there")

    assert deliver(installation).delivered == 0
    job = ExportJob.objects.get(document=document)
    assert job.status == ExportJob.Status.DEAD
    assert "Another file already has the name" in job.last_error
    assert dropbox_peer.tree() == {path[1:]: b"a file someone put there"}


@pytest.mark.parametrize("large", [False, True], ids=["upload", "session"])
def test_a_re_send_overwrites_in_place(
    owner, firm, dropbox_peer, make_client, make_document, settings, large
):
    if large:
        settings.DROPBOX_UPLOAD_MAX_BYTES = 1024
        settings.DROPBOX_CHUNK_BYTES = 64 * 1024
    installation, company = ready(owner, firm, dropbox_peer, make_client, "Again BV")
    data = b"<Invoice>" + bytes(range(256)) * (600 if large else 4) + b"</Invoice>"
    document = make_document(company, Document.Category.PURCHASE, data=data)
    release(document)
    assert deliver(installation).delivered == 1
    path = f"/{client_folder(company)}/AP/{file_name(document)}".lower()
    first = dropbox_peer.files[path]
    first.content = b"changed by someone at the firm"

    job = ExportJob.objects.get(document=document)
    owner.post(reverse("exports:resend", args=[company.pk, document.pk, job.pk]))
    assert deliver(installation).delivered == 1

    assert list(dropbox_peer.files) == [path]  # the same file, no second copy
    assert dropbox_peer.files[path].id == first.id and dropbox_peer.files[path].content == data
    assert dropbox_peer.overwrites == 1
    assert '"mode":"overwrite"' in dropbox_peer.args[-1]
    job.refresh_from_db()
    assert job.remote_reference == first.id and job.resends == 1


def test_a_large_file_goes_in_an_upload_session(
    owner, firm, dropbox_peer, make_client, make_document, settings
):
    settings.DROPBOX_UPLOAD_MAX_BYTES = 1024
    settings.DROPBOX_CHUNK_BYTES = 64 * 1024
    installation, company = ready(owner, firm, dropbox_peer, make_client, "Large BV")
    data = b"<Invoice>" + bytes(range(256)) * 600 + b"</Invoice>"  # about 150 KB
    document = make_document(company, Document.Category.PURCHASE, data=data)
    release(document)
    assert deliver(installation).delivered == 1
    paths = [r[1] for r in dropbox_peer.requests if r[1].startswith("/2/files/upload")]
    assert paths == [
        "/2/files/upload_session/start",
        "/2/files/upload_session/append_v2",
        "/2/files/upload_session/finish",
    ]
    path = f"{client_folder(company)}/AP/{file_name(document)}"
    assert dropbox_peer.tree() == {path: data}


def test_a_lost_answer_to_a_session_leaves_one_file(
    owner, firm, dropbox_peer, make_client, make_document, settings
):
    settings.DROPBOX_UPLOAD_MAX_BYTES = 1024
    settings.DROPBOX_CHUNK_BYTES = 64 * 1024
    installation, company = ready(owner, firm, dropbox_peer, make_client, "Lost Large BV")
    data = b"<Invoice>" + bytes(range(256)) * 600 + b"</Invoice>"
    document = make_document(company, Document.Category.PURCHASE, data=data)
    release(document)
    dropbox_peer.lose_next_answer = True
    assert deliver(installation).stopped == "transient"
    ExportJob.objects.filter(document=document).update(next_attempt_at=timezone.now())
    assert deliver(installation).delivered == 1
    path = f"{client_folder(company)}/AP/{file_name(document)}"
    assert dropbox_peer.tree() == {path: data}


@pytest.mark.parametrize(
    ("summary", "expected", "words"),
    [
        ("path/insufficient_space/..", DestinationRefused, "Dropbox is full"),
        ("path/no_write_permission/...", DestinationRefused, "does not allow this account"),
    ],
)
def test_409_answers_are_classified(
    owner, firm, dropbox_peer, make_client, make_document, summary, expected, words
):
    installation, company = ready(owner, firm, dropbox_peer, make_client, "Refused BV")
    export_document = make_document(company, Document.Category.PURCHASE)
    release(export_document)
    job = ExportJob.objects.get(document=export_document)
    connector = Installation.objects.get(pk=installation.pk).connector_instance()
    export_file = engine.build_file(job, connector)
    dropbox_peer.fail(409, summary)
    with pytest.raises(expected) as caught, connector.open() as session:
        session.send(export_file)
    assert words in str(caught.value)
    assert not dropbox_peer.files


def test_a_dropbox_busy_with_other_writes_is_waited_out_on_the_connection(
    owner, firm, dropbox_peer, make_client, make_document
):
    """A 409 ``too_many_write_operations`` on the upload is a rate limit: the file goes
    again after the delay, on the same connection, in one attempt."""
    installation, company = ready(owner, firm, dropbox_peer, make_client, "Druk BV")
    document = make_document(company, Document.Category.PURCHASE)
    release(document)
    dropbox_peer.fail(409, "path/too_many_write_operations/.", retry_after=1)
    assert deliver(installation).delivered == 1
    assert ExportJob.objects.get(document=document).attempts == 1
    path = f"{client_folder(company)}/AP/{file_name(document)}"
    assert dropbox_peer.tree() == {path: content(document)}


def test_a_full_dropbox_needs_attention_and_keeps_the_documents(
    owner, firm, dropbox_peer, make_client, make_document
):
    installation, company = ready(owner, firm, dropbox_peer, make_client, "Full BV")
    document = make_document(company, Document.Category.PURCHASE)
    release(document)
    dropbox_peer.full = True
    assert deliver(installation).delivered == 0
    installation.refresh_from_db()
    assert installation.status == Installation.Status.ATTENTION
    assert "Dropbox is full" in installation.last_error
    job = ExportJob.objects.get(document=document)
    assert job.status == ExportJob.Status.PENDING and job.attempts == 0


def test_a_rate_limit_retries_after_the_servers_delay(
    owner, firm, dropbox_peer, make_client, make_document
):
    installation, company = ready(owner, firm, dropbox_peer, make_client, "Busy BV")
    document = make_document(company, Document.Category.PURCHASE)
    release(document)
    dropbox_peer.fail(429, "too_many_requests", retry_after=3600)

    assert deliver(installation).stopped == "transient"
    job = ExportJob.objects.get(document=document)
    assert job.status == ExportJob.Status.FAILED
    assert job.next_attempt_at >= timezone.now() + timezone.timedelta(minutes=59)
    installation.refresh_from_db()
    assert installation.status != Installation.Status.RECONNECT
    ExportJob.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())
    assert deliver(installation).delivered == 1


def test_a_short_rate_limit_is_waited_out_on_the_connection(
    owner, firm, dropbox_peer, make_client, make_document
):
    installation, company = ready(owner, firm, dropbox_peer, make_client, "Steady BV")
    document = make_document(company, Document.Category.PURCHASE)
    release(document)
    dropbox_peer.fail(429, "too_many_requests", retry_after=0)

    report = deliver(installation)
    assert report.delivered == 1 and not report.stopped  # the same drain, no engine retry
    assert ExportJob.objects.get(document=document).attempts == 1


def test_a_server_error_is_transient(owner, firm, dropbox_peer, make_client, make_document):
    installation, company = ready(owner, firm, dropbox_peer, make_client, "Down BV")
    release(make_document(company, Document.Category.PURCHASE))
    dropbox_peer.fail(503)
    assert deliver(installation).stopped == "transient"


def test_saving_on_manage_keeps_the_sign_in(owner, firm, dropbox_peer):
    installation = install(owner, dropbox_peer)
    tokens = dict(installation.secrets)
    response = owner.post(
        reverse("store:manage", args=[installation.pk]),
        {"name": "Lambert Dropbox", "connections": 2, "settings-include_reports": "on"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    installation.refresh_from_db()
    assert installation.settings["include_reports"] is True
    assert installation.secrets == tokens
    test = owner.post(reverse("store:test", args=[installation.pk]), follow=True)
    assert f"Connected to Dropbox as {dropbox_peer.account}" in test.content.decode()


@pytest.mark.django_db(transaction=True)
def test_twenty_deliveries_on_an_expired_token_renew_it_once(
    owner, firm, dropbox_peer, make_client, make_document
):
    """Twenty workers find the access token expired together: one renews it under the
    row's lock, the others use what it saved; nobody is asked to reconnect."""
    installation = install(owner, dropbox_peer)
    company = make_client(firm["partner"], "Twintig Leveringen BV")
    activate(owner, installation, company)
    before = dropbox_peer.refreshes

    assert send_together(installation, company, make_document) == []
    assert dropbox_peer.refreshes == before + 1
    installation.refresh_from_db()
    assert installation.status == Installation.Status.OK
    folder = f"{client_folder(company)}/AP/"
    files = [path for path in dropbox_peer.tree() if path.startswith(folder)]
    assert len(files) == 20
