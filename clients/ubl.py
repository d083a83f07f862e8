"""UBL 2.1 invoices and credit notes (Peppol BIS Billing 3.0), read from untrusted bytes.

Anyone can send us a file, so the parser trusts nothing: the size is checked before
parsing, a DOCTYPE is refused outright (no DTD, no entities: no XXE, no billion laughs,
no external fetches), lxml never touches the network, and every problem found is reported
at once in one ``IntakeError`` so the sender can fix the file in a single round.

Only the EN 16931 profiles in ``PROFILES`` (plus ``settings.INTAKE_UBL_PROFILES``) are read:
UBL of another standard can look alike and still mean something else, so it is refused by
its ``CustomizationID`` alone, before anything else is checked.
"""

import base64
import binascii
import codecs
import datetime
import re
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.utils.text import get_text_list
from django.utils.translation import gettext as _
from lxml import etree

from clients.errors import IntakeError, refuse_oversized
from partnerspace.enterprise import is_valid, normalize

NS = {
    "cbc": "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2",
    "cac": "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2",
}
INVOICE_NS = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
CREDIT_NOTE_NS = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
# root tag -> (kind, type code element, line element)
ROOTS = {
    f"{{{INVOICE_NS}}}Invoice": ("invoice", "cbc:InvoiceTypeCode", "cac:InvoiceLine"),
    f"{{{CREDIT_NOTE_NS}}}CreditNote": (
        "credit_note",
        "cbc:CreditNoteTypeCode",
        "cac:CreditNoteLine",
    ),
}

PEPPOL_BIS_3 = "urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0"
UBL_BE = "urn:cen.eu:en16931:2017#conformant#urn:UBL.BE:1.0.0.20180214"
# CustomizationID -> name: the profiles intake reads; INTAKE_UBL_PROFILES adds to them.
PROFILES = {PEPPOL_BIS_3: "Peppol BIS Billing 3.0", UBL_BE: "UBL.BE"}
# Families of refused profiles, named so the sender sees what they sent; first match wins
# (SimplerInvoicing and Peppol BIS 2 ids extend CEN BII ones, NLCIUS and XRechnung EN 16931).
_PROFILE_FAMILIES = tuple(
    (re.compile(pattern, re.IGNORECASE), name)
    for pattern, name in (
        (r"simplerinvoicing", "SimplerInvoicing"),
        (r"nlcius", "NLCIUS"),
        (r"xrechnung", "XRechnung"),
        (r"^urn:peppol:pint:", "Peppol PINT"),
        (r"urn:www\.peppol\.eu:bis:peppol\w+:ver2\.", "Peppol BIS 2"),
        (r"urn:www\.peppol\.eu:bis:peppol\w+:ver1\.", "Peppol BIS 1"),
        (r"urn:www\.cenbii\.eu:", "CEN BII"),
        (r"urn:UBL\.BE:", "UBL.BE"),
        (r"poacc:selfbilling:", "Peppol BIS Self-Billing"),
        (r"^urn:cen\.eu:en16931:", "EN 16931"),
    )
)
_UBL_VERSION = re.compile(r"(\d+)\.(\d+)")

# Checked on the raw bytes, before libxml2 sees the DTD at all. A literal "<!DOCTYPE" in a
# CDATA section is refused too; real invoices never contain one.
_DOCTYPE_MARKERS = tuple(
    "<!DOCTYPE".encode(enc)
    for enc in ("ascii", "utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be")
)
_ENCODING_ERRORS = {
    etree.ErrorTypes.ERR_INVALID_ENCODING,
    etree.ErrorTypes.ERR_UNSUPPORTED_ENCODING,
}
_ENCODING_DECLARATION = re.compile(rb"""\s*<\?xml[^>]*?encoding\s*=\s*["']([^"']{1,40})["']""")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")  # Peppol: YYYY-MM-DD, no time zone
_AMOUNT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")  # xsd:decimal: no exponent, NaN or inf
_SEPARATORS = re.compile(r"[\s.\-/]")
# KBO/BCE enterprise number, Belgian VAT number, and 9956: the enterprise number's former
# Peppol scheme, still found in older documents.
_BELGIAN_SCHEMES = {"0208", "9925", "9956"}
# Where a party's main enterprise number is looked for, best first: its Peppol address by
# enterprise number, its legal registration, its own identifier, its VAT id, any address.
_MAIN_NUMBER_PATHS = (
    "cbc:EndpointID[normalize-space(@schemeID)='0208']",
    "cac:PartyLegalEntity/cbc:CompanyID",
    "cac:PartyIdentification/cbc:ID",
    "cac:PartyTaxScheme/cbc:CompanyID",
    "cbc:EndpointID",
)
_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


