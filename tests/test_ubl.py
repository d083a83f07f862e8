"""clients.ubl: generated and official invoices parse; hostile and broken files are refused.

The hostile and broken files are made from invoices the project generates itself
(``clients.demo.invoice_xml``). The official Peppol BIS 3.0 examples are read only when
``PEPPOL_EXAMPLES_DIR`` names them (see ``tests/peppol_examples.py``).
"""

import contextlib
import copy
import datetime
import random
import socket
import time
from decimal import Decimal

import pytest
from lxml import etree

from clients import demo, ubl
from clients.errors import IntakeError
from tests.peppol_examples import example_files, file_id

NS = {"cbc": ubl.NS["cbc"], "cac": ubl.NS["cac"]}

COMPANIES = demo.demo_companies()
SUPPLIER, CUSTOMER = COMPANIES["suppliers"][0], COMPANIES["clients"][0]
# 10 hours at 100.00 plus 5 at 65.00: 1325.00 at 21 %, VAT 278.25, payable 1603.25.
LINES = (
    demo.Line("Consultancy", Decimal("10"), Decimal("100.00"), Decimal("21"), "HUR"),
    demo.Line("Kantoormateriaal", Decimal("5"), Decimal("65.00"), Decimal("21")),
)
INVOICE = demo.invoice_xml(
    number="FV-2025-0001",
    issue_date=datetime.date(2025, 1, 31),
    supplier=SUPPLIER,
    customer=CUSTOMER,
    lines=LINES,
    buyer_reference="PO-4711",
)
CREDIT_NOTE = demo.invoice_xml(
    number="CN-2025-0001",
    issue_date=datetime.date(2025, 2, 10),
    supplier=SUPPLIER,
    customer=CUSTOMER,
    lines=LINES,
    credit_note_for="FV-2025-0001",
)
DECLARATION = "<?xml version='1.0' encoding='UTF-8'?>"  # as lxml writes it


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


def element(name: str, text: str | None = None, **attrs):
    """``cbc:ID`` -> a new element in that UBL namespace."""
    prefix, local = name.split(":")
    node = etree.Element(f"{{{NS[prefix]}}}{local}", attrs)
    node.text = text
    return node


def found(parent, path: str):
    node = parent.find(path, NS)
    assert node is not None, f"{path} not in the document: the test would prove nothing"
    return node


# -- generated invoices -------------------------------------------------------------------


def test_generated_invoice_values():
    parsed = ubl.parse(INVOICE)

    assert parsed.kind == "invoice"
    assert parsed.number == "FV-2025-0001"
    assert parsed.issue_date == datetime.date(2025, 1, 31)
    assert parsed.due_date == datetime.date(2025, 3, 2)
    assert parsed.type_code == "380"
    assert parsed.currency == "EUR"
    assert parsed.customization_id == ubl.PEPPOL_BIS_3
    assert parsed.profile_id == demo.PROFILE_ID
    assert parsed.buyer_reference == "PO-4711"
    assert parsed.total_without_tax == Decimal("1325.00")
    assert parsed.tax_total == Decimal("278.25")
    assert parsed.payable_amount == Decimal("1603.25")
    assert parsed.line_count == 2

    assert parsed.supplier == ubl.Party(
        name=SUPPLIER.name,
        identifiers=(SUPPLIER.enterprise_number, SUPPLIER.vat_number),
        enterprise_numbers=frozenset({SUPPLIER.enterprise_number}),
        main_number=SUPPLIER.enterprise_number,
        vat_number=SUPPLIER.vat_number,
    )
    assert parsed.customer.name == CUSTOMER.name
    assert parsed.customer.enterprise_numbers == {CUSTOMER.enterprise_number}
    assert parsed.customer.main_number == CUSTOMER.enterprise_number


