"""The documented flows end to end: install in the Store, add an integration on a client,
release documents, and see them land on a real SFTP server exactly once."""

import io
import json
import stat

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from clients.models import Client, Document
from clients.release import release
from exports import engine
from exports.models import ExportAttempt, ExportJob
from extensions.models import Installation, Integration
from extensions.paths import file_name

pytestmark = pytest.mark.django_db


def settings_post(peer, **overrides):
    data = {
        "name": "Lambert server",
        "connections": 4,
        "settings-host": peer.host,
        "settings-port": peer.port,
        "settings-username": peer.username,
        "settings-password": peer.password,
        "settings-private_key": "",
        "settings-passphrase": "",
        "settings-upload_path": "Invoice_import/[external_id]/[invoice_type]/",
        "settings-report_path": "",
    }
    data.update(overrides)
    return data


def install_sftp(client, peer, **overrides):
    """Store → Install → confirm → configure → accept the key → saved."""
    assert client.get(reverse("store:install", args=["sftp"])).status_code == 200
    form = client.post(reverse("store:configure", args=["sftp"]), {"confirmed": "1"})
    assert form.status_code == 200 and "settings-host" in form.content.decode()
    response = client.post(
        reverse("store:configure", args=["sftp"]), settings_post(peer, **overrides)
    )
    return response


@pytest.fixture
def signed_in(client, firm):
    client.force_login(firm["owner"])
    return client


def accept_key(client, response, connector="sftp"):
    body = response.content.decode()
    pin = body.split('name="confirmation" value="', 1)[1].split('"', 1)[0]
    action = reverse("store:configure", args=[connector])
    return client.post(action, {"confirmation": pin, "confirm": "1"})


def test_install_with_key_confirmation(signed_in, firm, sftp_server):
    response = install_sftp(signed_in, sftp_server)
    body = response.content.decode()
    assert sftp_server.fingerprint in body  # the person sees the key before trusting it
    assert Installation.objects.filter(name="Lambert server").count() == 0

    saved = accept_key(signed_in, response)
    assert saved.status_code == 302 and saved["Location"] == reverse("clients:list")
    installation = Installation.objects.get(name="Lambert server")
    assert installation.partner == firm["partner"]
    assert installation.settings["known_host_key"]["fingerprint"] == sftp_server.fingerprint
    assert installation.secrets == {"password": sftp_server.password}
    assert "password" not in installation.settings
    page = signed_in.get(reverse("clients:list")).content.decode()
    assert "Installation succeeded" in page


def test_wrong_password_is_a_form_error_naming_user_and_host(signed_in, sftp_server):
    response = install_sftp(signed_in, sftp_server)
    accept_key(signed_in, response)
    Installation.objects.all().delete()
    response = install_sftp(signed_in, sftp_server, **{"settings-password": "wrong"})
    # The key is not pinned for this new installation, so it is shown again first.
    response = accept_key(signed_in, response)
    body = response.content.decode()
    assert response.status_code == 400
    assert f"authentication failed for user {sftp_server.username}" in body
    assert f"{sftp_server.host}:{sftp_server.port}" in body
    assert "wrong" not in body.replace("wrong password", "")  # the typed secret is not echoed
    assert not Installation.objects.filter(name="Lambert server").exists()


def test_nothing_listening_is_a_form_error(signed_in, sftp_server):
    port = sftp_server.port
    sftp_server.server.stop()
    response = install_sftp(signed_in, sftp_server)
    assert response.status_code == 400
    assert "connection refused" in response.content.decode().lower()
    assert str(port) in response.content.decode()


