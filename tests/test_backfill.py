"""Historic backfill: documents released before an integration existed are exported on
request, counted first, never twice, behind new releases, and land on a real server."""

import datetime
import io
import os
import subprocess
import sys

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from clients.models import Document
from clients.release import release
from exports import backfill, engine
from exports.models import ExportJob
from extensions.models import Integration
from tests.peers.sftp import sftp_installation

pytestmark = pytest.mark.django_db

LAST_YEAR = timezone.now() - datetime.timedelta(days=300)
SINCE = (LAST_YEAR - datetime.timedelta(days=1)).date()


@pytest.fixture
def history(firm, make_document, sftp_server):
    """A client with documents released last year, then an SFTP integration set up today
    for purchases and sales: release planned nothing for last year's documents."""
    client = firm["clients"][0]
    installation = sftp_installation(firm["partner"], sftp_server, name="Backfill SFTP")
    old = {
        "purchase": [make_document(client, Document.Category.PURCHASE) for _ in range(3)],
        "sales": [make_document(client, Document.Category.SALES) for _ in range(2)],
        "report": [make_document(client, Document.Category.REPORT)],
    }
    for documents in old.values():
        for document in documents:
            release(document, at=LAST_YEAR)
    integration = Integration.objects.create(
        client=client, installation=installation, categories=["purchase", "sales"]
    )
    assert not ExportJob.objects.filter(integration=integration).exists()
    # One of them was already exported (a re-send long ago): it is skipped.
    ExportJob.objects.create(
        document=old["purchase"][0],
        integration=integration,
        installation=installation,
        status=ExportJob.Status.DELIVERED,
    )
    return {"client": client, "installation": installation, "integration": integration}


def jobs(integration):
    return ExportJob.objects.filter(integration=integration)


def test_the_integration_page_offers_it_and_the_confirmation_counts_per_category(
    client, firm, history
):
    client.force_login(firm["member"])  # daily work: members may
    integration = history["integration"]
    edit = client.get(reverse("integrations:edit", args=[history["client"].pk, integration.pk]))
    url = reverse("integrations:backfill", args=[history["client"].pk, integration.pk])
    assert url in edit.content.decode()

    confirm = client.get(url, {"since": SINCE.strftime("%d/%m/%Y")})
    assert confirm.status_code == 200
    rows = {c.category: (c.found, c.exported, c.missing) for c in confirm.context["counts"]}
    # Last year's three purchases and the firm's one released today; reports not taken.
    assert rows == {"purchase": (4, 1, 3), "sales": (2, 0, 2)}
    body = confirm.content.decode()
    assert "Transaction report" not in body
    assert "5 documents will be exported" in body
    assert jobs(integration).count() == 1  # counting plans nothing

    done = client.post(url, {"since": SINCE.isoformat()})
    assert done.status_code == 302
    assert jobs(integration).filter(backfill=True).count() == 5
    again = client.get(url, {"since": SINCE.isoformat()})
    assert "There is nothing to export for these dates." in again.content.decode()


def test_a_bad_date_range_is_a_form_error(client, firm, history):
    client.force_login(firm["owner"])
    url = reverse("integrations:backfill", args=[history["client"].pk, history["integration"].pk])
    response = client.get(url, {"since": "2025-03-01", "until": "2025-02-01"})
    assert response.status_code == 400
    assert "This date is before the first date." in response.content.decode()
    assert client.post(url, {"since": "yesterday"}).status_code == 400
    assert jobs(history["integration"]).count() == 1