def test_generated_credit_note_values():
    parsed = ubl.parse(CREDIT_NOTE)
    assert parsed.kind == "credit_note"
    assert parsed.customization_id == ubl.PEPPOL_BIS_3
    assert parsed.type_code == "381"
    assert parsed.number == "CN-2025-0001"
    assert parsed.line_count == 2
    assert parsed.due_date == datetime.date(2025, 3, 12)  # PaymentMeans/PaymentDueDate
    assert parsed.payable_amount == Decimal("1603.25")


def test_tax_total_is_the_one_in_the_document_currency():
    # A second TaxTotal in the tax currency (SEK), put first: the EUR one is still chosen.
    root = etree.fromstring(INVOICE)
    sek = element("cac:TaxTotal")
    sek.append(element("cbc:TaxAmount", "2917.35", currencyID="SEK"))
    found(root, "cac:TaxTotal").addprevious(sek)
    data = etree.tostring(root, xml_declaration=True, encoding="UTF-8")

    assert ubl.parse(data).tax_total == Decimal("278.25")


def test_belgian_parties_get_their_enterprise_numbers():
    root = etree.fromstring(INVOICE)
    supplier = found(root, "cac:AccountingSupplierParty/cac:Party")
    customer = found(root, "cac:AccountingCustomerParty/cac:Party")
    # Supplier: Peppol endpoint under scheme 0208 written with dots, a Belgian VAT number
    # with a space and dots, and a foreign company id without any scheme.
    found(supplier, "cbc:EndpointID").text = "0403.170.701"
    found(supplier, "cac:PartyTaxScheme/cbc:CompanyID").text = "BE 0202.239.951"
    legal_id = found(supplier, "cac:PartyLegalEntity/cbc:CompanyID")
    legal_id.text = "GB983294"
    del legal_id.attrib["schemeID"]
    # Customer: a foreign endpoint, a bare valid number, a bare number with a bad checksum,
    # and a valid-looking number under a foreign scheme (Norwegian 0192), which is not
    # Belgian; foreign tax and legal ids.
    endpoint = found(customer, "cbc:EndpointID")
    endpoint.set("schemeID", "0088")
    endpoint.text = "7300010000001"
    for value, scheme in (
        ("0417497106", {}),
        ("0417497107", {}),
        ("0123456749", {"schemeID": "0192"}),
    ):
        identification = element("cac:PartyIdentification")
        identification.append(element("cbc:ID", value, **scheme))
        found(customer, "cac:PartyName").addprevious(identification)
    found(customer, "cac:PartyTaxScheme/cbc:CompanyID").text = "SE4598375937"
    legal_id = found(customer, "cac:PartyLegalEntity/cbc:CompanyID")
    legal_id.text = "39937423947"
    del legal_id.attrib["schemeID"]
    # Customer has no RegistrationName: the trading name is used.
    registration = found(customer, "cac:PartyLegalEntity/cbc:RegistrationName")
    registration.getparent().remove(registration)
    found(customer, "cac:PartyName/cbc:Name").text = "Peeters Trading"
    # Due date only in PaymentMeans (the credit note way).
    due_date = found(root, "cbc:DueDate")
    root.remove(due_date)
    found(root, "cac:PaymentMeans/cbc:PaymentID").addprevious(
        element("cbc:PaymentDueDate", "2025-03-15")
    )

    parsed = ubl.parse(etree.tostring(root, xml_declaration=True, encoding="UTF-8"))

    assert parsed.supplier.enterprise_numbers == {"0403170701", "0202239951"}
    assert parsed.supplier.main_number == "0403170701"  # the endpoint, not the smaller VAT
    assert parsed.supplier.vat_number == "BE 0202.239.951"
    assert parsed.supplier.identifiers == ("0403.170.701", "BE 0202.239.951", "GB983294")
    assert parsed.customer.enterprise_numbers == {"0417497106"}
    assert parsed.customer.main_number == "0417497106"
    assert parsed.customer.identifiers == (
        "7300010000001", "0417497106", "0417497107", "0123456749", "SE4598375937",
        "39937423947",
    )  # fmt: skip
    assert parsed.customer.vat_number == "SE4598375937"
    assert parsed.customer.name == "Peeters Trading"
    assert parsed.due_date == datetime.date(2025, 3, 15)


