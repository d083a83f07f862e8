"""Each integration on a client's Integrations tab shows its deliveries per day over the
last 30 days as a small line, all integrations of the tab counted in one query."""

import re
from datetime import datetime, time, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from exports.models import ExportJob
from extensions.models import Installation, Integration

pytestmark = pytest.mark.django_db


def sparklines(page: str) -> dict[str, list[int]]:
    """Per-day values of each row's sparkline, by the installation named in the row."""
    found = {}
    for row in page.split("<tbody>", 1)[1].split("</tbody>", 1)[0].split("</tr>")[:-1]:
        name = re.search(r"<strong>([^<]+)</strong>", row).group(1)
        values = re.search(r'data-per-day="([\d,]*)"', row).group(1)
        points = re.search(r'<polyline points="([^"]*)"', row).group(1).split()
        assert len(points) == 30
        found[name] = [int(v) for v in values.split(",")]
    return found


def deliver(firm, make_document, integration, when, *, status="delivered"):
    ExportJob.objects.create(
        document=make_document(integration.client),
        integration=integration,
        installation=integration.installation,
        status=status,
        delivered_at=when if status == "delivered" else None,
    )


def noon(days_ago):
    day = timezone.localdate() - timedelta(days=days_ago)
    return timezone.make_aware(datetime.combine(day, time(12)))


def test_each_integration_shows_what_it_delivered_per_day(client, firm, make_document):
    now = timezone.now()
    company = firm["clients"][0]
    first = firm["integration"]
    second = Integration.objects.create(
        client=company,
        installation=Installation.objects.create(
            partner=firm["partner"], connector="sftp", name="Backup server"
        ),
        categories=["purchase"],
    )
    for _ in range(3):
        deliver(firm, make_document, first, now)
    deliver(firm, make_document, first, noon(2))
    deliver(firm, make_document, first, noon(30))  # before the 30 days
    deliver(firm, make_document, first, None, status="dead")
    deliver(firm, make_document, second, noon(29))

    client.force_login(firm["member"])
    page = client.get(reverse("integrations:list", args=[company.pk])).content.decode()
    lines = sparklines(page)

    assert lines["Lambert SFTP"] == [0] * 27 + [1, 0, 3]
    assert lines["Backup server"] == [1] + [0] * 29
    assert "4 delivered in the last 30 days" in page
    assert "1 delivered in the last 30 days" in page


def test_one_query_for_the_sparklines_of_all_integrations(client, firm, make_document):
    company = firm["clients"][0]
    client.force_login(firm["member"])
    url = reverse("integrations:list", args=[company.pk])
    client.get(url)
    with CaptureQueriesContext(connection) as one:
        client.get(url)
    for number in range(4):
        integration = Integration.objects.create(
            client=company,
            installation=Installation.objects.create(
                partner=firm["partner"], connector="sftp", name=f"Server {number}"
            ),
            categories=["purchase"],
        )
        deliver(firm, make_document, integration, timezone.now())
    with CaptureQueriesContext(connection) as five:
        page = client.get(url).content.decode()
    assert len(sparklines(page)) == 5
    assert len(five.captured_queries) == len(one.captured_queries)