@dataclass(frozen=True)
class Party:
    name: str
    identifiers: tuple[str, ...]  # as written, in document order, without duplicates
    enterprise_numbers: frozenset[str]  # Belgian enterprise numbers, ten digits
    main_number: str  # the one that names the party (see _MAIN_NUMBER_PATHS), else ""
    vat_number: str  # PartyTaxScheme/CompanyID of the VAT scheme, else ""


@dataclass(frozen=True)
class ParsedInvoice:
    kind: str  # "invoice" or "credit_note"
    number: str
    issue_date: datetime.date
    due_date: datetime.date | None
    type_code: str
    currency: str
    customization_id: str
    profile_id: str
    buyer_reference: str
    supplier: Party
    customer: Party
    total_without_tax: Decimal
    tax_total: Decimal
    payable_amount: Decimal
    line_count: int


def looks_like_xml(data: bytes) -> bool:
    """Cheap sniff used to tell UBL from CODA: the first non-blank character is ``<``."""
    head = data[:1024]
    for bom, encoding in _BOMS:
        if head.startswith(bom):
            text = head[len(bom) :].decode(encoding, "ignore")
            break
    else:
        text = head.decode("latin-1")
    return text.lstrip(" \t\r\n").startswith("<")


def accepted_profiles() -> dict[str, str]:
    """CustomizationID -> name of every profile intake reads; the setting's are named by value."""
    profiles = dict(PROFILES)
    for value in settings.INTAKE_UBL_PROFILES:
        if value := value.strip():
            profiles.setdefault(value, value)
    return profiles


def parse(data: bytes, *, max_bytes: int | None = None) -> ParsedInvoice:
    """Read an invoice or credit note of an accepted profile, or raise ``IntakeError``."""
    limit = settings.INTAKE_MAX_BYTES if max_bytes is None else max_bytes
    root = _load(data, limit)
    kind, type_code, line_tag = ROOTS[root.tag]
    reader = _Reader(root)

    _check_profile(root)
    customization_id = reader.required("cbc:CustomizationID")
    profile_id = reader.required("cbc:ProfileID")
    number = reader.required("cbc:ID")
    issue_date = reader.date("cbc:IssueDate")
    due_date = reader.date("cbc:DueDate", required=False)
    if due_date is None:
        due_date = reader.date("cac:PaymentMeans/cbc:PaymentDueDate", required=False)
    type_code = reader.required(type_code)
    currency = reader.required("cbc:DocumentCurrencyCode")
    buyer_reference = _text(root.find("cbc:BuyerReference", NS))
    supplier = reader.party("cac:AccountingSupplierParty/cac:Party")
    customer = reader.party("cac:AccountingCustomerParty/cac:Party")
    tax_total = reader.tax_total(currency)
    total_without_tax = reader.amount("cac:LegalMonetaryTotal/cbc:TaxExclusiveAmount")
    payable_amount = reader.amount("cac:LegalMonetaryTotal/cbc:PayableAmount")
    line_count = len(root.findall(line_tag, NS))
    if not line_count:
        reader.missing(line_tag)

    if reader.problems:
        raise IntakeError(reader.problems)
    return ParsedInvoice(
        kind=kind,
        number=number,
        issue_date=issue_date,
        due_date=due_date,
        type_code=type_code,
        currency=currency,
        customization_id=customization_id,
        profile_id=profile_id,
        buyer_reference=buyer_reference,
        supplier=supplier,
        customer=customer,
        total_without_tax=total_without_tax,
        tax_total=tax_total,
        payable_amount=payable_amount,
        line_count=line_count,
    )