def test_declared_latin1_is_read_as_latin1():
    data = INVOICE.decode("utf-8")
    data = data.replace("encoding='UTF-8'", "encoding='ISO-8859-1'")
    data = data.replace(SUPPLIER.name, "Société Générale")
    assert ubl.parse(data.encode("latin-1")).supplier.name == "Société Générale"


def test_generated_invoices_look_like_xml():
    assert ubl.looks_like_xml(INVOICE) and ubl.looks_like_xml(CREDIT_NOTE)


# -- profiles -----------------------------------------------------------------------------

ACCEPTED = f"Peppol BIS Billing 3.0 ({ubl.PEPPOL_BIS_3}) and UBL.BE ({ubl.UBL_BE})"


def with_profile(data: bytes, customization_id: str | None, ubl_version: str | None = None):
    """The document with this CustomizationID (None: without one) and UBLVersionID."""
    root = etree.fromstring(data)
    node = found(root, "cbc:CustomizationID")
    if ubl_version is not None:
        node.addprevious(element("cbc:UBLVersionID", ubl_version))
    if customization_id is None:
        root.remove(node)
    else:
        node.text = customization_id
    return etree.tostring(root, xml_declaration=True, encoding="UTF-8")


def broken(data: bytes) -> bytes:
    """Two problems that an accepted profile reports: refusals that list nothing else prove
    the profile was checked alone."""
    data = replaced(data, "<cbc:IssueDate>", "<cbc:IssueDate>not a date ")
    return without(data, "cac:LegalMonetaryTotal")


def test_broken_has_two_problems_under_an_accepted_profile():
    assert len(refused(broken(INVOICE))) == 2


@pytest.mark.parametrize(
    ("document", "customization_id", "family"),
    [
        (
            INVOICE,
            "urn:www.cenbii.eu:transaction:biitrns010:ver2.0:extended:"
            "urn:www.peppol.eu:bis:peppol4a:ver2.0",
            "Peppol BIS 2",
        ),
        (
            CREDIT_NOTE,
            "urn:www.cenbii.eu:transaction:biitrns014:ver2.0:extended:"
            "urn:www.peppol.eu:bis:peppol5a:ver2.0",
            "Peppol BIS 2",
        ),
        (
            INVOICE,
            "urn:www.cenbii.eu:transaction:biicoretrdm010:ver1.0:"
            "#urn:www.peppol.eu:bis:peppol4a:ver1.0",
            "Peppol BIS 1",
        ),
        (INVOICE, "urn:www.cenbii.eu:transaction:biitrns010:ver2.0", "CEN BII"),
        (
            INVOICE,
            "urn:www.cenbii.eu:transaction:biitrns010:ver2.0:extended:"
            "urn:www.peppol.eu:bis:peppol4a:ver2.0:extended:"
            "urn:www.simplerinvoicing.org:si:si-ubl:ver1.1.x",
            "SimplerInvoicing",
        ),
        (
            INVOICE,
            "urn:cen.eu:en16931:2017#compliant#urn:fdc:nen.nl:nlcius:v1.0",
            "NLCIUS",
        ),
        (INVOICE, "urn:peppol:pint:billing-1@jp-1", "Peppol PINT"),
        (
            INVOICE,
            "urn:cen.eu:en16931:2017#compliant#urn:xeinkauf.de:kosit:xrechnung_3.0",
            "XRechnung",
        ),
        (
            INVOICE,
            "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:selfbilling:3.0",
            "Peppol BIS Self-Billing",
        ),
        (INVOICE, "urn:cen.eu:en16931:2017", "EN 16931"),
        # Another version of UBL.BE, and the right one in the wrong case: compared exactly.
        (INVOICE, "urn:cen.eu:en16931:2017#conformant#urn:UBL.BE:1.0.0.20170613", "UBL.BE"),
        (INVOICE, ubl.UBL_BE.lower(), "UBL.BE"),
    ],
    ids=[
        "peppol-bis-2",
        "peppol-bis-2-credit-note",
        "peppol-bis-1",
        "cen-bii",
        "simplerinvoicing",
        "nlcius",
        "pint",
        "xrechnung",
        "self-billing",
        "en16931-alone",
        "ubl-be-other-version",
        "ubl-be-other-case",
    ],
)
def test_another_profile_is_refused_naming_it_and_nothing_else(document, customization_id, family):
    problems = refused(with_profile(broken(document), customization_id))

    assert problems == [
        f"This document follows the profile {customization_id} ({family}), which the portal "
        f"does not accept; it accepts {ACCEPTED}."
    ]


