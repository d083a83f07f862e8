"""clients.ubl: the official Peppol examples parse; hostile and broken files are refused."""

import contextlib
import datetime
import random
import socket
import time
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree

from clients import ubl
from clients.errors import IntakeError

EXAMPLES = Path(__file__).resolve().parents[2] / "shared" / "peppol" / "examples"
# No skipping: a missing directory yields a path that fails to open.
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.xml")) or [EXAMPLES / "missing.xml"]
NS = {"cbc": ubl.NS["cbc"], "cac": ubl.NS["cac"]}


def example(name: str) -> bytes:
    return (EXAMPLES / name).read_bytes()


def refused(data: bytes, **kwargs) -> list[str]:
    with pytest.raises(IntakeError) as info:
        ubl.parse(data, **kwargs)
    return info.value.problems


def without(data: bytes, *paths: str) -> bytes:
    """The document with every element matching each path (from the root) removed."""
    root = etree.fromstring(data)
    for path in paths:
        nodes = root.findall(path, NS)
        assert nodes, f"{path} not in the document: the test would prove nothing"
        for node in nodes:
            node.getparent().remove(node)
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def replaced(data: bytes, old: str, new: str) -> bytes:
    text = data.decode("utf-8")
    assert old in text
    return text.replace(old, new, 1).encode("utf-8")


def with_doctype(doctype: str, body: str = "<Invoice>&x;</Invoice>") -> bytes:
    return f'<?xml version="1.0" encoding="UTF-8"?>\n{doctype}\n{body}'.encode()


# -- the official examples ----------------------------------------------------------------


def test_the_nine_official_examples_are_there():
    assert len(list(EXAMPLES.glob("*.xml"))) == 9, EXAMPLES


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_every_official_example_parses(path):
    data = path.read_bytes()
    tree = etree.fromstring(data)
    parsed = ubl.parse(data)

    is_credit_note = etree.QName(tree).localname == "CreditNote"
    assert parsed.kind == ("credit_note" if is_credit_note else "invoice")
    assert parsed.number == tree.findtext("cbc:ID", namespaces=NS).strip()
    assert parsed.currency == tree.findtext("cbc:DocumentCurrencyCode", namespaces=NS)
    assert parsed.payable_amount == Decimal(
        tree.findtext("cac:LegalMonetaryTotal/cbc:PayableAmount", namespaces=NS)
    )
    line = "cac:CreditNoteLine" if is_credit_note else "cac:InvoiceLine"
    assert parsed.line_count == len(tree.findall(line, NS)) > 0
    assert parsed.customization_id.startswith("urn:cen.eu:en16931:2017")
    assert parsed.supplier.name and parsed.customer.name


def test_base_example_values():
    parsed = ubl.parse(example("base-example.xml"))

    assert parsed.kind == "invoice"
    assert parsed.number == "Snippet1"
    assert parsed.issue_date == datetime.date(2017, 11, 13)
    assert parsed.due_date == datetime.date(2017, 12, 1)
    assert parsed.type_code == "380"
    assert parsed.currency == "EUR"
    assert parsed.profile_id == "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"
    assert parsed.buyer_reference == "0150abc"
    assert parsed.total_without_tax == Decimal("1325")
    assert parsed.tax_total == Decimal("331.25")
    assert parsed.payable_amount == Decimal("1656.25")
    assert parsed.line_count == 2

    assert parsed.supplier == ubl.Party(
        name="SupplierOfficialName Ltd",
        identifiers=("9482348239847239874", "99887766", "GB1232434", "GB983294"),
        enterprise_numbers=frozenset(),
        vat_number="GB1232434",
    )
    assert parsed.customer.name == "Buyer Official Name"
    assert parsed.customer.identifiers == ("FR23342", "SE4598375937", "39937423947")
    assert parsed.customer.vat_number == "SE4598375937"


def test_tax_total_is_the_one_in_the_document_currency():
    # Allowance-example has a second TaxTotal of 9324.00 SEK (the tax currency).
    parsed = ubl.parse(example("Allowance-example.xml"))
    assert parsed.currency == "EUR"
    assert parsed.tax_total == Decimal("1225.00")

    # Put the SEK total first: the EUR one is still chosen.
    root = etree.fromstring(example("Allowance-example.xml"))
    eur, sek = root.findall("cac:TaxTotal", NS)
    eur.addprevious(sek)
    reordered = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    assert ubl.parse(reordered).tax_total == Decimal("1225.00")


def test_credit_note_example():
    parsed = ubl.parse(example("base-creditnote-correction.xml"))
    assert parsed.kind == "credit_note"
    assert parsed.type_code == "381"
    assert parsed.number == "Snippet1"
    assert parsed.line_count == 2
    assert parsed.due_date is None
    assert parsed.payable_amount == Decimal("1656.25")


