"""The document page shows a UBL invoice or credit note as people read it, and hands out the
files embedded in it as downloads, never as pages of the portal."""

import base64
import datetime
import re
from decimal import Decimal

import pytest
from django.urls import reverse
from lxml import etree

from clients import ubl
from clients.demo import Line, demo_companies, invoice_xml
from tests.peppol_examples import example_files, file_id

pytestmark = pytest.mark.django_db

COMPANIES = demo_companies()
SUPPLIER = COMPANIES["suppliers"][0]
CUSTOMER = COMPANIES["clients"][0]
LINES = [
    Line("Bloem type 55, zak 25 kg", Decimal("40"), Decimal("18.75"), Decimal("6")),
    Line("Onderhoud oven", Decimal("2.5"), Decimal("65.00"), Decimal("21"), "HUR"),
    Line("Kassasysteem", Decimal("1"), Decimal("15800.00"), Decimal("21")),
]


def _invoice(**kwargs) -> bytes:
    defaults = {
        "number": "F2026-0042",
        "issue_date": datetime.date(2026, 3, 4),
        "supplier": SUPPLIER,
        "customer": CUSTOMER,
        "lines": LINES,
        "buyer_reference": "PO-7781",
    }
    return invoice_xml(**{**defaults, **kwargs})


def _page(client, document, **headers):
    url = reverse("clients:document_detail", args=[document.client.pk, document.pk])
    response = client.get(url, **headers)
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def _with_attachment(data: bytes, content: bytes, mime: str, filename: str) -> bytes:
    root = etree.fromstring(data)
    reference = etree.Element(f"{{{ubl.NS['cac']}}}AdditionalDocumentReference")
    etree.SubElement(reference, f"{{{ubl.NS['cbc']}}}ID").text = "ATT-1"
    etree.SubElement(reference, f"{{{ubl.NS['cbc']}}}DocumentDescription").text = "Timesheet"
    attachment = etree.SubElement(reference, f"{{{ubl.NS['cac']}}}Attachment")
    binary = etree.SubElement(attachment, f"{{{ubl.NS['cbc']}}}EmbeddedDocumentBinaryObject")
    binary.set("mimeCode", mime)
    binary.set("filename", filename)
    binary.text = base64.b64encode(content).decode()
    root.find("cac:AccountingSupplierParty", ubl.NS).addprevious(reference)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


@pytest.fixture
def owner(client, firm):
    client.force_login(firm["owner"])
    return client


def test_the_page_shows_parties_lines_vat_and_totals(owner, firm, make_document):
    document = make_document(firm["clients"][0], data=_invoice())
    body = _page(owner, document, HTTP_ACCEPT_LANGUAGE="en")
    for expected in (
        SUPPLIER.name,
        SUPPLIER.vat_number,
        SUPPLIER.street,
        f"{SUPPLIER.postcode} {SUPPLIER.city}",
        CUSTOMER.name,
        CUSTOMER.vat_number,
        "F2026-0042",
        "4 March 2026",
        "3 April 2026",  # due 30 days later
        "PO-7781",
        "Bloem type 55, zak 25 kg",
        "2.5 hours",
        "65.00 EUR",
        "162.50 EUR",
        "15,800.00 EUR",
        SUPPLIER.iban,
    ):
        assert expected in body, expected
    # VAT breakdown: 6 % on 750.00, 21 % on 15,962.50.
    assert re.search(
        r"6 %</td>\s*<td class=\"num\">750.00 EUR</td>\s*<td class=\"num\">45.00 EUR", body
    )
    assert re.search(
        r"21 %</td>\s*<td class=\"num\">15,962.50 EUR</td>\s*<td class=\"num\">3,352.13 EUR", body
    )
    assert "Standard rate" in body
    assert "16,712.50 EUR" in body  # net
    assert "20,109.63 EUR" in body  # payable


def test_the_documents_tab_links_to_the_page(owner, firm, make_document):
    document = make_document(firm["clients"][0], data=_invoice())
    tab = owner.get(reverse("clients:documents", args=[document.client.pk])).content.decode()
    assert reverse("clients:document_detail", args=[document.client.pk, document.pk]) in tab


def test_in_dutch_amounts_are_belgian(owner, firm, make_document):
    lines = [Line("Renovatie", Decimal("1"), Decimal("16523.09"), Decimal("0"))]
    document = make_document(firm["clients"][0], data=_invoice(lines=lines))
    body = _page(owner, document, HTTP_ACCEPT_LANGUAGE="nl")
    assert "16.523,09 EUR" in body
    assert "16,523.09" not in body


