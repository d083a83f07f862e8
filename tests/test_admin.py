"""The operators' admin: export jobs are retried but never deleted, installations and
integrations are shown without their secrets and their settings cannot be changed here."""

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from clients.models import Document
from exports.models import DeliveryWake, ExportJob
from extensions.models import Installation, Integration

pytestmark = pytest.mark.django_db

JOBS = "/admin/exports/exportjob/"


@pytest.fixture
def operator(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "root-pw")
    client.force_login(admin)
    return client


def stored_secrets(installation):
    """What the database holds, bypassing the field's decryption."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT secrets FROM extensions_installation WHERE id = %s", [installation.pk]
        )
        return cursor.fetchone()[0].strip('"')


def test_retry_now_says_how_many_jobs_it_queued_and_they_are_due_again(
    operator, firm, django_capture_on_commit_callbacks
):
    job = firm["job"]
    with django_capture_on_commit_callbacks(execute=True):
        response = operator.post(
            JOBS, {"action": "retry_now", "_selected_action": [job.pk]}, follow=True
        )

    assert "1 job queued." in response.content.decode()
    job.refresh_from_db()
    assert (job.status, job.attempts, job.last_error) == ("pending", 0, "")
    assert job.next_attempt_at <= timezone.now()
    wake = DeliveryWake.objects.get(installation=firm["installation"])
    assert wake.queued_at is not None


def test_resend_counts_only_the_jobs_it_sent_again(operator, firm):
    dead = firm["job"]
    running = ExportJob.objects.create(
        document=firm["documents"][1],
        integration=firm["integration"],
        installation=firm["installation"],
        status=ExportJob.Status.RUNNING,
        attempts=1,
    )
    response = operator.post(
        JOBS, {"action": "resend", "_selected_action": [dead.pk, running.pk]}, follow=True
    )

    assert "1 job queued." in response.content.decode()
    running.refresh_from_db()
    assert (running.status, running.attempts) == ("running", 1)


def test_export_jobs_cannot_be_deleted(operator, firm):
    job = firm["job"]
    page = operator.get(JOBS).content.decode()
    assert 'value="delete_selected"' not in page
    assert 'value="retry_now"' in page

    assert operator.post(f"{JOBS}{job.pk}/delete/", {"post": "yes"}).status_code == 403
    operator.post(JOBS, {"action": "delete_selected", "_selected_action": [job.pk], "post": "yes"})
    assert ExportJob.objects.filter(pk=job.pk).exists()


def test_job_list_shows_firm_client_destination_and_the_failure(operator, firm):
    page = operator.get(JOBS).content.decode()
    for header in ["firm", "client", "destination", "status", "attempts", "next attempt"]:
        assert f">{header.capitalize()}</a>" in page, header
    assert "Last error" in page
    for value in ["Fiduciaire Lambert", "Bakkerij Peeters BV", "Lambert SFTP", "Failed"]:
        assert value in page, value
    assert "connection refused" in page


def test_job_list_queries_do_not_grow_with_the_jobs(operator, firm, make_client, make_document):
    with CaptureQueriesContext(connection) as one:
        assert operator.get(JOBS).status_code == 200
    for _ in range(4):
        client = make_client(firm["partner"], "Another client")
        integration = Integration.objects.create(
            client=client, installation=firm["installation"], categories=["purchase"]
        )
        ExportJob.objects.create(
            document=make_document(client, Document.Category.PURCHASE),
            integration=integration,
            installation=firm["installation"],
            status=ExportJob.Status.FAILED,
        )
    with CaptureQueriesContext(connection) as five:
        assert operator.get(JOBS).status_code == 200
    assert len(five) == len(one)


def test_installation_shows_settings_but_never_secrets(operator, firm):
    installation = firm["installation"]
    ciphertext = stored_secrets(installation)
    assert ciphertext.startswith("gAAAA")

    page = operator.get(f"/admin/extensions/installation/{installation.pk}/change/")

    body = page.content.decode()
    assert page.status_code == 200
    assert "sftp.lambert.example" in body
    assert "&quot;username&quot;: &quot;lambert&quot;" in body
    assert "s3cret-password" not in body
    assert ciphertext not in body
    assert "gAAAA" not in body


def test_installation_settings_cannot_be_changed_in_the_admin(operator, firm):
    installation = firm["installation"]
    response = operator.post(
        f"/admin/extensions/installation/{installation.pk}/change/",
        {
            "name": "Lambert SFTP (paused)",
            "connections": 2,
            "settings": json.dumps({"host": "attacker.example", "port": 22}),
            "secrets": json.dumps({"password": "other"}),
            "connector": "http",
            "partner": firm["other"].pk,
            "status": "ok",
        },
    )

    assert response.status_code == 302
    installation.refresh_from_db()
    assert (installation.name, installation.active) == ("Lambert SFTP (paused)", False)
    assert installation.settings["host"] == "sftp.lambert.example"
    assert installation.secrets == {"password": "s3cret-password"}
    assert (installation.connector, installation.partner) == ("sftp", firm["partner"])


def test_switching_an_installation_on_sends_what_waited(
    operator, firm, django_capture_on_commit_callbacks
):
    installation = firm["installation"]
    Installation.objects.filter(pk=installation.pk).update(active=False)
    ExportJob.objects.filter(pk=firm["job"].pk).update(
        status=ExportJob.Status.PENDING, next_attempt_at=timezone.now()
    )
    with django_capture_on_commit_callbacks(execute=True):
        response = operator.post(
            f"/admin/extensions/installation/{installation.pk}/change/",
            {"name": installation.name, "connections": 4, "active": "on"},
        )

    assert response.status_code == 302
    assert DeliveryWake.objects.get(installation=installation).queued_at is not None


def test_integration_shows_client_settings_but_never_client_secrets(operator, firm):
    integration = firm["integration"]
    integration.client_settings = {"folder": "/in/peeters"}
    integration.client_secrets = {"token": "client-token-123"}
    integration.save()
    url = f"/admin/extensions/integration/{integration.pk}/change/"

    body = operator.get(url).content.decode()
    assert "/in/peeters" in body
    assert "client-token-123" not in body
    assert "gAAAA" not in body

    response = operator.post(
        url,
        {
            "active": "on",
            "categories": json.dumps(["purchase"]),
            "client_settings": json.dumps({"folder": "/elsewhere"}),
            "installation": Installation.objects.create(
                partner=firm["other"], connector="sftp", name="Elders SFTP"
            ).pk,
        },
    )
    assert response.status_code == 302
    integration.refresh_from_db()
    assert integration.categories == ["purchase"]
    assert integration.client_settings == {"folder": "/in/peeters"}
    assert integration.installation == firm["installation"]