def test_dian_like_invoice_is_refused_for_its_profile_alone():
    # A Colombian DIAN invoice template: its CustomizationID is an operation type, and a
    # number that was never filled in.
    data = with_profile(INVOICE, "10", ubl_version="UBL 2.1")
    data = replaced(data, "<cbc:ID>FV-2025-0001<", "<cbc:ID>normalizedString<")
    data = replaced(data, "<cbc:IssueDate>2025-01-31<", "<cbc:IssueDate>normalizedString<")

    assert refused(data) == [
        f"This document follows the profile 10, which the portal does not accept; "
        f"it accepts {ACCEPTED}."
    ]


def test_ubl_20_invoice_is_refused_with_its_version():
    # Old Belgian e-FFF invoices: UBL 2.0 with a profile of their own, or none at all.
    data = with_profile(broken(INVOICE), "1.0", ubl_version="2.0")
    assert refused(data) == [
        f"This document follows the profile 1.0 (UBL 2.0), which the portal does not "
        f"accept; it accepts {ACCEPTED}."
    ]

    data = with_profile(broken(INVOICE), None, ubl_version=" 2.0 ")
    assert refused(data) == [
        "This document is UBL 2.0 and names no profile (cbc:CustomizationID); "
        f"the portal accepts {ACCEPTED}."
    ]


def test_ubl_20_with_an_accepted_profile_is_judged_by_its_profile():
    data = with_profile(INVOICE, ubl.PEPPOL_BIS_3, ubl_version="2.0")
    assert ubl.parse(data).number == "FV-2025-0001"


def test_missing_profile_in_ubl_21_is_one_problem_among_the_others():
    data = with_profile(broken(INVOICE), None, ubl_version="2.1")
    assert refused(data) == [
        "cbc:CustomizationID is missing",
        "cbc:IssueDate is not a date (YYYY-MM-DD): 'not a date 2025-01-31'",
        "cac:LegalMonetaryTotal is missing",
    ]


@pytest.mark.parametrize("document", [INVOICE, CREDIT_NOTE], ids=["invoice", "credit note"])
def test_ubl_be_is_accepted(document):
    assert ubl.parse(with_profile(document, ubl.UBL_BE)).customization_id == ubl.UBL_BE


def test_surrounding_whitespace_is_ignored():
    data = with_profile(INVOICE, f"\n    {ubl.PEPPOL_BIS_3}\t\n", ubl_version="2.1")
    assert ubl.parse(data).customization_id == ubl.PEPPOL_BIS_3


def test_profile_added_by_the_setting_is_accepted_and_named_in_refusals(settings):
    extra = "urn:cen.eu:en16931:2017#compliant#urn:fdc:nen.nl:nlcius:v1.0"
    settings.INTAKE_UBL_PROFILES = [f" {extra} ", ""]

    assert ubl.accepted_profiles() == {
        ubl.PEPPOL_BIS_3: "Peppol BIS Billing 3.0",
        ubl.UBL_BE: "UBL.BE",
        extra: extra,
    }
    assert ubl.parse(with_profile(INVOICE, extra)).customization_id == extra
    (problem,) = refused(with_profile(INVOICE, "urn:peppol:pint:billing-1"))
    assert problem.endswith(
        f"it accepts Peppol BIS Billing 3.0 ({ubl.PEPPOL_BIS_3}), UBL.BE ({ubl.UBL_BE}) "
        f"and {extra}."
    )


