"""UBL 2.1 invoices and credit notes (Peppol BIS Billing 3.0), read from untrusted bytes.

Anyone can send us a file, so the parser trusts nothing: the size is checked before
parsing, a DOCTYPE is refused outright (no DTD, no entities: no XXE, no billion laughs,
no external fetches), lxml never touches the network, and every problem found is reported
at once in one ``IntakeError`` so the sender can fix the file in a single round.

Only the EN 16931 profiles in ``PROFILES`` (plus ``settings.INTAKE_UBL_PROFILES``) are read:
UBL of another standard can look alike and still mean something else, so it is refused by
its ``CustomizationID`` alone, before anything else is checked.
"""

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
