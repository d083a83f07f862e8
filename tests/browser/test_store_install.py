"""Signing in and installing SFTP from the Store, in English, Dutch and French."""

import re

import pytest
from playwright.sync_api import expect

from clients.models import Document
from clients.release import release
from exports import tasks
from extensions.models import Installation, Integration
from tests.browser.flows import switch_language, translated

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# The user guide's own example upload folder, typed as the guide writes it.
GUIDE_PATH = "/invoice_import/[external_id]_[uen_number]/[invoice_type]"


def test_sign_in_reaches_the_firms_dashboard(page, firm, sign_in, shot):
    page.goto("/clients/")
    expect(page).to_have_url(re.compile(r"/accounts/login/"))
    sign_in(page, firm["owner"])
    expect(page.get_by_text(firm["partner"].name).first).to_be_visible()
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    shot(page, "dashboard")


def test_a_wrong_password_is_refused(page, firm, shot):
    page.goto("/")
    page.locator("#id_username").fill("owner")
    page.locator("#id_password").fill("not-the-password")
    page.locator("form button[type=submit].primary").click()
    expect(page.get_by_role("alert")).to_be_visible()
    shot(page, "refused")


def install_sftp(page, shot, sftp_server, language="en"):
    """Launcher → Store → search "SFTP" → Install → confirm → configure → host key."""
    page.locator("#app-launcher summary").click()
    store = translated(language, "Discover the Store")
    page.locator("#app-launcher").get_by_role("link", name=store).click()
    shot(page, "store")
    search = page.locator("#store-search")
    search.fill("SFTP")
    search.press("Enter")
    expect(page.locator("a.store-card")).to_have_count(1)
    shot(page, "searched")
    page.locator("a.store-card").click()
    page.get_by_role("button", name=translated(language, "Install")).click()
    shot(page, "rights")
    page.get_by_role("button", name=translated(language, "Confirm and configure")).click()
    page.locator("#id_name").fill("Lambert server")
    page.locator("#id_settings-host").fill(sftp_server.host)
    page.locator("#id_settings-port").fill(str(sftp_server.port))
    page.locator("#id_settings-username").fill(sftp_server.username)
    page.locator("#id_settings-password").fill(sftp_server.password)
    page.locator("#id_settings-upload_path").fill(GUIDE_PATH)
    shot(page, "configured")
    page.get_by_role("button", name=translated(language, "Save configuration")).click()
    expect(page.locator("code.fingerprint").first).to_contain_text(sftp_server.fingerprint)
    shot(page, "host-key")
    page.get_by_role("button", name=translated(language, "Accept this key and save")).click()
    message = page.locator(".messages .message").first
    succeeded = translated(language, "Installation succeeded. %(result)s") % {"result": ""}
    expect(message).to_contain_text(succeeded.strip())
    shot(page, "installed")
    installation = Installation.objects.get(name="Lambert server")
    assert installation.settings["upload_path"].rstrip("/") == GUIDE_PATH
    assert installation.settings["known_host_key"]["fingerprint"] == sftp_server.fingerprint
    return installation


def test_install_sftp_from_the_store(page, firm, sign_in, shot, sftp_server, make_document):
    sign_in(page, firm["owner"])
    installation = install_sftp(page, shot, sftp_server)

    # The guide's path, from the server's root: where an approved invoice of a client lands.
    company = firm["clients"][1]
    Integration.objects.create(client=company, installation=installation, categories=["purchase"])
    invoice = make_document(company, Document.Category.PURCHASE)
    release(invoice)
    tasks.deliver(installation.pk)  # what a worker runs for the release
    folder = sftp_server.root / "invoice_import"
    landed = [path.relative_to(folder) for path in folder.rglob("*") if path.is_file()]
    assert len(landed) == 1, landed
    assert landed[0].parts[0].startswith(f"{company.external_id}_")


@pytest.mark.parametrize("language", ["nl", "fr"])
def test_install_sftp_from_the_store_in_another_language(
    page, firm, sign_in, shot, sftp_server, language
):
    sign_in(page, firm["owner"])
    switch_language(page, language)
    shot(page, "dashboard")
    install_sftp(page, shot, sftp_server, language)
    expect(page.locator("html")).to_have_attribute("lang", language)