def test_changed_host_key_stops_exports_until_accepted(
    signed_in, firm, sftp_server, tmp_path, make_document
):
    accept_key(signed_in, install_sftp(signed_in, sftp_server))
    installation = Installation.objects.get(name="Lambert server")
    client_company = firm["clients"][0]
    Integration.objects.create(
        client=client_company, installation=installation, categories=["purchase"]
    )
    sftp_server.server.stop()
    sftp_server.server.host_key_path = tmp_path / "another-key"
    sftp_server.server.start()

    document = make_document(client_company, Document.Category.PURCHASE)
    release(document)
    report = engine.deliver(engine.Destination(installation.pk))
    installation.refresh_from_db()
    assert report.stopped == "reconnect"
    assert installation.status == "reconnect"
    assert "key" in installation.last_error.lower()
    job = ExportJob.objects.get(document=document, installation=installation)
    assert (job.status, job.attempts) == ("pending", 0)  # waits, nothing lost

    manage = signed_in.post(reverse("store:test", args=[installation.pk]))
    assert sftp_server.server.fingerprint in manage.content.decode()
    pin = manage.content.decode().split('name="confirmation" value="', 1)[1].split('"', 1)[0]
    saved = signed_in.post(
        reverse("store:manage", args=[installation.pk]), {"confirmation": pin, "confirm": "1"}
    )
    assert saved.status_code == 302
    installation.refresh_from_db()
    assert installation.status == "ok"
    assert installation.settings["known_host_key"]["fingerprint"] == sftp_server.server.fingerprint
    engine.deliver(engine.Destination(installation.pk))
    job.refresh_from_db()
    assert job.status == "delivered"


def add_integration(client, client_company, installation, categories=("purchase", "sales")):
    url = reverse("integrations:configure", args=[client_company.pk, installation.pk])
    form = client.get(url)
    assert form.status_code == 200
    return client.post(url, {"categories": list(categories), "client-path": ""})


def landed(peer):
    return sorted(p for p in peer.root.rglob("*") if p.is_file())


def test_released_documents_land_once_with_mode_664(
    signed_in, firm, sftp_server, make_document, django_capture_on_commit_callbacks
):
    accept_key(signed_in, install_sftp(signed_in, sftp_server))
    installation = Installation.objects.get(name="Lambert server")
    client_company = firm["clients"][0]
    before = make_document(client_company, Document.Category.PURCHASE)
    release(before, at=timezone.now() - timezone.timedelta(minutes=1))

    response = add_integration(signed_in, client_company, installation)
    assert response.status_code == 302
    integration = Integration.objects.get(client=client_company, installation=installation)

    documents = [make_document(client_company, Document.Category.PURCHASE) for _ in range(5)]
    documents.append(make_document(client_company, Document.Category.SALES))
    report_doc = make_document(client_company, Document.Category.REPORT)
    with django_capture_on_commit_callbacks(execute=False):
        for document in [*documents, report_doc]:
            release(document)
    connections = sftp_server.server.connections
    report = engine.deliver(engine.Destination(installation.pk))
    assert report.delivered == 6
    assert sftp_server.server.connections == connections + 1  # one SSH connection per batch

    files = landed(sftp_server)
    assert len(files) == 6  # not the document released before activation, not the report
    folder = sftp_server.root / "Invoice_import" / client_company.external_id
    for document in documents:
        job = ExportJob.objects.get(document=document, integration=integration)
        assert job.status == "delivered" and job.attempts == 1
        kind = "purchases" if document.category == "purchase" else "sales"
        path = folder / kind / job.remote_reference.rsplit("/", 1)[1]
        assert path.read_bytes() == document.file.open("rb").read()
        assert stat.S_IMODE(path.stat().st_mode) == 0o664
    assert not [p for p in files if p.name.endswith(".part")]

    tab = signed_in.get(reverse("integrations:list", args=[client_company.pk]))
    (row,) = [i for i in tab.context["integrations"] if i.installation_id == installation.pk]
    assert (row.delivered, row.waiting, row.failed) == (6, 0, 0)
    assert row.last_success_at is not None

    # Re-send from the Documents tab: the same file is replaced, not duplicated.
    job = ExportJob.objects.get(document=documents[0], integration=integration)
    first_place = job.remote_reference
    url = reverse("exports:resend", args=[client_company.pk, documents[0].pk, job.pk])
    assert signed_in.post(url).status_code == 302
    engine.deliver(engine.Destination(installation.pk))
    job.refresh_from_db()
    assert (job.status, job.attempts, job.resends) == ("delivered", 1, 1)
    assert job.remote_reference == first_place  # written over in place
    assert len(landed(sftp_server)) == 6
    assert ExportAttempt.objects.filter(job=job).count() == 2