def test_setting_cannot_rename_an_accepted_profile(settings):
    settings.INTAKE_UBL_PROFILES = [ubl.UBL_BE]
    assert ubl.accepted_profiles()[ubl.UBL_BE] == "UBL.BE"


def test_hostile_profile_is_shown_on_one_line_and_shortened():
    value = "urn:www.cenbii.eu:\n" + "x" * 5000
    (problem,) = refused(with_profile(INVOICE, value))
    assert problem.startswith("This document follows the profile urn:www.cenbii.eu: xxx")
    assert "\n" not in problem
    assert "x" * 200 not in problem and "… (CEN BII)" in problem


# -- the party's main enterprise number ---------------------------------------------------


def enterprise(first_eight: str) -> str:
    """A valid enterprise number starting with these eight digits."""
    return f"{first_eight}{97 - int(first_eight) % 97:02d}"


A, B, C, D, E = (enterprise(f"0{digit}000001") for digit in (8, 7, 6, 2, 5))


def endpoint(value: str, scheme: str):
    return element("cbc:EndpointID", value, schemeID=scheme)


def legal_entity(value: str):
    node = element("cac:PartyLegalEntity")
    node.append(element("cbc:RegistrationName", SUPPLIER.name))
    node.append(element("cbc:CompanyID", value))
    return node


def identification(value: str):
    node = element("cac:PartyIdentification")
    node.append(element("cbc:ID", value))
    return node


def vat(value: str):
    node = element("cac:PartyTaxScheme")
    node.append(element("cbc:CompanyID", value))
    scheme = element("cac:TaxScheme")
    scheme.append(element("cbc:ID", "VAT"))
    node.append(scheme)
    return node


def supplier_with(*nodes) -> ubl.Party:
    """The supplier parsed with these identifying elements only, in this document order."""
    root = etree.fromstring(INVOICE)
    party = found(root, "cac:AccountingSupplierParty/cac:Party")
    for path in ("cbc:EndpointID", "cac:PartyTaxScheme", "cac:PartyLegalEntity"):
        party.remove(found(party, path))
    for node in reversed(nodes):
        party.insert(0, copy.deepcopy(node))  # parameters stay intact for another run
    return ubl.parse(etree.tostring(root)).supplier


def test_main_number_is_the_0208_endpoint_even_after_a_smaller_vat_number():
    party = supplier_with(vat(f"BE{D}"), identification(C), legal_entity(B), endpoint(A, "0208"))
    assert party.main_number == A
    assert party.enterprise_numbers == {A, B, C, D}
    assert party.identifiers == (f"BE{D}", C, B, A)  # still in document order


@pytest.mark.parametrize(
    ("nodes", "expected"),
    [
        # Another endpoint comes last: legal entity, party identification and VAT beat it.
        ((endpoint(E, "9925"), vat(f"BE{D}"), identification(C), legal_entity(B)), B),
        ((endpoint(E, "9925"), vat(f"BE{D}"), identification(C)), C),
        ((endpoint(E, "9925"), vat(f"BE{D}")), D),
        ((endpoint(f"BE{E}", "9925"),), E),
        ((endpoint(E, "9956"), vat("NL123456789B01")), E),
        # A 0208 endpoint that fails the check is skipped, like any other invalid number.
        ((endpoint("0123456789", "0208"), identification(C)), C),
        ((vat("NL123456789B01"), endpoint("7300010000001", "0088")), ""),
    ],
    ids=["legal entity", "identification", "vat", "9925", "9956", "bad 0208", "none"],
)
def test_main_number_order(nodes, expected):
    party = supplier_with(*nodes)
    assert party.main_number == expected
    assert not expected or expected in party.enterprise_numbers


