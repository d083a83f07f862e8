"""The main pages at a laptop's, a small laptop's and a phone's width: nothing wider than
the window (no horizontal scrolling), and no serious or critical accessibility violation
by axe-core's rules."""

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.urls import reverse

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
WIDTHS = [1366, 1024, 390]
SERIOUS = {"serious", "critical"}


def main_pages(firm) -> dict[str, str]:
    company = firm["clients"][0]
    return {
        "dashboard": reverse("dashboard"),
        "clients": reverse("clients:list"),
        "documents": reverse("clients:documents", args=[company.pk]),
        "integrations": reverse("integrations:list", args=[company.pk]),
        "store": reverse("store:index"),
        "manage": firm["installation"].get_absolute_url(),
    }


def overflow(page) -> int:
    """How many pixels the page is wider than the window (0: no horizontal scrolling)."""
    return page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )


@pytest.mark.parametrize("width", WIDTHS)
def test_no_horizontal_scrolling(page, firm, sign_in, shot, width):
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, firm["owner"])
    wider = {}
    for name, url in main_pages(firm).items():
        page.goto(url)
        shot(page, f"{name}-{width}")
        if (extra := overflow(page)) > 0:
            wider[name] = f"{extra} px wider than the {width} px window"
        if name == "dashboard":  # and with the app launcher open
            page.locator("#app-launcher summary").click()
            shot(page, f"launcher-{width}")
            if (extra := overflow(page)) > 0:
                wider["app launcher"] = f"{extra} px wider than the {width} px window"
    assert not wider, wider


def test_no_serious_accessibility_violation(page, firm, shot):
    page.goto(reverse("login"))
    axe = Axe()
    found = {"sign-in": axe.run(page)}
    shot(page, "sign-in")
    page.locator("#id_username").fill("owner")
    page.locator("#id_password").fill("pw-owner")
    page.locator("form button[type=submit].primary").click()
    page.wait_for_url(lambda url: "/accounts/login/" not in url)
    for name, url in main_pages(firm).items():
        page.goto(url)
        found[name] = axe.run(page)
        shot(page, name)
    serious = {
        name: [
            f"{violation['id']} ({violation['impact']}): {violation['help']} — "
            + "; ".join(node["target"][0] for node in violation["nodes"][:5])
            for violation in results.response["violations"]
            if violation["impact"] in SERIOUS
        ]
        for name, results in found.items()
    }
    assert not any(serious.values()), {name: v for name, v in serious.items() if v}