def test_server_down_retries_then_delivers_exactly_once(firm, sftp_server, make_document):
    installation = Installation.objects.create(
        partner=firm["partner"],
        connector="sftp",
        name="Down and up",
        settings={
            "host": sftp_server.host,
            "port": sftp_server.port,
            "username": sftp_server.username,
            "upload_path": "in/",
            **sftp_server.pin(),
        },
        secrets={"password": sftp_server.password},
    )
    client_company = firm["clients"][1]
    Integration.objects.create(
        client=client_company, installation=installation, categories=["purchase", "report"]
    )
    documents = [make_document(client_company, Document.Category.PURCHASE) for _ in range(3)]
    for document in documents:
        release(document)
    sftp_server.server.stop()

    report = engine.deliver(engine.Destination(installation.pk))
    assert report.stopped == "transient"
    jobs = ExportJob.objects.filter(installation=installation)
    assert sorted(jobs.values_list("status", flat=True)) == ["failed", "pending", "pending"]
    first_retry = jobs.order_by("next_attempt_at").last().next_attempt_at
    assert first_retry > timezone.now() + timezone.timedelta(seconds=40)
    installation.refresh_from_db()
    assert installation.status == "failing"
    assert engine.deliver(engine.Destination(installation.pk)).batches == 0  # not due yet

    sftp_server.server.start()
    jobs.update(next_attempt_at=timezone.now())  # the backoff has passed
    report = engine.deliver(engine.Destination(installation.pk))
    assert report.delivered == 3
    files = landed(sftp_server)
    assert len(files) == 3
    assert {f.read_bytes() for f in files} == {d.file.open("rb").read() for d in documents}
    installation.refresh_from_db()
    assert installation.status == "ok"


def test_active_toggle_waits_then_sends(signed_in, firm, sftp_server, make_document):
    accept_key(signed_in, install_sftp(signed_in, sftp_server))
    installation = Installation.objects.get(name="Lambert server")
    client_company = firm["clients"][0]
    add_integration(signed_in, client_company, installation)

    confirm = signed_in.get(reverse("store:active", args=[installation.pk]))
    assert "1 client" in confirm.content.decode()
    signed_in.post(reverse("store:active", args=[installation.pk]))
    installation.refresh_from_db()
    assert installation.active is False

    document = make_document(client_company, Document.Category.SALES)
    release(document)
    assert engine.deliver(engine.Destination(installation.pk)).stopped == "inactive"
    assert ExportJob.objects.get(document=document, installation=installation).status == "pending"
    assert landed(sftp_server) == []

    signed_in.post(reverse("store:active", args=[installation.pk]))
    installation.refresh_from_db()
    assert installation.active is True
    engine.deliver(engine.Destination(installation.pk))
    assert (
        ExportJob.objects.get(document=document, installation=installation).status == "delivered"
    )
    assert len(landed(sftp_server)) == 1


def test_exports_retry_revives_dead_jobs_and_they_deliver(firm, sftp_server, capsys):
    installation = firm["installation"]
    installation.settings = {
        "host": sftp_server.host,
        "port": sftp_server.port,
        "username": sftp_server.username,
        "upload_path": "",
        **sftp_server.pin(),
    }
    installation.set_secrets({"password": sftp_server.password})
    installation.save()
    job = firm["job"]
    assert job.status == "dead"

    call_command("exports_retry", "--status", "dead", "--dry-run")
    assert "1 dead jobs would be sent again." in capsys.readouterr().out
    call_command("exports_retry", "--status", "dead")
    assert "1 jobs will be sent again" in capsys.readouterr().out
    engine.deliver(engine.Destination(installation.pk))
    job.refresh_from_db()
    assert job.status == "delivered"
    assert len(landed(sftp_server)) == 1

    call_command("exports_status", "--json")
    (row,) = json.loads(capsys.readouterr().out)
    assert (row["installation"], row["delivered"], row["dead"]) == (installation.pk, 1, 0)