def test_belgian_parties_get_their_enterprise_numbers():
    data = example("base-example.xml")
    # Supplier: Peppol endpoint under scheme 0208, a Belgian VAT number.
    data = replaced(
        data,
        '<cbc:EndpointID schemeID="0088">9482348239847239874</cbc:EndpointID>',
        '<cbc:EndpointID schemeID="0208">0403.170.701</cbc:EndpointID>',
    )
    data = replaced(
        data,
        "<cbc:CompanyID>GB1232434</cbc:CompanyID>",
        "<cbc:CompanyID>BE 0202.239.951</cbc:CompanyID>",
    )
    # Customer: a bare valid number, a bare number with a bad checksum, and a valid-looking
    # number under a foreign scheme (Norwegian 0192), which is not Belgian.
    data = replaced(
        data,
        '<cbc:ID schemeID="0002">FR23342</cbc:ID>',
        "<cbc:ID>0417497106</cbc:ID></cac:PartyIdentification>"
        "<cac:PartyIdentification><cbc:ID>0417497107</cbc:ID></cac:PartyIdentification>"
        '<cac:PartyIdentification><cbc:ID schemeID="0192">0123456749</cbc:ID>',
    )
    # Customer has no RegistrationName: the trading name is used.
    data = replaced(data, "<cbc:RegistrationName>Buyer Official Name</cbc:RegistrationName>", "")
    # Due date only in PaymentMeans (the credit note way).
    data = replaced(data, "<cbc:DueDate>2017-12-01</cbc:DueDate>", "")
    data = replaced(
        data,
        "<cbc:PaymentID>Snippet1</cbc:PaymentID>",
        "<cbc:PaymentDueDate>2017-12-15</cbc:PaymentDueDate><cbc:PaymentID>Snippet1</cbc:PaymentID>",
    )

    parsed = ubl.parse(data)

    assert parsed.supplier.enterprise_numbers == {"0403170701", "0202239951"}
    assert parsed.supplier.vat_number == "BE 0202.239.951"
    assert parsed.supplier.identifiers[:1] == ("0403.170.701",)
    assert parsed.customer.enterprise_numbers == {"0417497106"}
    assert "0417497107" in parsed.customer.identifiers
    assert "0123456749" in parsed.customer.identifiers
    assert parsed.customer.name == "BuyerTradingName AS"
    assert parsed.due_date == datetime.date(2017, 12, 15)


def test_declared_latin1_is_read_as_latin1():
    data = example("base-example.xml").decode("utf-8")
    data = data.replace('encoding="UTF-8"', 'encoding="ISO-8859-1"')
    data = data.replace("SupplierOfficialName Ltd", "Société Générale")
    assert ubl.parse(data.encode("latin-1")).supplier.name == "Société Générale"


# -- hostile files ------------------------------------------------------------------------


def assert_doctype_refused(problems):
    assert len(problems) == 1
    assert "DOCTYPE" in problems[0]


