"""The browser suite: Debian's Chromium, driven by Playwright, against a live server.

Playwright's sync API keeps an asyncio loop running in the test's thread for as long as it
is started, and Django refuses database calls while a loop runs there. So Playwright lives
for one test, not the session (a session-wide loop would reach every later test of the
suite), and only these tests allow Django's "async-unsafe" calls: their own queries run
between page calls in the test's thread, never at the same time as the loop's work.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "var" / "screenshots"
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
MISSING_CHROMIUM = (
    "Chromium is not installed at {path}. The browser tests drive Debian's Chromium: "
    "`apt-get install -y chromium` (`make test` does it when it is missing), or set "
    "CHROMIUM to the path of another Chromium binary."
)
# How long (ms) a page may take to show what a step expects, on a live server here.
expect.set_options(timeout=10_000)


@pytest.fixture(autouse=True)
def _async_unsafe_allowed(monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def playwright():
    """Started and stopped within the test (see the module's docstring)."""
    with sync_playwright() as started:
        yield started


@pytest.fixture
def browser_type(playwright):
    return playwright.chromium


@pytest.fixture
def launch_browser(browser_type, browser_type_launch_args):
    """Debian's Chromium, never a downloaded one; a missing binary fails the test."""

    def launch(**options):
        if not CHROMIUM.is_file():
            pytest.fail(MISSING_CHROMIUM.format(path=CHROMIUM), pytrace=False)
        return browser_type.launch(
            executable_path=str(CHROMIUM), **{**browser_type_launch_args, **options}
        )

    return launch


@pytest.fixture
def browser(launch_browser):
    browser = launch_browser()
    yield browser
    browser.close()


@pytest.fixture
def browser_context_args(live_server):
    return {"base_url": live_server.url, "viewport": {"width": 1366, "height": 900}}


def _slug(text: str) -> str:
    return re.sub(r"[^\w.-]+", "-", text).strip("-")


@pytest.fixture
def context(new_context):
    context = new_context()
    context.set_default_timeout(10_000)  # a step waits for the page this long, then fails
    return context


@pytest.fixture
def shot(request):
    """``shot(page, "step")`` saves var/screenshots/<test>/<nn>-<step>.png."""
    folder = SCREENSHOTS / _slug(request.node.name)
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.png"):
        old.unlink()
    count = 0

    def take(page, step: str) -> Path:
        nonlocal count
        count += 1
        path = folder / f"{count:02d}-{_slug(step)}.png"
        page.screenshot(path=path, full_page=True)
        return path

    return take


@pytest.fixture
def sign_in(shot):
    """Sign in on the login page as a person does; returns the dashboard."""

    def go(page, user, password=None):
        page.goto("/")
        page.locator("#id_username").fill(user.get_username())
        page.locator("#id_password").fill(password or "pw-" + user.get_username())
        shot(page, "sign-in")
        page.locator("form button[type=submit].primary").click()
        expect(page.locator("#id_password")).to_have_count(0)
        return page

    return go