def test_secrets_never_reach_pages_admin_or_dumps(signed_in, firm, django_user_model):
    secret = firm["installation"].secrets["password"]
    installation = firm["installation"]
    for url in [
        reverse("store:manage", args=[installation.pk]),
        reverse("integrations:list", args=[firm["clients"][0].pk]),
    ]:
        assert secret not in signed_in.get(url).content.decode()
    admin = django_user_model.objects.create_superuser("root", "r@example.com", "root-pw")
    signed_in.force_login(admin)
    for url in [
        f"/admin/extensions/installation/{installation.pk}/change/",
        "/admin/extensions/installation/",
    ]:
        page = signed_in.get(url)
        assert page.status_code == 200
        assert secret not in page.content.decode()
    out = io.StringIO()
    call_command("dumpdata", "extensions", stdout=out)
    assert secret not in out.getvalue()
    assert '"secrets": "gAAAA' in out.getvalue()  # a Fernet token


def test_blank_secret_on_edit_keeps_the_stored_one(signed_in, sftp_server):
    accept_key(signed_in, install_sftp(signed_in, sftp_server))
    installation = Installation.objects.get(name="Lambert server")
    response = signed_in.post(
        reverse("store:manage", args=[installation.pk]),
        settings_post(sftp_server, **{"name": "Renamed", "settings-password": ""}),
    )
    assert response.status_code == 302
    installation.refresh_from_db()
    assert installation.name == "Renamed"
    assert installation.secrets["password"] == sftp_server.password


def test_uninstall_keeps_history(signed_in, firm):
    installation = firm["installation"]
    assert (
        "1 client"
        in signed_in.get(reverse("store:uninstall", args=[installation.pk])).content.decode()
    )
    signed_in.post(reverse("store:uninstall", args=[installation.pk]))
    installation.refresh_from_db()
    assert installation.removed_at is not None and installation.active is False
    assert ExportJob.objects.filter(installation=installation).count() == 1
    assert signed_in.get(reverse("store:manage", args=[installation.pk])).status_code == 404


def test_store_search_and_installed_badge(signed_in, firm):
    page = signed_in.get(reverse("store:index"))
    names = [card["connector"].key for card in page.context["cards"]]
    assert {"sftp", "email", "http"} <= set(names)
    assert any(
        card["installed"] for card in page.context["cards"] if card["connector"].key == "sftp"
    )
    found = signed_in.get(reverse("store:index"), {"q": "webhook"}).context["cards"]
    assert [card["connector"].key for card in found] == ["http"]
    by_category = signed_in.get(reverse("store:index"), {"q": "email"}).context["cards"]
    assert "email" in [card["connector"].key for card in by_category]


def test_path_preview_resolves_for_the_firms_client(signed_in, firm):
    client_company = firm["clients"][0]
    url = reverse("store:path_preview")
    answer = signed_in.get(
        url,
        {
            "template": "in/[uen_number]/[invoice_type]/",
            "category": "report",
            "client": client_company.pk,
        },
    ).json()
    assert answer["path"] == f"in/{client_company.enterprise_number}/cod/"
    error = signed_in.get(url, {"template": "in/[client]/"}).json()["error"]
    assert "[external_id]" in error  # lists the known variables
    outsider_client = Client.objects.for_partner(firm["other"]).get()
    answer = signed_in.get(
        url, {"template": "[company_name]/", "client": outsider_client.pk}
    ).json()
    assert outsider_client.name not in answer["path"]  # another firm's client is not used


def test_editing_the_host_drops_the_pinned_key(signed_in, sftp_server):
    accept_key(signed_in, install_sftp(signed_in, sftp_server))
    installation = Installation.objects.get(name="Lambert server")
    response = signed_in.post(
        reverse("store:manage", args=[installation.pk]),
        settings_post(sftp_server, **{"settings-host": "localhost"}),  # password typed again
    )
    assert "Check the server" in response.content.decode()  # a new server, not a changed key
    installation.refresh_from_db()
    assert installation.settings["host"] == sftp_server.host  # nothing saved until accepted


