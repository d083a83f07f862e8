"""The dashboard tells the firm how its exports are doing: which integrations fail or wait
for a person (client, extension, reason, since, a link to fix it), how many jobs wait or
failed, and exports per day over 30 days drawn as SVG, counting the firm's own only."""

import re
from datetime import datetime, time, timedelta
from functools import partial

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import formats, timezone, translation
from django.utils.html import escape

from clients.models import Document
from clients.release import release
from exports import engine
from exports.models import ExportAttempt, ExportJob
from extensions.models import Installation, Integration
from tests.peers.sftp import sftp_installation as shared_sftp_installation

pytestmark = pytest.mark.django_db

sftp_installation = partial(shared_sftp_installation, name="Dubois server", upload_path="in/")


def health_rows(page: str) -> list[str]:
    section = page.split('id="health"', 1)[1].split("</section>", 1)[0]
    return section.split("<tbody>", 1)[1].split("</tbody>", 1)[0].split("</tr>")[:-1]


def test_a_failing_integration_is_listed_with_client_extension_reason_since_and_link(
    client, firm, sftp_server, make_document
):
    installation = sftp_installation(firm["partner"], sftp_server)
    company = firm["clients"][1]
    integration = Integration.objects.create(
        client=company, installation=installation, categories=["purchase"]
    )
    release(make_document(company, Document.Category.PURCHASE))
    sftp_server.server.stop()
    assert engine.deliver(engine.Destination(installation.pk)).stopped == "transient"
    integration.refresh_from_db()
    attempt = ExportAttempt.objects.get(job__integration=integration)

    client.force_login(firm["member"])
    page = client.get(reverse("dashboard")).content.decode()

    (row,) = health_rows(page)  # the fixture's working integration is not listed
    assert company.name in row
    assert "Dubois server" in row
    assert "Failing" in row
    assert integration.last_error and escape(integration.last_error) in row
    since = formats.date_format(timezone.localtime(attempt.finished_at), "SHORT_DATETIME_FORMAT")
    assert since in row
    assert f'href="{reverse("integrations:list", args=[company.pk])}"' in row
    assert "Every integration is delivering" not in page


def test_integrations_waiting_for_a_person_are_listed_with_the_reason(client, firm):
    integration = firm["integration"]
    Integration.objects.filter(pk=integration.pk).wait_for_a_person(
        Integration.Status.ATTENTION, "The folder Invoice_import does not exist."
    )
    integration.refresh_from_db()
    client.force_login(firm["owner"])

    (row,) = health_rows(client.get(reverse("dashboard")).content.decode())
    assert firm["clients"][0].name in row and "Lambert SFTP" in row
    assert "Needs attention" in row and "The folder Invoice_import does not exist." in row
    since = timezone.localtime(integration.status_since)
    assert formats.date_format(since, "SHORT_DATETIME_FORMAT") in row

    Integration.objects.filter(pk=integration.pk).resume()
    page = client.get(reverse("dashboard")).content.decode()
    assert "Every integration is delivering: nothing needs you." in page


def test_an_other_firms_problems_are_not_shown(client, firm, make_client):
    other_installation = Installation.objects.create(
        partner=firm["other"],
        connector="sftp",
        name="Elders server",
        status=Installation.Status.RECONNECT,
        last_error="Elders' password was refused",
    )
    Integration.objects.create(
        client=make_client(firm["other"], "Garage Twee NV"),
        installation=other_installation,
        categories=["purchase"],
    )
    client.force_login(firm["owner"])
    page = client.get(reverse("dashboard")).content.decode()
    assert "Elders" not in page and "Garage Twee" not in page


def test_tiles_count_active_integrations_and_jobs_waiting_and_failed(client, firm, make_document):
    integration, installation = firm["integration"], firm["installation"]
    for status in ("pending", "failed", "running", "delivered"):
        ExportJob.objects.create(
            document=make_document(firm["clients"][0]),
            integration=integration,
            installation=installation,
            status=status,
        )
    client.force_login(firm["member"])
    page = client.get(reverse("dashboard")).content.decode()

    def tile(label):
        return re.search(r'<span class="figure">(\d+)</span>\s*<span class="label">' + label, page)

    assert tile("active integrations").group(1) == "1"
    assert tile("exports waiting to be delivered").group(1) == "3"
    assert tile("exports failed").group(1) == "1"  # the fixture's dead job


def chart_days(page: str) -> dict[str, tuple[int, int]]:
    svg = page.split('<figure class="exports-chart">', 1)[1].split("</svg>", 1)[0]
    return {
        day: (int(delivered), int(failed))
        for day, delivered, failed in re.findall(
            r'data-day="([\d-]+)" data-delivered="(\d+)" data-failed="(\d+)"', svg
        )
    }


def test_the_chart_counts_delivered_and_failed_per_day_for_the_firm_only(
    client, firm, make_client, make_document
):
    now = timezone.now()
    today = timezone.localdate()
    integration, installation = firm["integration"], firm["installation"]

    def job(status, when, *, on=integration, into=installation, company=None):
        created = ExportJob.objects.create(
            document=make_document(company or firm["clients"][0]),
            integration=on,
            installation=into,
            status=status,
            attempts=1,
            delivered_at=when if status == "delivered" else None,
        )
        outcome = "delivered" if status == "delivered" else "permanent"
        ExportAttempt.objects.create(
            job=created, number=1, started_at=when, finished_at=when, outcome=outcome
        )

    def noon(days_ago):
        day = today - timedelta(days=days_ago)
        return timezone.make_aware(datetime.combine(day, time(12)))

    job("delivered", now)
    job("delivered", now)
    job("dead", now)
    job("delivered", noon(3))
    job("dead", noon(3))
    job("delivered", noon(30))  # before the 30 days
    job("dead", noon(31))
    job("pending", now)  # neither delivered nor failed
    elsewhere = make_client(firm["other"], "Garage Twee NV")
    other_installation = Installation.objects.create(
        partner=firm["other"], connector="sftp", name="Elders server"
    )
    other_integration = Integration.objects.create(
        client=elsewhere, installation=other_installation, categories=["purchase"]
    )
    for _ in range(4):
        job("delivered", now, on=other_integration, into=other_installation, company=elsewhere)
    job("dead", now, on=other_integration, into=other_installation, company=elsewhere)

    client.force_login(firm["member"])
    page = client.get(reverse("dashboard")).content.decode()
    days = chart_days(page)

    assert len(days) == 30
    assert list(days)[-1] == today.isoformat()
    three_days_ago = (today - timedelta(days=3)).isoformat()
    assert days[today.isoformat()] == (2, 1)  # the fixture's dead job has no attempt on record
    assert days[three_days_ago] == (1, 1)
    others = {d: v for d, v in days.items() if d not in (today.isoformat(), three_days_ago)}
    assert set(others.values()) == {(0, 0)}
    assert "<title" in page and "Exports per day over the last 30 days" in page
    assert "3 delivered and 2 failed in the last 30 days" in page
    assert ">Day</text>" in page and ">Exports</text>" in page


def test_the_chart_writes_its_dates_in_the_active_language(client, firm):
    client.force_login(firm["member"])
    client.cookies[settings.LANGUAGE_COOKIE_NAME] = "fr"
    page = client.get(reverse("dashboard")).content.decode()
    with translation.override("fr"):
        today = formats.date_format(timezone.localdate(), "j F")
    assert f"<title>{today}:" in page
