"""A destination that stops answering, as the firm sees it in the browser: the dashboard
lists the failing integration, the banner on every page links to it after an hour, the
owners get one notice; when the server answers again, one more notice and all is clear."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone
from playwright.sync_api import expect

from clients.models import Document
from clients.release import release
from exports import engine
from exports.models import ExportAttempt, ExportJob
from extensions.models import Integration
from tests.browser.flows import sftp_installation
from tests.notice_peers import run_notices

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("task_queue"),
]


@pytest.fixture(autouse=True)
def _retry_at_once(settings):
    """A failed export is due again at once, so each delivery is the next failure."""
    settings.EXPORT_RETRY_CAP_SECONDS = 0
    settings.EXPORT_NOTICE_FAILURES = 3


def test_failure_shows_and_notifies_once_then_recovery_once(
    page, firm, sign_in, shot, sftp_server, make_document
):
    owner = firm["owner"]
    owner.email = "owner@lambert.example"
    owner.save()
    installation = sftp_installation(firm["partner"], sftp_server, name="Dubois server")
    company = firm["clients"][1]
    integration = Integration.objects.create(
        client=company, installation=installation, categories=["purchase"]
    )
    release(make_document(company, Document.Category.PURCHASE))
    sftp_server.server.stop()
    destination = engine.Destination(installation.pk)
    for _ in range(4):  # past the notice threshold: still one notice
        assert engine.deliver(destination).stopped == "transient"
        run_notices()
    assert len(mail.outbox) == 1, [m.subject for m in mail.outbox]
    assert company.name in mail.outbox[0].body and owner.email in mail.outbox[0].to

    sign_in(page, owner)
    health = page.locator("#health")
    row = health.locator("tbody tr", has_text=company.name)
    expect(row).to_contain_text("Dubois server")
    expect(row).to_contain_text("Failing")
    shot(page, "dashboard-failing")

    # An hour and more has passed since the failures: the banner shows on every page.
    ExportAttempt.objects.filter(job__integration=integration).update(
        started_at=timezone.now() - timedelta(minutes=62),
        finished_at=timezone.now() - timedelta(minutes=61),
    )
    page.goto("/store/")
    banner = page.locator(".health-banner")
    expect(banner).to_contain_text(f"Dubois server for {company.name}")
    shot(page, "banner")
    banner.get_by_role("link", name=f"Dubois server for {company.name}").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(company.name)
    expect(page.locator("tbody tr", has_text="Dubois server")).to_contain_text("Failing")
    shot(page, "integrations-failing")

    sftp_server.server.start()
    ExportJob.objects.filter(integration=integration).update(next_attempt_at=timezone.now())
    assert engine.deliver(destination).delivered == 1
    run_notices()
    assert len(mail.outbox) == 2, [m.subject for m in mail.outbox]
    assert company.name in mail.outbox[1].body

    page.goto("/")
    expect(page.locator(".health-banner")).to_have_count(0)
    expect(health).to_contain_text("Every integration is delivering")
    shot(page, "recovered")