def test_release_reaches_the_server_through_the_task_queue(
    firm, sftp_server, make_document, monkeypatch, django_capture_on_commit_callbacks
):
    """The wiring a worker runs: release → plan → on commit enqueue → deliver task."""
    from django_q.conf import Conf

    monkeypatch.setattr(Conf, "SYNC", True)  # django-q2 runs the task in this process
    installation = Installation.objects.create(
        partner=firm["partner"],
        connector="sftp",
        name="Queued",
        settings={
            "host": sftp_server.host,
            "port": sftp_server.port,
            "username": sftp_server.username,
            "upload_path": "queued/",
            **sftp_server.pin(),
        },
        secrets={"password": sftp_server.password},
    )
    client_company = firm["clients"][1]
    Integration.objects.create(
        client=client_company, installation=installation, categories=["sales"]
    )
    document = make_document(client_company, Document.Category.SALES)
    with django_capture_on_commit_callbacks(execute=True):
        release(document)
    (path,) = landed(sftp_server)
    assert path.parent.name == "queued"
    assert path.read_bytes() == document.file.open("rb").read()


def test_test_connection_says_it_works_and_saves_nothing(signed_in, sftp_server):
    accept_key(signed_in, install_sftp(signed_in, sftp_server))
    installation = Installation.objects.get(name="Lambert server")
    Installation.objects.filter(pk=installation.pk).update(status="failing", last_error="x")
    installation.refresh_from_db()
    response = signed_in.post(reverse("store:test", args=[installation.pk]), follow=True)
    assert "Connection works." in response.content.decode()
    saved = Installation.objects.get(pk=installation.pk)
    assert (saved.status, saved.last_error) == ("ok", "")  # working again, shown as such
    assert saved.updated_at == installation.updated_at  # the configuration was not saved
    assert saved.settings == installation.settings


def test_resend_writes_to_the_same_place_under_a_new_idempotency_key(
    signed_in, firm, http_peer, make_document
):
    """An automatic retry keeps the key, so a receiver that de-duplicates takes one copy;
    a person's Re-send writes to the same URL and file name under a new key, so that
    receiver takes it again instead of dropping it as a duplicate."""
    installation = Installation.objects.create(
        partner=firm["partner"],
        connector="http",
        name="Receiver",
        settings={
            "url": f"{http_peer.url}/in",
            "method": "PUT",
            "auth": "none",
            "path_template": "[invoice_type]/",
        },
    )
    client_company = firm["clients"][1]
    Integration.objects.create(
        client=client_company, installation=installation, categories=["purchase"]
    )
    document = make_document(client_company, Document.Category.PURCHASE)
    release(document)
    job = ExportJob.objects.get(document=document, installation=installation)
    destination = engine.Destination(installation.pk)

    http_peer.respond(503)  # the first attempt fails: retried automatically
    assert engine.deliver(destination).stopped == "transient"
    ExportJob.objects.filter(pk=job.pk).update(next_attempt_at=timezone.now())
    assert engine.deliver(destination).delivered == 1

    url = reverse("exports:resend", args=[client_company.pk, document.pk, job.pk])
    assert signed_in.post(url).status_code == 302
    assert engine.deliver(destination).delivered == 1

    first, retry, resent = http_peer.requests
    assert first.path == retry.path == resent.path == f"/in/purchases/{file_name(document)}"
    keys = [request.headers["idempotency-key"] for request in (first, retry, resent)]
    assert keys[0] == keys[1] == str(job.pk)  # one send, one key, however many attempts
    assert keys[2] not in keys[:2]  # a person's re-send: a new key
    assert resent.body == first.body == document.file.open("rb").read()
    job.refresh_from_db()
    assert (job.status, job.resends) == ("delivered", 1)