def _load(data: bytes, limit: int):
    """The root element of a safe, well-formed UBL document; refuse anything else."""
    if not data.strip():
        raise IntakeError(_("The file is empty."))
    refuse_oversized(data, limit)
    if any(marker in data for marker in _DOCTYPE_MARKERS):
        raise _doctype_refused()
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_pis=True,
        remove_comments=True,
    )
    try:
        root = etree.fromstring(data, parser)
    except etree.XMLSyntaxError as exc:
        raise _syntax_error(data, exc) from None
    except (etree.LxmlError, ValueError) as exc:
        raise IntakeError(
            _("The file cannot be read as XML: %(error)s") % {"error": exc}
        ) from None
    docinfo = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:  # encodings the scan cannot see
        raise _doctype_refused()
    if root.tag not in ROOTS:
        qname = etree.QName(root)
        raise IntakeError(
            _(
                "The root element is %(found)s in namespace %(namespace)s; expected Invoice "
                "in namespace %(invoice)s or CreditNote in namespace %(credit_note)s."
            )
            % {
                "found": qname.localname,
                "namespace": qname.namespace or _("(none)"),
                "invoice": INVOICE_NS,
                "credit_note": CREDIT_NOTE_NS,
            }
        )
    return root


def _check_profile(root) -> None:
    """Refuse, alone, a document of another profile: its other problems would be noise.

    A missing CustomizationID is one problem among the others, except in UBL older than 2.1,
    which can follow no accepted profile.
    """
    found = _text(root.find("cbc:CustomizationID", NS))
    profiles = accepted_profiles()
    if found in profiles:
        return
    old_ubl = _old_ubl_version(_text(root.find("cbc:UBLVersionID", NS)))
    if not (found or old_ubl):
        return
    accepted = get_text_list(
        [value if name == value else f"{name} ({value})" for value, name in profiles.items()],
        _("and"),
    )
    if not found:
        raise IntakeError(
            _(
                "This document is %(version)s and names no profile (cbc:CustomizationID); "
                "the portal accepts %(accepted)s."
            )
            % {"version": old_ubl, "accepted": accepted}
        )
    family = next((name for pattern, name in _PROFILE_FAMILIES if pattern.search(found)), "")
    labels = ", ".join(label for label in (family, old_ubl) if label)
    shown = " ".join(found.split())  # one line, however it was written
    shown = shown if len(shown) <= 200 else shown[:200] + "…"
    raise IntakeError(
        _(
            "This document follows the profile %(found)s, which the portal does not accept; "
            "it accepts %(accepted)s."
        )
        % {"found": f"{shown} ({labels})" if labels else shown, "accepted": accepted}
    )


def _old_ubl_version(version: str) -> str:
    """The version, as "UBL 2.0", when older than the UBL 2.1 of every accepted profile."""
    match = _UBL_VERSION.search(version)
    if match and (int(match[1]), int(match[2])) < (2, 1):
        return f"UBL {match[1]}.{match[2]}"
    return ""


def _doctype_refused():
    return IntakeError(
        _(
            "The file contains a DOCTYPE declaration. UBL invoices never need one, and "
            "DTDs and entities are refused for security."
        )
    )


def _syntax_error(data: bytes, exc: etree.XMLSyntaxError) -> IntakeError:
    line = exc.lineno or 1
    if exc.code in _ENCODING_ERRORS:  # error_log may hold older parses' errors
        declared = _ENCODING_DECLARATION.match(data.removeprefix(codecs.BOM_UTF8))
        encoding = declared.group(1).decode("ascii", "replace") if declared else "UTF-8"
        return IntakeError(
            _(
                "The file is not valid %(encoding)s text (line %(line)s): it is saved in "
                "another character encoding than the one it declares, or that encoding is "
                "not supported."
            )
            % {"encoding": encoding, "line": line}
        )
    return IntakeError(
        _("The file is not well-formed XML (line %(line)s): %(error)s")
        % {"line": line, "error": str(exc.msg)[:200]}
    )


