"""Installing Google Drive in the browser: the sign-in at the local authorization server,
cancelled once, then allowed."""

import re

import pytest
from playwright.sync_api import expect

from extensions.models import Installation

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def start_sign_in(page, shot):
    page.goto("/store/")
    page.locator("#store-search").fill("Google Drive")
    page.locator("#store-search").press("Enter")
    page.locator("a.store-card", has_text="Google Drive").click()
    page.get_by_role("button", name="Install").click()
    page.get_by_role("button", name="Confirm and configure").click()
    page.locator("#id_name").fill("Lambert Drive")
    shot(page, "configure")
    page.get_by_role("button", name="Sign in with Google Drive").click()


def test_cancelled_then_allowed_sign_in(page, firm, sign_in, shot, google_peer):
    sign_in(page, firm["owner"])
    google_peer.consent = False
    start_sign_in(page, shot)
    expect(page).to_have_url(re.compile(r"/store/gdrive/$"))
    expect(page.locator(".messages")).to_contain_text("Sign-in was cancelled")
    shot(page, "cancelled")
    assert not Installation.objects.filter(connector="gdrive").exists()
    assert google_peer.grants == 0

    google_peer.consent = True
    start_sign_in(page, shot)
    expect(page.locator(".messages")).to_contain_text("Installation succeeded.")
    shot(page, "installed")
    installation = Installation.objects.get(connector="gdrive")
    assert installation.settings["account"] == google_peer.account

    page.goto(installation.get_absolute_url())
    expect(page.get_by_text("Connected as")).to_be_visible()
    expect(page.locator("main")).to_contain_text(google_peer.account)
    expect(page.get_by_role("button", name="Reconnect")).to_be_visible()
    shot(page, "manage")
