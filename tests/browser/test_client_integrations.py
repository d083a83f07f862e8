"""A client's integrations in the browser: add SFTP, approve a document, see the export
arrive on a real SFTP server and on the tab; the Documents tab's history and Re-send."""

import pytest
from playwright.sync_api import expect

from clients.models import Document
from clients.release import release
from exports import tasks
from exports.models import ExportAttempt, ExportJob
from extensions.models import Integration
from tests.browser.flows import column, sftp_installation
from tests.peers.workers import wait_until

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
DELIVERY_TIMEOUT = 30.0


def uploaded(peer) -> list:
    return sorted(path for path in peer.root.rglob("*") if path.is_file())


def test_add_sftp_to_a_client_and_see_an_approved_invoice_exported(
    page, firm, sign_in, shot, sftp_server, workers, make_document
):
    installation = sftp_installation(firm["partner"], sftp_server)
    company = firm["clients"][1]
    invoice = make_document(company, Document.Category.PURCHASE, number="INV-2026-0042")
    workers(1)
    sign_in(page, firm["owner"])

    page.locator("#app-launcher summary").click()
    page.locator("#app-launcher").get_by_role("link", name="Clients").click()
    shot(page, "clients")
    page.locator("tr[data-href]", has_text=company.name).dblclick()
    expect(page.get_by_role("heading", level=1)).to_have_text(company.name)
    page.get_by_role("navigation", name="Client").get_by_role("link", name="Integrations").click()
    shot(page, "integrations-empty")
    page.get_by_role("link", name="Add integration").click()
    page.locator(".choices li", has_text=installation.name).get_by_role(
        "link", name="Choose"
    ).click()
    shot(page, "integration-form")
    page.get_by_role("button", name="Save configuration").click()
    table = page.locator("table.table")
    row = table.locator("tbody tr", has_text=installation.name)
    expect(row).to_be_visible()
    shot(page, "integration-added")

    page.get_by_role("navigation", name="Client").get_by_role("link", name="Documents").click()
    page.locator("tbody tr", has_text=invoice.number).get_by_role("button", name="Approve").click()
    shot(page, "approved")
    wait_until(
        lambda: ExportJob.objects.filter(
            document=invoice, status=ExportJob.Status.DELIVERED
        ).exists(),
        DELIVERY_TIMEOUT,
        "the approved invoice delivered by the worker",
    )
    assert len(uploaded(sftp_server)) == 1

    page.get_by_role("navigation", name="Client").get_by_role("link", name="Integrations").click()
    table = page.locator("table.table")
    row = table.locator("tbody tr", has_text=installation.name)
    expect(row.locator("td").nth(column(table, "Delivered"))).to_have_text("1")
    expect(row.locator("td").nth(column(table, "Last export"))).not_to_have_text("—")
    shot(page, "exported")


def test_documents_tab_shows_the_history_and_re_sends(
    page, firm, sign_in, shot, sftp_server, workers, make_document
):
    installation = sftp_installation(firm["partner"], sftp_server)
    company = firm["clients"][1]
    Integration.objects.create(
        client=company, installation=installation, categories=["purchase", "sales"]
    )
    invoice = make_document(company, Document.Category.PURCHASE, number="INV-2026-0043")
    release(invoice)
    tasks.deliver(installation.pk)  # what a worker runs for the release
    job = ExportJob.objects.get(document=invoice)
    assert job.status == ExportJob.Status.DELIVERED
    workers(1)

    sign_in(page, firm["owner"])
    page.goto(company.get_absolute_url())
    page.get_by_role("navigation", name="Client").get_by_role("link", name="Documents").click()
    history = page.locator("tbody tr", has_text=invoice.number).get_by_role("list", name="Exports")
    expect(history).to_contain_text(f"{installation.name}: Delivered")
    expect(history).to_contain_text(job.remote_reference)
    shot(page, "history")

    history.get_by_role("button", name="Re-send").click()
    expect(page.locator(".messages")).to_contain_text("will be sent again to")
    shot(page, "re-send-asked")
    wait_until(
        lambda: (
            ExportAttempt.objects.filter(job=job).count() == 2
            and ExportJob.objects.get(pk=job.pk).status == ExportJob.Status.DELIVERED
        ),
        DELIVERY_TIMEOUT,
        "the re-sent invoice delivered again by the worker",
    )
    page.reload()
    history = page.locator("tbody tr", has_text=invoice.number).get_by_role("list", name="Exports")
    expect(history).to_contain_text(f"{installation.name}: Delivered")
    expect(history.get_by_role("button", name="Re-send")).to_be_visible()
    shot(page, "re-sent")