def _text(node) -> str:
    return "".join(node.itertext()).strip() if node is not None else ""


def _shown(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:40] + "…")


class _Reader:
    """Reads values by path from the root and collects one message per problem."""

    def __init__(self, root):
        self.root = root
        self.problems: list[str] = []

    def problem(self, message: str) -> None:
        if message not in self.problems:
            self.problems.append(message)

    def missing(self, path: str) -> None:
        """Name the outermost absent element: no LegalMonetaryTotal is one problem, not two."""
        steps = path.split("/")
        for end in range(1, len(steps) + 1):
            prefix = "/".join(steps[:end])
            if self.root.find(prefix, NS) is None:
                self.problem(_("%(element)s is missing") % {"element": prefix})
                return
        self.problem(_("%(element)s is empty") % {"element": path})

    def required(self, path: str) -> str:
        value = _text(self.root.find(path, NS))
        if not value:
            self.missing(path)
        return value

    def date(self, path: str, *, required: bool = True) -> datetime.date | None:
        value = self.required(path) if required else _text(self.root.find(path, NS))
        if not value:
            return None
        if _DATE.fullmatch(value):
            try:
                return datetime.date.fromisoformat(value)
            except ValueError:
                pass
        self.problem(
            _("%(element)s is not a date (YYYY-MM-DD): %(value)s")
            % {"element": path, "value": _shown(value)}
        )
        return None

    def amount(self, path: str, node=None) -> Decimal | None:
        """The amount at ``path``, or in ``node`` when the path matches several elements."""
        value = _text(self.root.find(path, NS) if node is None else node)
        if not value:
            self.missing(path)
            return None
        if _AMOUNT.fullmatch(value):
            return Decimal(value)
        self.problem(
            _("%(element)s is not an amount: %(value)s")
            % {"element": path, "value": _shown(value)}
        )
        return None

    def tax_total(self, currency: str) -> Decimal | None:
        """The TaxTotal in the document currency; the other one, if any, is in TaxCurrencyCode."""
        path = "cac:TaxTotal/cbc:TaxAmount"
        amounts = self.root.findall(path, NS)
        if not amounts:
            self.missing(path)
            return None
        matching = [node for node in amounts if node.get("currencyID", "").strip() == currency]
        return self.amount(path, (matching or amounts)[0])

    def party(self, path: str) -> Party | None:
        party = self.root.find(path, NS)
        if party is None:
            self.missing(path)
            return None
        name = _text(party.find("cac:PartyLegalEntity/cbc:RegistrationName", NS))
        name = name or _text(party.find("cac:PartyName/cbc:Name", NS))
        if not name:
            self.missing(f"{path}/cac:PartyLegalEntity/cbc:RegistrationName")
        identifiers, numbers = [], set()
        for node in party.xpath(
            "cbc:EndpointID | cac:PartyIdentification/cbc:ID | cac:PartyTaxScheme/cbc:CompanyID"
            " | cac:PartyLegalEntity/cbc:CompanyID",
            namespaces=NS,
        ):
            value = _text(node)
            if value and value not in identifiers:
                identifiers.append(value)
            if number := _node_number(node):
                numbers.add(number)
        main_number = next(
            (
                number
                for path in _MAIN_NUMBER_PATHS
                for node in party.xpath(path, namespaces=NS)
                if (number := _node_number(node))
            ),
            "",
        )
        vat_number = ""
        for scheme in party.findall("cac:PartyTaxScheme", NS):
            if _text(scheme.find("cac:TaxScheme/cbc:ID", NS)).upper() == "VAT":
                vat_number = _text(scheme.find("cbc:CompanyID", NS))
                break
        return Party(name, tuple(identifiers), frozenset(numbers), main_number, vat_number)


