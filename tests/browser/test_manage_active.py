"""The Active switch on an installation's Manage page: off after a confirmation, then on
again; with script (a dialog) and without (a confirmation page)."""

import pytest
from playwright.sync_api import expect

from tests.browser.flows import sftp_installation

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def open_manage(page, installation):
    page.locator("#app-launcher summary").click()
    page.locator("#app-launcher").get_by_role("link", name=installation.name).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(installation.name)
    return page.get_by_role("switch", name="Active")


def test_switch_off_after_confirming_then_on_again(page, firm, sign_in, shot, sftp_server):
    installation = sftp_installation(firm["partner"], sftp_server)
    sign_in(page, firm["owner"])
    switch = open_manage(page, installation)
    expect(switch).to_have_attribute("aria-checked", "true")
    shot(page, "manage-on")

    asked = []

    def confirm(dialog):
        asked.append(dialog.message)
        dialog.accept()

    page.on("dialog", confirm)
    for checked, active in (("false", False), ("true", True)):
        switch.click()
        expect(switch).to_have_attribute("aria-checked", checked)
        installation.refresh_from_db()
        assert installation.active is active
        shot(page, f"active-{checked}")
    assert asked[0].startswith(f"Switch off {installation.name}?")
    assert len(asked) == 2


def test_dismissing_the_confirmation_leaves_it_on(page, firm, sign_in, shot, sftp_server):
    installation = sftp_installation(firm["partner"], sftp_server)
    sign_in(page, firm["owner"])
    switch = open_manage(page, installation)
    page.once("dialog", lambda dialog: dialog.dismiss())
    switch.click()
    expect(switch).to_have_attribute("aria-checked", "true")
    installation.refresh_from_db()
    assert installation.active
    shot(page, "dismissed")


def test_without_script_a_page_asks_first(new_context, firm, sign_in, shot, sftp_server):
    installation = sftp_installation(firm["partner"], sftp_server)
    page = new_context(java_script_enabled=False).new_page()
    sign_in(page, firm["owner"])
    page.goto(installation.get_absolute_url())
    page.get_by_role("switch", name="Active").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Switch off {installation.name}?")
    shot(page, "confirmation-page")
    installation.refresh_from_db()
    assert installation.active  # nothing changes before the confirmation
    page.get_by_role("button", name="Switch off").click()
    expect(page.get_by_role("switch", name="Active")).to_have_attribute("aria-checked", "false")
    installation.refresh_from_db()
    assert not installation.active
    shot(page, "switched-off")
