"""A Documents tab row waiting for delivery says when it is tried next and turns
Delivered without a reload, when the page's script asks the portal for its state."""

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from exports.models import ExportJob

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
# The page asks every 10 seconds; a little more for the answer to arrive.
POLL_TIMEOUT = 15_000


def test_a_waiting_row_turns_delivered_without_a_reload(page, firm, sign_in, shot):
    job = firm["job"]
    ExportJob.objects.filter(pk=job.pk).update(
        status=ExportJob.Status.FAILED,
        attempts=1,
        last_error="Connection refused by sftp.lambert.example",
        next_attempt_at=timezone.now() + timedelta(minutes=4),
    )
    sign_in(page, firm["member"])
    page.goto(f"/clients/{firm['clients'][0].pk}/documents/")
    row = page.locator("ul.jobs li", has_text="Lambert SFTP")
    expect(row).to_contain_text("Will retry")
    expect(row).to_contain_text("next attempt in 4 min")
    shot(page, "will-retry")
    page.evaluate("window.notReloaded = true")

    ExportJob.objects.filter(pk=job.pk).update(
        status=ExportJob.Status.DELIVERED,
        attempts=2,
        delivered_at=timezone.now(),
        next_attempt_at=None,
        last_error="",
        remote_reference="/in/20261201_INV-1_0123abcd.xml",
    )
    expect(row).to_contain_text("Delivered", timeout=POLL_TIMEOUT)
    expect(row).to_contain_text("/in/20261201_INV-1_0123abcd.xml")
    expect(row).not_to_contain_text("next attempt")
    assert page.evaluate("window.notReloaded") is True
    shot(page, "delivered")