def _node_number(node) -> str:
    return _enterprise_number(_text(node), node.get("schemeID", "").strip())


def _enterprise_number(value: str, scheme: str) -> str:
    """The ten digits when ``value`` is a Belgian enterprise or VAT number, else "".

    Belgian by its scheme (0208, 9925, 9956) or its BE prefix; a bare ten-digit id without any
    scheme counts when it passes the mod-97 check. An id under a foreign scheme never does.
    """
    belgian = scheme in _BELGIAN_SCHEMES or value.upper().startswith("BE")
    bare = not scheme and len(_SEPARATORS.sub("", value)) == 10
    if not (belgian or bare):
        return ""
    number = normalize(value)
    return number if is_valid(number) else ""


# --- the invoice as people read it ----------------------------------------------------------
# Intake has already accepted the file; this reads it again for the document page, where an
# absent or odd value shows nothing rather than refusing the page.

# MIME types an embedded attachment keeps when downloaded; any other is served as bytes.
SAFE_ATTACHMENT_TYPES = frozenset(
    {
        "application/pdf",
        "image/png",
        "image/jpeg",
        "image/gif",
        "text/csv",
        "text/plain",
        "application/vnd.oasis.opendocument.spreadsheet",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.ms-excel",
    }
)


@dataclass(frozen=True)
class DisplayParty:
    name: str
    trading_name: str
    company_id: str  # legal registration (enterprise number), as written
    vat_number: str
    endpoint: str
    address: tuple[str, ...]  # lines, as written
    contact: tuple[str, ...]


@dataclass(frozen=True)
class DisplayLine:
    number: str
    name: str
    description: str
    note: str
    quantity: Decimal | None
    unit_code: str
    unit_price: Decimal | None
    amount: Decimal | None
    vat_category: str
    vat_rate: Decimal | None


@dataclass(frozen=True)
class VatBreakdown:
    category: str
    rate: Decimal | None
    taxable: Decimal | None
    tax: Decimal | None
    exemption_reason: str


@dataclass(frozen=True)
class PaymentMeans:
    code: str
    name: str
    payment_id: str
    iban: str
    account_name: str
    bic: str


@dataclass(frozen=True)
class Attachment:
    index: int  # 1-based, among the embedded ones
    reference: str
    description: str
    filename: str
    mime_type: str


@dataclass(frozen=True)
class DisplayInvoice:
    kind: str  # "invoice" or "credit_note"
    number: str
    issue_date: datetime.date | None
    due_date: datetime.date | None
    currency: str
    buyer_reference: str
    order_reference: str
    invoice_reference: str  # the invoice a credit note corrects
    notes: tuple[str, ...]
    seller: DisplayParty
    buyer: DisplayParty
    lines: tuple[DisplayLine, ...]
    vat: tuple[VatBreakdown, ...]
    line_total: Decimal | None
    allowance_total: Decimal | None
    charge_total: Decimal | None
    total_without_tax: Decimal | None
    tax_total: Decimal | None
    total_with_tax: Decimal | None
    prepaid: Decimal | None
    rounding: Decimal | None
    payable: Decimal | None
    payment_terms: tuple[str, ...]
    payment_means: tuple[PaymentMeans, ...]
    attachments: tuple[Attachment, ...]