def test_xxe_file_content_never_appears(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-8f3a")
    data = replaced(
        example("base-example.xml"),
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<!DOCTYPE Invoice [<!ENTITY xxe SYSTEM "{secret.as_uri()}">]>',
    )
    data = replaced(data, "<cbc:ID>Snippet1</cbc:ID>", "<cbc:ID>&xxe;</cbc:ID>")

    with pytest.raises(IntakeError) as info:
        ubl.parse(data)

    assert_doctype_refused(info.value.problems)
    assert "TOP-SECRET" not in str(info.value)
    assert "TOP-SECRET" not in repr(info.value.args)


def test_xxe_in_utf16_and_utf32_is_refused_too(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-8f3a")
    text = (
        '<?xml version="1.0"?>\n'
        f'<!DOCTYPE Invoice [<!ENTITY xxe SYSTEM "{secret.as_uri()}">]>\n'
        "<Invoice>&xxe;</Invoice>"
    )
    for encoding in ("utf-16", "utf-16-be", "utf-32", "utf-32-be"):
        with pytest.raises(IntakeError) as info:
            ubl.parse(text.encode(encoding))
        assert_doctype_refused(info.value.problems)
        assert "TOP-SECRET" not in str(info.value)


BILLION_LAUGHS = with_doctype(
    '<!DOCTYPE lolz [<!ENTITY lol "lol">'
    + "".join(
        f'<!ENTITY lol{i} "{("&lol%s;" % ("" if i == 1 else i - 1)) * 10}">' for i in range(1, 10)
    )
    + "]>",
    "<lolz>&lol9;</lolz>",
)


def test_billion_laughs_is_refused_quickly_and_never_expanded():
    start = time.perf_counter()
    with pytest.raises(IntakeError) as info:
        ubl.parse(BILLION_LAUGHS)
    elapsed = time.perf_counter() - start

    assert elapsed < 1.0
    assert_doctype_refused(info.value.problems)
    assert "lollol" not in str(info.value)


def test_external_dtd_is_refused_without_any_connection():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        server.settimeout(0.2)
        port = server.getsockname()[1]
        data = replaced(
            example("base-example.xml"),
            '<?xml version="1.0" encoding="UTF-8"?>',
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            f'<!DOCTYPE Invoice SYSTEM "http://127.0.0.1:{port}/invoice.dtd">',
        )

        assert_doctype_refused(refused(data))
        with pytest.raises(TimeoutError):
            server.accept()  # nobody knocked


def test_a_valid_invoice_with_a_harmless_doctype_is_still_refused():
    data = replaced(
        example("base-example.xml"),
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<?xml version="1.0" encoding="UTF-8"?>\n<!DOCTYPE Invoice>',
    )
    assert_doctype_refused(refused(data))


def test_wrong_root_names_what_was_found_and_what_is_expected():
    data = b'<Order xmlns="urn:oasis:names:specification:ubl:schema:xsd:Order-2"><a/></Order>'
    (problem,) = refused(data)
    assert "Order" in problem
    assert "urn:oasis:names:specification:ubl:schema:xsd:Order-2" in problem
    assert "Invoice" in problem and ubl.INVOICE_NS in problem
    assert "CreditNote" in problem and ubl.CREDIT_NOTE_NS in problem


def test_invoice_without_its_namespace_is_the_wrong_root():
    data = example("base-example.xml").replace(
        b'xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"', b""
    )
    (problem,) = refused(data)
    assert problem.startswith("The root element is Invoice in namespace (none);")


def test_truncated_file_reports_the_line():
    data = example("base-example.xml")
    cut = data.index(b"<cac:LegalMonetaryTotal>")
    truncated = data[:cut]

    (problem,) = refused(truncated)

    last_line = truncated.count(b"\n") + 1
    assert problem.startswith("The file is not well-formed XML")
    assert f"(line {last_line})" in problem


def test_mismatched_tag_reports_its_line():
    (problem,) = refused(b"<Invoice>\n<a>\n</b>\n</Invoice>")
    assert problem.startswith("The file is not well-formed XML (line 3)")


def test_empty_file():
    assert refused(b"") == ["The file is empty."]
    assert refused(b" \r\n") == ["The file is empty."]


def test_file_over_the_limit_is_refused_before_parsing():
    data = b"<" + b"x" * (512 * 1024)  # not even XML: the size is checked first

    (problem,) = refused(data, max_bytes=512 * 1024)

    assert "0.5 MB limit" in problem
    assert ubl.parse(example("base-example.xml"), max_bytes=512 * 1024).number == "Snippet1"


def test_default_limit_comes_from_settings(settings):
    settings.INTAKE_MAX_BYTES = 1024
    (problem,) = refused(example("base-example.xml"))
    assert "0.000977 MB limit" in problem


def test_declared_utf8_with_latin1_bytes():
    text = example("base-example.xml").decode("utf-8")
    text = text.replace("SupplierOfficialName Ltd", "Société Générale")
    data = text.encode("latin-1")
    line = text[: text.index("Société")].count("\n") + 1

    (problem,) = refused(data)

    assert problem.startswith(f"The file is not valid UTF-8 text (line {line})")


def test_unsupported_declared_encoding():
    data = replaced(example("base-example.xml"), 'encoding="UTF-8"', 'encoding="X-KLINGON"')
    (problem,) = refused(data)
    assert problem.startswith("The file is not valid X-KLINGON text (line 1)")


def test_not_xml_at_all():
    (problem,) = refused(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n")
    assert problem.startswith("The file is not well-formed XML (line 1)")


def test_random_damage_never_escapes_as_anything_but_intake_error():
    data = example("base-example.xml")
    rng = random.Random(20240611)
    for _ in range(300):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 5)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        damaged = bytes(damaged[: rng.randrange(len(damaged) + 1)])
        try:
            ubl.parse(damaged)
        except IntakeError as exc:
            assert exc.problems and all(isinstance(p, str) and p for p in exc.problems)
    for _ in range(100):
        with contextlib.suppress(IntakeError):
            ubl.parse(rng.randbytes(rng.randrange(1, 500)))


# -- Peppol BIS 3.0 mandatory elements ----------------------------------------------------


def test_one_message_per_missing_mandatory_element():
    data = without(
        example("base-example.xml"),
        "cbc:CustomizationID",
        "cbc:IssueDate",
        "cbc:InvoiceTypeCode",
        "cbc:DocumentCurrencyCode",
        "cac:AccountingSupplierParty/cac:Party/cac:PartyLegalEntity/cbc:RegistrationName",
        "cac:AccountingSupplierParty/cac:Party/cac:PartyName",
        "cac:AccountingCustomerParty",
        "cac:TaxTotal/cbc:TaxAmount",
        "cac:LegalMonetaryTotal/cbc:TaxExclusiveAmount",
        "cac:LegalMonetaryTotal/cbc:PayableAmount",
        "cac:InvoiceLine",
    )

    assert refused(data) == [
        "cbc:CustomizationID is missing",
        "cbc:IssueDate is missing",
        "cbc:InvoiceTypeCode is missing",
        "cbc:DocumentCurrencyCode is missing",
        "cac:AccountingSupplierParty/cac:Party/cac:PartyLegalEntity/cbc:RegistrationName"
        " is missing",
        "cac:AccountingCustomerParty is missing",
        "cac:TaxTotal/cbc:TaxAmount is missing",
        "cac:LegalMonetaryTotal/cbc:TaxExclusiveAmount is missing",
        "cac:LegalMonetaryTotal/cbc:PayableAmount is missing",
        "cac:InvoiceLine is missing",
    ]


def test_missing_container_is_one_message_not_one_per_child():
    data = without(
        example("base-example.xml"), "cbc:ProfileID", "cbc:ID", "cac:LegalMonetaryTotal"
    )
    assert refused(data) == [
        "cbc:ProfileID is missing",
        "cbc:ID is missing",
        "cac:LegalMonetaryTotal is missing",
    ]


def test_empty_mandatory_element():
    data = replaced(example("base-example.xml"), "<cbc:ID>Snippet1</cbc:ID>", "<cbc:ID> </cbc:ID>")
    assert refused(data) == ["cbc:ID is empty"]


def test_credit_note_needs_its_own_type_code_and_lines():
    data = without(
        example("base-creditnote-correction.xml"), "cbc:CreditNoteTypeCode", "cac:CreditNoteLine"
    )
    assert refused(data) == ["cbc:CreditNoteTypeCode is missing", "cac:CreditNoteLine is missing"]


def test_unparseable_dates_and_amounts_name_the_element():
    data = example("base-example.xml")
    data = replaced(data, "<cbc:IssueDate>2017-11-13<", "<cbc:IssueDate>13/11/2017<")
    data = replaced(data, "<cbc:DueDate>2017-12-01<", "<cbc:DueDate>2017-02-30<")
    data = replaced(data, ">1656.25</cbc:PayableAmount>", ">1.656,25</cbc:PayableAmount>")
    data = replaced(data, '"EUR">331.25</cbc:TaxAmount>', '"EUR">NaN</cbc:TaxAmount>')
    data = replaced(data, ">1325</cbc:TaxExclusiveAmount>", ">1e3</cbc:TaxExclusiveAmount>")

    assert refused(data) == [
        "cbc:IssueDate is not a date (YYYY-MM-DD): '13/11/2017'",
        "cbc:DueDate is not a date (YYYY-MM-DD): '2017-02-30'",
        "cac:TaxTotal/cbc:TaxAmount is not an amount: 'NaN'",
        "cac:LegalMonetaryTotal/cbc:TaxExclusiveAmount is not an amount: '1e3'",
        "cac:LegalMonetaryTotal/cbc:PayableAmount is not an amount: '1.656,25'",
    ]


def test_long_bad_values_are_shortened_in_messages():
    data = replaced(
        example("base-example.xml"),
        "<cbc:IssueDate>2017-11-13<",
        "<cbc:IssueDate>" + "x" * 5000 + "<",
    )
    (problem,) = refused(data)
    assert problem.startswith("cbc:IssueDate is not a date")
    assert len(problem) < 120


# -- sniffing -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b'<?xml version="1.0"?><Invoice/>', True),
        (b"\xef\xbb\xbf\r\n  <Invoice/>", True),
        ("\ufeff\n<Invoice/>".encode("utf-16-le"), True),
        ("\ufeff<Invoice/>".encode("utf-16-be"), True),
        (b"0000018011520105        0938409934CODELUFFEIDS", False),
        (b"%PDF-1.7", False),
        (b"", False),
        (b"   ", False),
    ],
)
def test_looks_like_xml(data, expected):
    assert ubl.looks_like_xml(data) is expected


def test_every_example_looks_like_xml():
    assert all(ubl.looks_like_xml(path.read_bytes()) for path in EXAMPLE_FILES)