def run(*args):
    out = io.StringIO()
    call_command("exports_backfill", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_the_command_counts_on_a_dry_run_plans_once_and_nothing_the_second_time(history):
    installation, integration = history["installation"], history["integration"]
    number = history["client"].enterprise_number
    args = ["--installation", str(installation.pk), "--since", SINCE.isoformat()]

    dry = run(*args, "--dry-run")
    assert "5 jobs would be planned for 1 clients." in dry
    assert jobs(integration).count() == 1

    real = run(*args, "--client", number)
    assert "5 jobs planned for 1 clients." in real
    lines = [line.split() for line in real.splitlines() if "purchase" in line or "sales" in line]
    assert [line[-4:] for line in lines] == [
        ["purchase", "4", "1", "3"],
        ["sales", "2", "0", "2"],
    ]
    assert jobs(integration).filter(backfill=True).count() == 5

    assert "0 jobs planned for 1 clients." in run(*args)
    assert jobs(integration).count() == 6


def test_until_limits_the_release_dates(history):
    installation = history["installation"]
    before = (LAST_YEAR - datetime.timedelta(days=2)).date()
    out = run(
        "--installation",
        str(installation.pk),
        "--since",
        "2000-01-01",
        "--until",
        before.isoformat(),
    )
    assert "0 jobs planned" in out


@pytest.mark.parametrize(
    "args, message",
    [
        (["--installation", "999999", "--since", "2025-01-01"], "No installed extension"),
        (["--since", "2025-01-01", "--client", "0417.497.106"], "has no integration"),
        (["--since", "2025-01-01", "--client", "12"], "12"),
        (["--since", "01-2025"], "expected YYYY-MM-DD or DD/MM/YYYY"),
        (["--since", "2025-02-01", "--until", "31/01/2025"], "is before --since"),
    ],
)
def test_bad_input_is_a_clear_error(history, args, message):
    if "--installation" not in args:
        args = ["--installation", str(history["installation"].pk), *args]
    with pytest.raises(CommandError, match=message):
        run(*args)
    assert jobs(history["integration"]).count() == 1


@pytest.mark.parametrize(
    "dates", [["--since", "2025-13-01"], ["--since", "02/02/2025", "--until", "2025-02-01"]]
)
def test_bad_dates_exit_with_code_1(dates):
    finished = subprocess.run(
        [sys.executable, "manage.py", "exports_backfill", "--installation", "1", *dates],
        cwd=settings.BASE_DIR,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert finished.returncode == 1
    assert "CommandError" in finished.stderr and "--" in finished.stderr


def test_a_new_release_is_claimed_before_a_due_backfill(history, make_document):
    integration = history["integration"]
    backfill.plan(integration, SINCE)
    today = make_document(history["client"], Document.Category.PURCHASE)
    release(today)  # planned on release, due a moment after the backfilled jobs
    fresh = ExportJob.objects.get(document=today, integration=integration)
    assert not fresh.backfill
    assert jobs(integration).filter(backfill=True, next_attempt_at__lt=fresh.next_attempt_at)

    _token, claimed = engine.claim(engine.destination_of(integration), 1)
    assert [job.pk for job in claimed] == [fresh.pk]


def test_planning_thousands_takes_a_constant_number_of_queries_per_batch(
    history, django_assert_max_num_queries
):
    integration = history["integration"]
    client = history["client"]
    Document.objects.bulk_create(
        [
            Document(
                client=client,
                category=Document.Category.PURCHASE,
                kind=Document.Kind.INVOICE,
                status=Document.Status.APPROVED,
                number=f"BULK-{n}",
                sha256=f"{n:064x}",
                size=1,
                original_name="invoice.xml",
                content_type="application/xml",
                file="invoice.xml",
                released_at=LAST_YEAR,
            )
            for n in range(2500)
        ]
    )
    # Not a query per document: a few per batch of a thousand (SQLite splits the insert).
    with django_assert_max_num_queries(2500 // 40):
        counts = backfill.plan(integration, SINCE)
    assert sum(c.planned for c in counts) == 2505
    assert backfill.survey(integration, SINCE)[0].missing == 0


def test_a_backfilled_document_lands_on_the_sftp_server(
    history, sftp_server, django_capture_on_commit_callbacks
):
    integration = history["integration"]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        backfill.plan(integration, SINCE)
    assert len(callbacks) == 1  # one wake for the destination, after commit
    report = engine.deliver(engine.destination_of(integration))
    assert report.delivered == 5
    landed = sorted(p for p in sftp_server.root.rglob("*") if p.is_file())
    assert len(landed) == 5
    assert set(jobs(integration).filter(backfill=True).values_list("status", flat=True)) == {
        ExportJob.Status.DELIVERED
    }