def test_old_belgian_scheme_9956_is_an_enterprise_number():
    # A foreign scheme with the same digits is not: 9956 is recognised by name.
    assert supplier_with(endpoint(E, "9956")).enterprise_numbers == {E}
    assert supplier_with(endpoint(E, "9957")).enterprise_numbers == set()
    node = identification("")
    found(node, "cbc:ID").text = f"{E[:4]}.{E[4:7]}.{E[7:]}"
    found(node, "cbc:ID").set("schemeID", " 9956 ")
    assert supplier_with(node).main_number == E


# -- the official examples (only with PEPPOL_EXAMPLES_DIR) --------------------------------


def test_the_nine_official_examples_are_there(peppol_examples):
    assert len(list(peppol_examples.glob("*.xml"))) == 9, peppol_examples


@pytest.mark.parametrize("path", example_files(), ids=file_id)
def test_every_official_example_parses(peppol_examples, path):
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
    assert ubl.looks_like_xml(data)


def test_base_example_values(peppol_examples):
    parsed = ubl.parse((peppol_examples / "base-example.xml").read_bytes())

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
        main_number="",
        vat_number="GB1232434",
    )
    assert parsed.customer.name == "Buyer Official Name"
    assert parsed.customer.identifiers == ("FR23342", "SE4598375937", "39937423947")
    assert parsed.customer.vat_number == "SE4598375937"


def test_official_tax_total_is_the_one_in_the_document_currency(peppol_examples):
    # Allowance-example has a second TaxTotal of 9324.00 SEK (the tax currency).
    data = (peppol_examples / "Allowance-example.xml").read_bytes()
    parsed = ubl.parse(data)
    assert parsed.currency == "EUR"
    assert parsed.tax_total == Decimal("1225.00")

    # Put the SEK total first: the EUR one is still chosen.
    root = etree.fromstring(data)
    eur, sek = root.findall("cac:TaxTotal", NS)
    eur.addprevious(sek)
    reordered = etree.tostring(root, xml_declaration=True, encoding="UTF-8")
    assert ubl.parse(reordered).tax_total == Decimal("1225.00")


def test_credit_note_example(peppol_examples):
    parsed = ubl.parse((peppol_examples / "base-creditnote-correction.xml").read_bytes())
    assert parsed.kind == "credit_note"
    assert parsed.type_code == "381"
    assert parsed.number == "Snippet1"
    assert parsed.line_count == 2
    assert parsed.due_date is None
    assert parsed.payable_amount == Decimal("1656.25")


# -- hostile files ------------------------------------------------------------------------


def assert_doctype_refused(problems):
    assert len(problems) == 1
    assert "DOCTYPE" in problems[0]


def test_xxe_file_content_never_appears(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-8f3a")
    data = replaced(
        INVOICE,
        DECLARATION,
        f'{DECLARATION}\n<!DOCTYPE Invoice [<!ENTITY xxe SYSTEM "{secret.as_uri()}">]>',
    )
    data = replaced(data, "<cbc:ID>FV-2025-0001</cbc:ID>", "<cbc:ID>&xxe;</cbc:ID>")

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
            INVOICE,
            DECLARATION,
            f'{DECLARATION}\n<!DOCTYPE Invoice SYSTEM "http://127.0.0.1:{port}/invoice.dtd">',
        )

        assert_doctype_refused(refused(data))
        with pytest.raises(TimeoutError):
            server.accept()  # nobody knocked


def test_a_valid_invoice_with_a_harmless_doctype_is_still_refused():
    data = replaced(INVOICE, DECLARATION, f"{DECLARATION}\n<!DOCTYPE Invoice>")
    assert_doctype_refused(refused(data))


def test_wrong_root_names_what_was_found_and_what_is_expected():
    data = b'<Order xmlns="urn:oasis:names:specification:ubl:schema:xsd:Order-2"><a/></Order>'
    (problem,) = refused(data)
    assert "Order" in problem
    assert "urn:oasis:names:specification:ubl:schema:xsd:Order-2" in problem
    assert "Invoice" in problem and ubl.INVOICE_NS in problem
    assert "CreditNote" in problem and ubl.CREDIT_NOTE_NS in problem