def display(data: bytes) -> DisplayInvoice:
    """The invoice or credit note for the document page; ``IntakeError`` when unreadable."""
    root = _load(data, max(settings.INTAKE_MAX_BYTES, len(data)))
    kind, _type_code, line_tag = ROOTS[root.tag]
    currency = _text(root.find("cbc:DocumentCurrencyCode", NS))

    def text(path, node=root):
        return _text(node.find(path, NS))

    def texts(path, node=root):
        return tuple(value for n in node.findall(path, NS) if (value := _text(n)))

    due_date = _date_or_none(text("cbc:DueDate")) or _date_or_none(
        text("cac:PaymentMeans/cbc:PaymentDueDate")
    )
    tax_amounts = root.findall("cac:TaxTotal/cbc:TaxAmount", NS)
    in_currency = [n for n in tax_amounts if n.get("currencyID", "").strip() == currency]
    tax_total_node = (in_currency or tax_amounts or [None])[0]
    monetary = root.find("cac:LegalMonetaryTotal", NS)

    def total(name):
        return _amount_or_none(text(f"cbc:{name}", monetary)) if monetary is not None else None

    vat_root = tax_total_node.getparent() if tax_total_node is not None else None
    return DisplayInvoice(
        kind=kind,
        number=text("cbc:ID"),
        issue_date=_date_or_none(text("cbc:IssueDate")),
        due_date=due_date,
        currency=currency,
        buyer_reference=text("cbc:BuyerReference"),
        order_reference=text("cac:OrderReference/cbc:ID"),
        invoice_reference=text("cac:BillingReference/cac:InvoiceDocumentReference/cbc:ID"),
        notes=texts("cbc:Note"),
        seller=_display_party(root.find("cac:AccountingSupplierParty/cac:Party", NS)),
        buyer=_display_party(root.find("cac:AccountingCustomerParty/cac:Party", NS)),
        lines=tuple(_display_line(node) for node in root.findall(line_tag, NS)),
        vat=tuple(
            VatBreakdown(
                category=text("cac:TaxCategory/cbc:ID", node),
                rate=_amount_or_none(text("cac:TaxCategory/cbc:Percent", node)),
                taxable=_amount_or_none(text("cbc:TaxableAmount", node)),
                tax=_amount_or_none(text("cbc:TaxAmount", node)),
                exemption_reason=text("cac:TaxCategory/cbc:TaxExemptionReason", node),
            )
            for node in (vat_root.findall("cac:TaxSubtotal", NS) if vat_root is not None else ())
        ),
        line_total=total("LineExtensionAmount"),
        allowance_total=total("AllowanceTotalAmount"),
        charge_total=total("ChargeTotalAmount"),
        total_without_tax=total("TaxExclusiveAmount"),
        tax_total=_amount_or_none(_text(tax_total_node)),
        total_with_tax=total("TaxInclusiveAmount"),
        prepaid=total("PrepaidAmount"),
        rounding=total("PayableRoundingAmount"),
        payable=total("PayableAmount"),
        payment_terms=texts("cac:PaymentTerms/cbc:Note"),
        payment_means=tuple(
            PaymentMeans(
                code=text("cbc:PaymentMeansCode", node),
                name=(
                    node.find("cbc:PaymentMeansCode", NS).get("name", "").strip()
                    if node.find("cbc:PaymentMeansCode", NS) is not None
                    else ""
                ),
                payment_id=text("cbc:PaymentID", node),
                iban=text("cac:PayeeFinancialAccount/cbc:ID", node),
                account_name=text("cac:PayeeFinancialAccount/cbc:Name", node),
                bic=text("cac:PayeeFinancialAccount/cac:FinancialInstitutionBranch/cbc:ID", node),
            )
            for node in root.findall("cac:PaymentMeans", NS)
        ),
        attachments=tuple(
            Attachment(
                index=index,
                reference=_text(reference.find("cbc:ID", NS)),
                description=_text(reference.find("cbc:DocumentDescription", NS)),
                filename=_attachment_name(binary, index),
                mime_type=binary.get("mimeCode", "").strip(),
            )
            for index, (reference, binary) in enumerate(_embedded(root), start=1)
        ),
    )


