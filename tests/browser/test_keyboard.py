"""Keyboard only: from the dashboard to a client's Integrations tab without the mouse."""

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
MAX_TABS = 60  # more than any page here has focusable things before what is looked for


def tab_to(page, name: str) -> None:
    """Press Tab until the focused element's accessible text is ``name``; fail if never."""
    for _ in range(MAX_TABS):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "() => { const e = document.activeElement;"
            " return (e.getAttribute('aria-label') || e.innerText || e.value || '').trim(); }"
        )
        if focused == name:
            return
    pytest.fail(f"{MAX_TABS} presses of Tab never reached {name!r} on {page.url}")


def test_from_the_dashboard_to_a_clients_integrations(page, firm, sign_in, shot):
    company = firm["clients"][0]
    sign_in(page, firm["owner"])
    shot(page, "dashboard")

    tab_to(page, "App launcher")
    page.keyboard.press("Enter")
    tab_to(page, "Clients")
    shot(page, "launcher-open")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Clients")

    tab_to(page, company.name)
    shot(page, "client-focused")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text(company.name)

    tab_to(page, "Integrations")
    page.keyboard.press("Enter")
    expect(page.get_by_role("link", name="Integrations")).to_have_attribute("aria-current", "page")
    expect(page.locator("tbody tr", has_text=firm["installation"].name)).to_be_visible()
    shot(page, "integrations")