def test_invoice_without_its_namespace_is_the_wrong_root():
    data = replaced(INVOICE, 'xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"', "")
    (problem,) = refused(data)
    assert problem.startswith("The root element is Invoice in namespace (none);")


def test_truncated_file_reports_the_line():
    data = INVOICE
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
    assert ubl.parse(INVOICE, max_bytes=512 * 1024).number == "FV-2025-0001"


def test_default_limit_comes_from_settings(settings):
    settings.INTAKE_MAX_BYTES = 1024
    (problem,) = refused(INVOICE)
    assert "0.000977 MB limit" in problem


def test_declared_utf8_with_latin1_bytes():
    text = INVOICE.decode("utf-8")
    text = text.replace(SUPPLIER.name, "Société Générale")
    data = text.encode("latin-1")
    line = text[: text.index("Société")].count("\n") + 1

    (problem,) = refused(data)

    assert problem.startswith(f"The file is not valid UTF-8 text (line {line})")


def test_unsupported_declared_encoding():
    data = replaced(INVOICE, "encoding='UTF-8'", "encoding='X-KLINGON'")
    (problem,) = refused(data)
    assert problem.startswith("The file is not valid X-KLINGON text (line 1)")


def test_not_xml_at_all():
    (problem,) = refused(b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n")
    assert problem.startswith("The file is not well-formed XML (line 1)")


def test_random_damage_never_escapes_as_anything_but_intake_error():
    data = INVOICE
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
        INVOICE,
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
    data = without(INVOICE, "cbc:ProfileID", "cbc:ID", "cac:LegalMonetaryTotal")
    assert refused(data) == [
        "cbc:ProfileID is missing",
        "cbc:ID is missing",
        "cac:LegalMonetaryTotal is missing",
    ]


def test_empty_mandatory_element():
    data = replaced(INVOICE, "<cbc:ID>FV-2025-0001</cbc:ID>", "<cbc:ID> </cbc:ID>")
    assert refused(data) == ["cbc:ID is empty"]


def test_credit_note_needs_its_own_type_code_and_lines():
    data = without(CREDIT_NOTE, "cbc:CreditNoteTypeCode", "cac:CreditNoteLine")
    assert refused(data) == ["cbc:CreditNoteTypeCode is missing", "cac:CreditNoteLine is missing"]


def test_unparseable_dates_and_amounts_name_the_element():
    data = INVOICE
    data = replaced(data, "<cbc:IssueDate>2025-01-31<", "<cbc:IssueDate>31/01/2025<")
    data = replaced(data, "<cbc:DueDate>2025-03-02<", "<cbc:DueDate>2025-02-30<")
    data = replaced(data, ">1603.25</cbc:PayableAmount>", ">1.603,25</cbc:PayableAmount>")
    # The first TaxAmount is the TaxTotal's (its one TaxSubtotal has the same amount).
    data = replaced(data, '"EUR">278.25</cbc:TaxAmount>', '"EUR">NaN</cbc:TaxAmount>')
    data = replaced(data, ">1325.00</cbc:TaxExclusiveAmount>", ">1e3</cbc:TaxExclusiveAmount>")

    assert refused(data) == [
        "cbc:IssueDate is not a date (YYYY-MM-DD): '31/01/2025'",
        "cbc:DueDate is not a date (YYYY-MM-DD): '2025-02-30'",
        "cac:TaxTotal/cbc:TaxAmount is not an amount: 'NaN'",
        "cac:LegalMonetaryTotal/cbc:TaxExclusiveAmount is not an amount: '1e3'",
        "cac:LegalMonetaryTotal/cbc:PayableAmount is not an amount: '1.603,25'",
    ]


def test_long_bad_values_are_shortened_in_messages():
    data = replaced(INVOICE, "<cbc:IssueDate>2025-01-31<", "<cbc:IssueDate>" + "x" * 5000 + "<")
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