def attachment(data: bytes, index: int) -> tuple[str, str, bytes] | None:
    """(file name, MIME type, bytes) of the ``index``-th embedded attachment, else None.

    The type is the declared one only when it is in ``SAFE_ATTACHMENT_TYPES``: a declared
    ``text/html`` or ``image/svg+xml`` could run script in the portal's origin.
    """
    root = _load(data, max(settings.INTAKE_MAX_BYTES, len(data)))
    embedded = _embedded(root)
    if not 1 <= index <= len(embedded):
        return None
    _reference, binary = embedded[index - 1]
    try:
        content = base64.b64decode("".join(_text(binary).split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    mime_type = binary.get("mimeCode", "").strip().lower()
    if mime_type not in SAFE_ATTACHMENT_TYPES:
        mime_type = "application/octet-stream"
    return _attachment_name(binary, index), mime_type, content


def _embedded(root) -> list:
    return [
        (reference, binary)
        for reference in root.findall("cac:AdditionalDocumentReference", NS)
        if (binary := reference.find("cac:Attachment/cbc:EmbeddedDocumentBinaryObject", NS))
        is not None
    ]


def _attachment_name(binary, index: int) -> str:
    """The declared file name without any folder, else a neutral one."""
    name = binary.get("filename", "").replace("\\", "/").rsplit("/", 1)[-1].strip()
    name = "".join(ch for ch in name if ch.isprintable() and ch not in '"')
    return name or f"attachment-{index}"


def _display_party(party) -> DisplayParty:
    if party is None:
        return DisplayParty("", "", "", "", "", (), ())

    def text(path, node=party):
        return _text(node.find(path, NS)) if node is not None else ""

    address = party.find("cac:PostalAddress", NS)
    place = " ".join(
        v for v in (text("cbc:PostalZone", address), text("cbc:CityName", address)) if v
    )
    address_lines = (
        text("cbc:StreetName", address),
        text("cbc:AdditionalStreetName", address),
        text("cac:AddressLine/cbc:Line", address),
        place,
        text("cbc:CountrySubentity", address),
        text("cac:Country/cbc:IdentificationCode", address),
    )
    contact = party.find("cac:Contact", NS)
    contact_lines = (
        text("cbc:Name", contact),
        text("cbc:Telephone", contact),
        text("cbc:ElectronicMail", contact),
    )
    vat_number = ""
    for scheme in party.findall("cac:PartyTaxScheme", NS):
        if text("cac:TaxScheme/cbc:ID", scheme).upper() == "VAT":
            vat_number = text("cbc:CompanyID", scheme)
            break
    name = text("cac:PartyLegalEntity/cbc:RegistrationName")
    trading_name = text("cac:PartyName/cbc:Name")
    return DisplayParty(
        name=name or trading_name,
        trading_name=trading_name if trading_name != (name or trading_name) else "",
        company_id=text("cac:PartyLegalEntity/cbc:CompanyID"),
        vat_number=vat_number,
        endpoint=text("cbc:EndpointID"),
        address=tuple(line for line in address_lines if line),
        contact=tuple(line for line in contact_lines if line),
    )


def _display_line(node) -> DisplayLine:
    def text(path):
        return _text(node.find(path, NS))

    quantity = node.find("cbc:InvoicedQuantity", NS)
    if quantity is None:
        quantity = node.find("cbc:CreditedQuantity", NS)
    return DisplayLine(
        number=text("cbc:ID"),
        name=text("cac:Item/cbc:Name"),
        description=text("cac:Item/cbc:Description"),
        note=text("cbc:Note"),
        quantity=_amount_or_none(_text(quantity)),
        unit_code=quantity.get("unitCode", "").strip() if quantity is not None else "",
        unit_price=_amount_or_none(text("cac:Price/cbc:PriceAmount")),
        amount=_amount_or_none(text("cbc:LineExtensionAmount")),
        vat_category=text("cac:Item/cac:ClassifiedTaxCategory/cbc:ID"),
        vat_rate=_amount_or_none(text("cac:Item/cac:ClassifiedTaxCategory/cbc:Percent")),
    )


def _amount_or_none(value: str) -> Decimal | None:
    return Decimal(value) if _AMOUNT.fullmatch(value) else None


def _date_or_none(value: str) -> datetime.date | None:
    if _DATE.fullmatch(value):
        try:
            return datetime.date.fromisoformat(value)
        except ValueError:
            return None
    return None