def test_a_credit_note(owner, firm, make_document):
    data = _invoice(number="CN-7", credit_note_for="F2026-0042")
    document = make_document(firm["clients"][0], data=data)
    body = _page(owner, document, HTTP_ACCEPT_LANGUAGE="en")
    assert "Credit note" in body
    assert "CN-7" in body and "F2026-0042" in body  # the invoice it corrects
    assert "Kassasysteem" in body
    assert "20,109.63 EUR" in body


def test_text_of_the_invoice_is_escaped(owner, firm, make_document):
    lines = [Line("<script>alert(1)</script>", Decimal("1"), Decimal("10"), Decimal("21"))]
    document = make_document(firm["clients"][0], data=_invoice(lines=lines))
    body = _page(owner, document)
    assert "<script>alert(1)" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body


def test_absent_optional_values_show_nothing(owner, firm, make_document):
    root = etree.fromstring(_invoice())
    for path in ("cbc:DueDate", "cbc:BuyerReference", "cac:PaymentMeans", "cac:PaymentTerms"):
        node = root.find(path, ubl.NS)
        node.getparent().remove(node)
    address = root.find("cac:AccountingSupplierParty/cac:Party/cac:PostalAddress", ubl.NS)
    address.getparent().remove(address)
    document = make_document(firm["clients"][0], data=etree.tostring(root))
    body = _page(owner, document, HTTP_ACCEPT_LANGUAGE="en")
    assert SUPPLIER.name in body and "Kassasysteem" in body
    assert "Due date" not in body and "IBAN" not in body and SUPPLIER.street not in body


def test_a_file_that_is_not_ubl_still_has_a_page(owner, firm, make_document):
    document = make_document(firm["clients"][0], data=b"<Invoice>broken")
    body = _page(owner, document, HTTP_ACCEPT_LANGUAGE="en")
    assert "cannot be shown as an invoice" in body


def test_an_embedded_attachment_downloads_with_its_name_and_type(owner, firm, make_document):
    pdf = b"%PDF-1.4 timesheet"
    data = _with_attachment(_invoice(), pdf, "application/pdf", "uren-maart.pdf")
    document = make_document(firm["clients"][0], data=data)
    body = _page(owner, document, HTTP_ACCEPT_LANGUAGE="en")
    assert "uren-maart.pdf" in body and "Timesheet" in body
    url = reverse("clients:document_attachment", args=[document.client.pk, document.pk])
    assert f"{url}?n=1" in body
    response = owner.get(url, {"n": 1})
    assert response.status_code == 200
    assert response.content == pdf
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == 'attachment; filename="uren-maart.pdf"'
    assert owner.get(url, {"n": 2}).status_code == 404


@pytest.mark.parametrize(
    ("mime", "filename"), [("text/html", "invoice.html"), ("image/svg+xml", "logo.svg")]
)
def test_an_html_attachment_is_a_download_not_a_page(owner, firm, make_document, mime, filename):
    payload = b"<html><script>alert(document.cookie)</script></html>"
    data = _with_attachment(_invoice(), payload, mime, f"../../{filename}")
    document = make_document(firm["clients"][0], data=data)
    url = reverse("clients:document_attachment", args=[document.client.pk, document.pk])
    response = owner.get(url, {"n": 1})
    assert response.status_code == 200
    assert response["Content-Type"] == "application/octet-stream"
    assert response["Content-Disposition"] == f'attachment; filename="{filename}"'
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response.content == payload


def test_another_firms_document_is_a_404(client, firm, make_document):
    data = _with_attachment(_invoice(), b"x", "text/plain", "a.txt")
    document = make_document(firm["clients"][0], data=data)
    client.force_login(firm["outsider"])
    args = [document.client.pk, document.pk]
    assert client.get(reverse("clients:document_detail", args=args)).status_code == 404
    url = reverse("clients:document_attachment", args=args)
    assert client.get(url, {"n": 1}).status_code == 404


def test_a_statement_keeps_its_summary(owner, firm):
    statement = firm["documents"][2]
    body = _page(owner, statement, HTTP_ACCEPT_LANGUAGE="en")
    assert "cannot be shown as an invoice" not in body
    assert reverse("clients:document_download", args=[statement.client.pk, statement.pk]) in body


@pytest.mark.parametrize("path", example_files(), ids=file_id)
def test_the_official_examples_read(owner, firm, make_document, peppol_examples, path):
    data = path.read_bytes()
    parsed = ubl.parse(data)
    document = make_document(firm["clients"][0], data=data)
    body = _page(owner, document, HTTP_ACCEPT_LANGUAGE="en")
    shown = ubl.display(data)
    assert shown.lines and shown.vat
    for expected in (parsed.supplier.name, parsed.customer.name, parsed.number):
        assert expected in body, expected
    for line in shown.lines:
        assert line.name in body, line.name
    assert f"{parsed.payable_amount:,.2f} {parsed.currency}" in body
    assert f"{parsed.tax_total:,.2f} {parsed.currency}" in body
