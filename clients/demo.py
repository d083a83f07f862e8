"""Believable, deterministic Belgian demo data: companies, Peppol invoices, CODA statements.

Everything is drawn from ``random.Random`` streams with fixed seeds, never from the clock's
randomness: a second run produces the very same bytes, which intake recognises by SHA-256,
so seeding is idempotent without bookkeeping. Check digits (enterprise numbers, IBANs,
structured communications) are computed, never typed in, so they are always right.

The companies are invented; any likeness to a real one is a coincidence.
"""

import calendar
import datetime
import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.core.management.base import CommandError
from django.utils import timezone
from lxml import etree

from clients import coda, ubl
from clients.errors import IntakeError
from clients.intake import ingest
from clients.models import Client, Document
from clients.release import release
from partnerspace.enterprise import format_enterprise_number
from partnerspace.models import Membership, Partner

CUSTOMIZATION_ID = ubl.PEPPOL_BIS_3
PROFILE_ID = "urn:fdc:peppol.eu:2017:poacc:billing:01:1.0"
INVOICE_NS = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
CREDIT_NOTE_NS = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
CAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
CBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"

# Development only: used when DEBUG is on and DEMO_PASSWORD is empty.
DEFAULT_PASSWORD = "demo-partner"  # noqa: S105
DEMO_URL = "http://127.0.0.1:8000/"
# The operators' admin account: staff, viewing these apps' records, member of no firm.
OPERATOR = "operator"
OPERATOR_APPS = ["clients", "exports", "extensions", "partnerspace", "django_q"]
PARTNER_NAME = "Demo Accountancy"
CENT = Decimal("0.01")


def _rng(*parts) -> random.Random:
    """A stream named by ``parts``: the same names give the same draws on every machine
    (string seeds are hashed with SHA-512, not Python's randomised ``hash``). Demo data
    needs repeatability, not secrecy."""
    return random.Random("|".join(str(part) for part in parts))  # noqa: S311


# --- check digits -------------------------------------------------------------------------


def enterprise_number(base: int) -> str:
    """Ten digits from an eight-digit ``base`` below 2·10⁷: the KBO/BCE mod-97 rule."""
    if not 0 < base < 20_000_000:
        raise ValueError("an enterprise number starts with 0 or 1: base must be < 20000000")
    first8 = f"{base:08d}"
    return f"{first8}{97 - int(first8) % 97:02d}"


def iban_check_digits(country: str, bban: str) -> str:
    """ISO 13616: the two digits that make ``country + check + bban`` ≡ 1 (mod 97)."""
    digits = "".join(str(int(ch, 36)) for ch in (bban + country + "00").upper())
    return f"{98 - int(digits) % 97:02d}"


def belgian_iban(bank_code: int, account: int) -> str:
    """BE + check + 3-digit bank code, 7-digit account, and their mod 97 (97 for 0)."""
    first10 = f"{bank_code:03d}{account:07d}"
    bban = f"{first10}{int(first10) % 97 or 97:02d}"
    return "BE" + iban_check_digits("BE", bban) + bban


def structured_communication(number: int) -> str:
    """The Belgian OGM/VCS ``+++123/4567/89012+++``: ten digits and their mod 97."""
    base = f"{number % 10**10:010d}"
    digits = f"{base}{int(base) % 97 or 97:02d}"
    return f"+++{digits[:3]}/{digits[3:7]}/{digits[7:]}+++"


def money(value) -> Decimal:
    """Two decimals, half up: the rounding Belgian invoices and EN 16931 expect."""
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)


# --- companies ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """Something a company sells: a name, a price range in euro, a VAT rate, a unit."""

    name: str
    low: int
    high: int
    vat_rate: int = 21
    unit_code: str = "C62"  # C62 = one (piece); HUR = hour


@dataclass(frozen=True)
class Company:
    name: str
    enterprise_number: str
    street: str
    postcode: str
    city: str
    iban: str
    language: str = "nl"  # "nl" or "fr": the language of its payment terms
    prefix: str = ""  # its invoice numbering prefix
    external_id: str = ""  # the accounting firm's own reference, for clients
    catalogue: tuple[Item, ...] = ()

    @property
    def vat_number(self) -> str:
        return "BE" + self.enterprise_number


@dataclass(frozen=True)
class Line:
    name: str
    quantity: Decimal
    unit_price: Decimal
    vat_rate: Decimal
    unit_code: str = "C62"

    @property
    def amount(self) -> Decimal:
        return money(self.quantity * self.unit_price)


# name, street, postcode, city, language, invoice prefix (which also keys its catalogue)
_CLIENTS = [
    ("Bakkerij Vermeulen BV", "Kortrijksesteenweg 112", "9000", "Gent", "nl", "VF"),
    ("Menuiserie Dubois SRL", "Rue de la Station 45", "5000", "Namur", "fr", "FV"),
    ("Garage Peeters & Zonen BV", "Mechelsesteenweg 210", "2018", "Antwerpen", "nl", "GP"),
    ("Brasserie Lambert SRL", "Place du Marché 7", "4000", "Liège", "fr", "BL"),
    ("Apotheek De Smet BV", "Stationsstraat 18", "3000", "Leuven", "nl", "AD"),
    ("Architectenbureau Claes & Maes BV", "Koning Albertlaan 77", "8200", "Brugge", "nl", "CM"),
    ("Imprimerie Lejeune SRL", "Chaussée de Bruxelles 301", "1410", "Waterloo", "fr", "IL"),
    ("Transport Janssens NV", "Industrieweg 12", "3500", "Hasselt", "nl", "TJ"),
    ("Fleuriste Lemaire SRL", "Rue Neuve 22", "7000", "Mons", "fr", "FL"),
    ("IT-Consult Wouters BV", "Brusselsesteenweg 500", "1800", "Vilvoorde", "nl", "IW"),
]

# Suppliers the clients buy from: invented names, believable trades.
_SUPPLIERS = [
    ("Telecable Business NV", "Rue Neerveld 104", "1200", "Woluwe-Saint-Lambert", "nl", "TCB"),
    ("Enerlux Energie NV", "Koningin Astridlaan 65", "2800", "Mechelen", "nl", "ENX"),
    ("Groothandel Van Damme NV", "Nijverheidsstraat 8", "8500", "Kortrijk", "nl", "GVD"),
    ("Bureau Plus SA", "Avenue Louise 231", "1050", "Ixelles", "fr", "BP"),
    ("Aquafluvia SCRL", "Rue du Canal 19", "6000", "Charleroi", "fr", "AQF"),
    ("Persdienst Delvaux BV", "Grote Markt 3", "2800", "Mechelen", "nl", "PDV"),
    ("Horeca Service Coppens BV", "Leuvensesteenweg 450", "3070", "Kortenberg", "nl", "HSC"),
    ("Matériaux Renard SA", "Zoning Industriel 14", "1400", "Nivelles", "fr", "MRD"),
    ("Cloudix Software BV", "Kempische Steenweg 303", "3500", "Hasselt", "nl", "CLX"),
    ("Logistique Marchal SRL", "Rue de l'Industrie 40", "4460", "Grâce-Hollogne", "fr", "LMA"),
]

# Customers of the clients' sales invoices.
_CUSTOMERS = [
    ("Hotel Ter Duinen BV", "Zeedijk 240", "8300", "Knokke-Heist", "nl", ""),
    ("Restaurant De Gouden Lepel BV", "Bruul 51", "2800", "Mechelen", "nl", ""),
    ("Immo Lemaire SRL", "Boulevard d'Avroy 88", "4000", "Liège", "fr", ""),
    ("Bouwbedrijf Verstraete NV", "Roeselarestraat 19", "8840", "Staden", "nl", ""),
    ("Café Het Anker BV", "Vismarkt 6", "9000", "Gent", "nl", ""),
    ("Boutique Élise SRL", "Rue de Bruxelles 12", "1300", "Wavre", "fr", ""),
    ("Fietsen Hendrickx BV", "Diestsestraat 140", "3000", "Leuven", "nl", ""),
    ("Groupe Vandenberghe SA", "Avenue de Tervueren 96", "1040", "Etterbeek", "fr", ""),
    ("Kinderdagverblijf Het Zonnetje BV", "Dorpsstraat 33", "9800", "Deinze", "nl", ""),
    ("Clinique Vétérinaire Moreau SRL", "Rue de Namur 71", "5030", "Gembloux", "fr", ""),
]

# What each company sells, by its prefix: the price range in euro, the Belgian VAT rate
# that applies (21 standard, 12 restaurants, 6 food, water, flowers, renovation of older
# homes, 0 newspapers and periodicals), the unit (C62 piece, HUR hour).
_CATALOGUES = {
    "VF": (
        Item("Desembrood 800 g", 3, 5, 6),
        Item("Croissants, doos van 24", 18, 26, 6),
        Item("Verjaardagstaart op bestelling", 25, 60, 6),
        Item("Levering aan huis", 5, 15, 21),
    ),
    "FV": (
        Item("Porte intérieure en chêne", 380, 720, 21),
        Item("Châssis PVC double vitrage", 450, 1200, 21),
        Item("Main-d'œuvre menuiserie", 45, 58, 21, "HUR"),
        Item("Rénovation logement de plus de 10 ans", 40, 55, 6, "HUR"),
    ),
    "GP": (
        Item("Onderhoudsbeurt", 180, 320, 21),
        Item("Zomerband 205/55 R16", 85, 140, 21),
        Item("Werkuren mecanicien", 55, 72, 21, "HUR"),
        Item("Remblokken vooraan", 60, 110, 21),
    ),
    "BL": (
        Item("Lunch d'affaires", 24, 38, 12),
        Item("Boissons", 3, 9, 21),
        Item("Buffet traiteur par personne", 28, 45, 12),
        Item("Location de salle", 150, 350, 21),
    ),
    "AD": (
        Item("Geneesmiddelen, groepslevering", 40, 240, 6),
        Item("Verzorgingsproducten", 8, 30, 21),
        Item("EHBO-koffer bedrijf", 45, 85, 21),
    ),
    "CM": (
        Item("Ontwerp en studie", 75, 95, 21, "HUR"),
        Item("Werftoezicht", 70, 90, 21, "HUR"),
        Item("Renovatiestudie privéwoning", 65, 85, 6, "HUR"),
    ),
    "IL": (
        Item("Dépliants A5, 1000 exemplaires", 120, 260, 21),
        Item("Périodique communal, tirage mensuel", 400, 900, 0),
        Item("Cartes de visite, 500 exemplaires", 35, 70, 21),
    ),
    "TJ": (
        Item("Transport pallet Hasselt-Antwerpen", 65, 95, 21),
        Item("Wachttijd chauffeur", 38, 48, 21, "HUR"),
        Item("Express levering", 120, 220, 21),
    ),
    "FL": (
        Item("Composition florale", 35, 90, 6),
        Item("Plantes d'intérieur", 15, 60, 6),
        Item("Livraison", 8, 15, 21),
    ),
    "IW": (
        Item("Consultancy", 85, 115, 21, "HUR"),
        Item("Beheer netwerk, maandforfait", 250, 600, 21),
        Item("Laptop 14 inch", 850, 1400, 21),
    ),
    "TCB": (
        Item("Internet Business Fiber 500", 55, 95, 21),
        Item("Mobiel abonnement", 15, 35, 21),
    ),
    "ENX": (
        Item("Elektriciteit, maandvoorschot", 180, 650, 21),
        Item("Aardgas, maandvoorschot", 120, 420, 21),
    ),
    "GVD": (
        Item("Bloem T55, zak 25 kg", 14, 22, 6),
        Item("Boter, 10 kg", 70, 95, 6),
        Item("Verpakkingsmateriaal", 40, 120, 21),
    ),
    "BP": (
        Item("Papier A4, carton de 5 ramettes", 21, 32, 21),
        Item("Cartouches d'encre", 35, 80, 21),
        Item("Chaise de bureau", 180, 340, 21),
    ),
    "AQF": (Item("Eau de distribution, facture trimestrielle", 60, 220, 6),),
    "PDV": (
        Item("Abonnement dagblad", 28, 40, 0),
        Item("Vakblad, jaarabonnement", 90, 160, 0),
    ),
    "HSC": (
        Item("Personeelsfeest, catering per persoon", 30, 48, 12),
        Item("Zaalhuur", 200, 450, 21),
    ),
    "MRD": (
        Item("Panneaux multiplex 18 mm", 35, 60, 21),
        Item("Visserie inox, lot", 15, 45, 21),
        Item("Location camionnette", 80, 140, 21),
    ),
    "CLX": (
        Item("Boekhoudpakket, licentie per maand", 35, 75, 21),
        Item("Ondersteuning", 80, 110, 21, "HUR"),
    ),
    "LMA": (
        Item("Transport de palettes", 60, 140, 21),
        Item("Stockage mensuel", 90, 250, 21),
    ),
}

_BANK_CODES = (1, 63, 310, 363, 735, 973, 143, 651)  # 3-digit bank codes of the account
_FIRST = {
    "nl": ("Jan", "Lotte", "Pieter", "Sofie", "Wim", "An", "Koen", "Els"),
    "fr": ("Marc", "Julie", "Luc", "Claire", "Pierre", "Nathalie", "Olivier", "Sophie"),
}
_LAST = {
    "nl": ("Maes", "Willems", "Jacobs", "Mertens", "Goossens", "Wouters", "De Smet", "Claes"),
    "fr": ("Dupont", "Lambert", "Dubois", "Martin", "Simon", "Laurent", "Leroy", "Renard"),
}


def _companies(rows, rng: random.Random, *, external_ids: bool = False) -> list[Company]:
    companies = []
    for index, (name, street, postcode, city, language, prefix) in enumerate(rows, start=1):
        first_digit = rng.choice((4, 4, 5, 6, 7, 8, 8))  # old "0" numbers, mostly 04xx-08xx
        base = first_digit * 1_000_000 + rng.randrange(1_000_000)
        companies.append(
            Company(
                name=name,
                enterprise_number=enterprise_number(base),
                street=street,
                postcode=postcode,
                city=city,
                iban=belgian_iban(rng.choice(_BANK_CODES), rng.randrange(10**7)),
                language=language,
                prefix=prefix,
                external_id=f"CL-{index:04d}" if external_ids else "",
                catalogue=_CATALOGUES.get(prefix, ()),
            )
        )
    return companies


def demo_companies() -> dict[str, list[Company]]:
    """``clients``, ``suppliers`` and ``customers``: the same companies on every call."""
    rng = _rng("partnerspace-demo-companies")
    companies = {
        "clients": _companies(_CLIENTS, rng, external_ids=True),
        "suppliers": _companies(_SUPPLIERS, rng),
        "customers": _companies(_CUSTOMERS, rng),
    }
    numbers = [c.enterprise_number for group in companies.values() for c in group]
    if len(set(numbers)) != len(numbers):  # would make purchase/sale ambiguous at intake
        raise AssertionError("demo companies must have distinct enterprise numbers")
    return companies


def demo_clients() -> list[Company]:
    """The client companies; the demo firm gets the first ``CLIENT_COUNT``."""
    return demo_companies()["clients"]


def partner_enterprise_number() -> str:
    return enterprise_number(7_654_321)


# --- invoices -----------------------------------------------------------------------------

GENERIC_CATALOGUE = (
    Item("Consultancy", 80, 120, 21, "HUR"),
    Item("Kantoormateriaal", 20, 150, 21),
    Item("Horeca, zakenlunch", 25, 60, 12),
    Item("Boeken en tijdschriften", 15, 60, 6),
    Item("Dagblad, abonnement", 25, 40, 0),
)


def make_lines(rng: random.Random, count: int, catalogue: Sequence[Item] = ()) -> list[Line]:
    """``count`` invoice lines drawn from ``catalogue`` (a generic one when empty)."""
    catalogue = tuple(catalogue) or GENERIC_CATALOGUE
    lines = []
    for _index in range(count):
        item = rng.choice(catalogue)
        if item.unit_code == "HUR":
            quantity = Decimal(rng.randint(1, 32)) / 2  # half hours
        else:
            quantity = Decimal(rng.choice((1, 1, 1, 2, 2, 3, 4, 5, 6, 10, 12, 24)))
        cents = rng.randint(item.low * 100, item.high * 100)
        price = Decimal(cents // 5 * 5) / 100  # prices end in 0 or 5 cents
        lines.append(Line(item.name, quantity, price, Decimal(item.vat_rate), item.unit_code))
    return lines


def lines_for_size(size: int) -> int:
    """About how many lines make an invoice of ``size`` bytes (5 KB: 2, 50 KB: 76)."""
    return max(1, round((size - _BASE_SIZE) / _LINE_SIZE))


_BASE_SIZE, _LINE_SIZE = 3_960, 603  # measured on invoice_xml's output


@dataclass(frozen=True)
class Totals:
    line_extension: Decimal
    subtotals: tuple[tuple[Decimal, Decimal, Decimal], ...]  # (rate, taxable, tax), 21 first
    tax: Decimal

    @property
    def tax_inclusive(self) -> Decimal:
        return self.line_extension + self.tax


def totals(lines: Sequence[Line]) -> Totals:
    """EN 16931 arithmetic: tax per rate on the rate's line sum, rounded half up."""
    taxable: dict[Decimal, Decimal] = {}
    for line in lines:
        taxable[line.vat_rate] = taxable.get(line.vat_rate, Decimal("0.00")) + line.amount
    subtotals = tuple(
        (rate, money(base), money(base * rate / 100))
        for rate, base in sorted(taxable.items(), reverse=True)
    )
    return Totals(
        line_extension=money(sum((line.amount for line in lines), Decimal(0))),
        subtotals=subtotals,
        tax=money(sum((tax for _rate, _base, tax in subtotals), Decimal(0))),
    )


def _q(namespace: str, name: str) -> str:
    return f"{{{namespace}}}{name}"


def _cbc(parent, tag: str, text, **attrs):
    element = etree.SubElement(parent, _q(CBC, tag), attrs)
    element.text = str(text)
    return element


def _cac(parent, name: str):
    return etree.SubElement(parent, _q(CAC, name))


def _amount(parent, name: str, value: Decimal, currency: str = "EUR"):
    return _cbc(parent, name, f"{money(value):.2f}", currencyID=currency)


def _number(value: Decimal) -> str:
    """7.50 -> "7.5", 21 -> "21": no exponent, no trailing zeros."""
    return format(value.normalize(), "f")


def _tax_category(parent, name: str, rate: Decimal):
    category = _cac(parent, name)
    _cbc(category, "ID", "S" if rate else "Z")
    _cbc(category, "Percent", _number(rate))
    _cbc(_cac(category, "TaxScheme"), "ID", "VAT")


def _party(parent, name: str, company: Company):
    party = _cac(_cac(parent, name), "Party")
    _cbc(party, "EndpointID", company.enterprise_number, schemeID="0208")
    _cbc(_cac(party, "PartyName"), "Name", company.name)
    address = _cac(party, "PostalAddress")
    _cbc(address, "StreetName", company.street)
    _cbc(address, "CityName", company.city)
    _cbc(address, "PostalZone", company.postcode)
    _cbc(_cac(address, "Country"), "IdentificationCode", "BE")
    tax_scheme = _cac(party, "PartyTaxScheme")
    _cbc(tax_scheme, "CompanyID", company.vat_number)
    _cbc(_cac(tax_scheme, "TaxScheme"), "ID", "VAT")
    legal = _cac(party, "PartyLegalEntity")
    _cbc(legal, "RegistrationName", company.name)
    _cbc(legal, "CompanyID", company.enterprise_number, schemeID="0208")


_TERMS = {
    "nl": "Betaling binnen {days} dagen na factuurdatum, met vermelding van {ref}.",
    "fr": "Paiement à {days} jours date de facture, en mentionnant {ref}.",
}


def invoice_xml(
    *,
    number: str,
    issue_date: datetime.date,
    supplier: Company,
    customer: Company,
    lines: int | Sequence[Line] = 3,
    payment_days: int = 30,
    credit_note_for: str | None = None,
    payment_id: str | None = None,
    buyer_reference: str | None = None,
    seed: int | str | None = None,
) -> bytes:
    """A Peppol BIS Billing 3.0 UBL 2.1 Invoice, or CreditNote when ``credit_note_for``
    names the invoice it corrects, with children in the schema's order.

    ``lines`` is either the lines themselves or how many to draw from the supplier's
    catalogue (about 0.6 KB each on top of 4 KB: see ``lines_for_size``).
    Without ``seed`` the draw is seeded by the number and the parties: same call, same bytes.
    """
    if isinstance(lines, int):
        if lines < 1:
            raise ValueError("an invoice needs at least one line")
        rng = _rng(seed, number, supplier.enterprise_number, customer.enterprise_number)
        lines = make_lines(rng, lines, supplier.catalogue)
    else:
        rng = _rng(seed, number)
    lines = list(lines)
    sums = totals(lines)
    credit = credit_note_for is not None
    due_date = issue_date + datetime.timedelta(days=payment_days)
    payment_id = payment_id or structured_communication(rng.randrange(10**10))
    buyer_reference = buyer_reference or customer.external_id or f"PO-{rng.randint(1000, 9999)}"

    root_name = "CreditNote" if credit else "Invoice"
    root_ns = CREDIT_NOTE_NS if credit else INVOICE_NS
    root = etree.Element(_q(root_ns, root_name), nsmap={None: root_ns, "cac": CAC, "cbc": CBC})
    _cbc(root, "CustomizationID", CUSTOMIZATION_ID)
    _cbc(root, "ProfileID", PROFILE_ID)
    _cbc(root, "ID", number)
    _cbc(root, "IssueDate", issue_date.isoformat())
    if credit:
        _cbc(root, "CreditNoteTypeCode", "381")
    else:
        _cbc(root, "DueDate", due_date.isoformat())  # UBL 2.1 CreditNote has no DueDate
        _cbc(root, "InvoiceTypeCode", "380")
    _cbc(root, "DocumentCurrencyCode", "EUR")
    _cbc(root, "BuyerReference", buyer_reference)
    if credit:
        reference = _cac(_cac(root, "BillingReference"), "InvoiceDocumentReference")
        _cbc(reference, "ID", credit_note_for)
    _party(root, "AccountingSupplierParty", supplier)
    _party(root, "AccountingCustomerParty", customer)

    means = _cac(root, "PaymentMeans")
    _cbc(means, "PaymentMeansCode", "30", name="Credit transfer")
    if credit:
        _cbc(means, "PaymentDueDate", due_date.isoformat())
    _cbc(means, "PaymentID", payment_id)
    account = _cac(means, "PayeeFinancialAccount")
    _cbc(account, "ID", supplier.iban)
    _cbc(account, "Name", supplier.name)
    terms = _TERMS.get(supplier.language, _TERMS["nl"])
    _cbc(_cac(root, "PaymentTerms"), "Note", terms.format(days=payment_days, ref=payment_id))

    tax_total = _cac(root, "TaxTotal")
    _amount(tax_total, "TaxAmount", sums.tax)
    for rate, taxable, tax in sums.subtotals:
        subtotal = _cac(tax_total, "TaxSubtotal")
        _amount(subtotal, "TaxableAmount", taxable)
        _amount(subtotal, "TaxAmount", tax)
        _tax_category(subtotal, "TaxCategory", rate)

    monetary = _cac(root, "LegalMonetaryTotal")
    _amount(monetary, "LineExtensionAmount", sums.line_extension)
    _amount(monetary, "TaxExclusiveAmount", sums.line_extension)
    _amount(monetary, "TaxInclusiveAmount", sums.tax_inclusive)
    _amount(monetary, "PayableAmount", sums.tax_inclusive)

    for index, line in enumerate(lines, start=1):
        element = _cac(root, "CreditNoteLine" if credit else "InvoiceLine")
        _cbc(element, "ID", index)
        quantity_name = "CreditedQuantity" if credit else "InvoicedQuantity"
        _cbc(element, quantity_name, _number(line.quantity), unitCode=line.unit_code)
        _amount(element, "LineExtensionAmount", line.amount)
        item = _cac(element, "Item")
        _cbc(item, "Name", line.name)
        _tax_category(item, "ClassifiedTaxCategory", line.vat_rate)
        _amount(_cac(element, "Price"), "PriceAmount", line.unit_price)

    return etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)


# --- bank statements ----------------------------------------------------------------------


@dataclass(frozen=True)
class Payment:
    """An invoice settled through the bank: who, how much, with which communication."""

    counterparty: Company
    amount: Decimal  # positive; the direction is given by the list it is in
    communication: str  # a structured communication
    not_before: datetime.date | None = None  # the invoice date: nobody pays before it


def statement_movements(
    rng: random.Random,
    *,
    holder: Company,
    date_from: datetime.date,
    date_to: datetime.date,
    paid: Sequence[Payment] = (),
    received: Sequence[Payment] = (),
) -> list["coda.Movement"]:
    """A month of business banking: receipts, supplier payments, rent, salaries, fees."""
    span = max((date_to - date_from).days, 0)

    def day(payment: Payment) -> datetime.date:
        low = (payment.not_before - date_from).days if payment.not_before else 0
        return date_from + datetime.timedelta(days=rng.randint(min(max(low, 0), span), span))

    movements = [_movement(p.amount, day(p), p) for p in received]
    movements += [_movement(-p.amount, day(p), p) for p in paid]
    landlord = f"{rng.choice(_FIRST[holder.language])} {rng.choice(_LAST[holder.language])}"
    rent = Decimal(rng.randrange(1200, 2600, 50))
    movements.append(
        coda.Movement(
            amount=-rent,
            value_date=date_from + datetime.timedelta(days=min(1, span)),
            booking_date=date_from + datetime.timedelta(days=min(1, span)),
            counterparty_name=landlord,
            counterparty_account=belgian_iban(rng.choice(_BANK_CODES), rng.randrange(10**7)),
            communication=("Huur " if holder.language == "nl" else "Loyer ")
            + date_from.strftime("%m/%Y"),
        )
    )
    salary_day = min(date_from + datetime.timedelta(days=24), date_to)
    for _employee in range(rng.randint(2, 4)):
        name = f"{rng.choice(_FIRST[holder.language])} {rng.choice(_LAST[holder.language])}"
        movements.append(
            coda.Movement(
                amount=-money(Decimal(rng.randint(215000, 345000)) / 100),
                value_date=salary_day,
                booking_date=salary_day,
                counterparty_name=name,
                counterparty_account=belgian_iban(rng.choice(_BANK_CODES), rng.randrange(10**7)),
                communication=("Loon " if holder.language == "nl" else "Salaire ")
                + date_from.strftime("%m/%Y"),
            )
        )
    fees = money(Decimal(rng.randint(800, 2400)) / 100)
    movements.append(
        coda.Movement(
            amount=-fees,
            value_date=date_to,
            booking_date=date_to,
            communication="Beheerskosten rekening"
            if holder.language == "nl"
            else "Frais de gestion du compte",
        )
    )
    movements.sort(key=lambda m: (m.booking_date, m.amount))
    return movements


def _movement(amount: Decimal, date: datetime.date, payment: Payment):
    return coda.Movement(
        amount=money(amount),
        value_date=date,
        booking_date=date,
        counterparty_name=payment.counterparty.name,
        counterparty_account=payment.counterparty.iban,
        communication=payment.communication,
        structured=True,
    )


def statement_coda(
    *,
    holder: Company,
    sequence_number: int,
    creation_date: datetime.date,
    old_balance: Decimal,
    movements: Sequence["coda.Movement"] | None = None,
    seed: int | str | None = None,
) -> bytes:
    """A CODA statement of ``holder``'s account; a month of movements drawn when not given."""
    if movements is None:
        rng = _rng(seed, holder.iban, sequence_number)
        month_start = creation_date.replace(day=1)
        movements = statement_movements(
            rng, holder=holder, date_from=month_start, date_to=creation_date
        )
    return coda.write(
        bank_id=holder.iban[4:7],
        holder_name=holder.name,
        enterprise_number=holder.enterprise_number,
        iban=holder.iban,
        currency="EUR",
        creation_date=creation_date,
        sequence_number=sequence_number,
        old_balance=money(old_balance),
        movements=list(movements),
    )


# --- the demo dataset ---------------------------------------------------------------------

CLIENT_COUNT = 6
PURCHASES_PER_CLIENT = 4
SALES_PER_CLIENT = 3
STATEMENTS = 3
_Category = Document.Category


@dataclass
class Planned:
    """One demo document: what it must become at intake, its bytes, whether to release it."""

    client: Company
    category: str
    number: str
    name: str
    data: bytes
    release: bool


@dataclass
class _Invoice:
    client: Company
    category: str
    number: str
    issue_date: datetime.date
    supplier: Company
    customer: Company
    lines: list[Line]
    payment_id: str
    credit_note_for: str | None = None
    release: bool = False

    def xml(self) -> bytes:
        return invoice_xml(
            number=self.number,
            issue_date=self.issue_date,
            supplier=self.supplier,
            customer=self.customer,
            lines=self.lines,
            credit_note_for=self.credit_note_for,
            payment_id=self.payment_id,
            buyer_reference=self.customer.external_id or f"REF-{self.client.external_id}",
        )

    @property
    def payable(self) -> Decimal:
        return totals(self.lines).tax_inclusive


def _month_start(anchor: datetime.date, months_back: int) -> datetime.date:
    index = anchor.year * 12 + anchor.month - 1 - months_back
    return datetime.date(index // 12, index % 12 + 1, 1)


def demo_documents(anchor: datetime.date) -> list[Planned]:
    """The demo documents, dated in the three months before ``anchor``'s month.

    Dates follow the anchor; everything else (numbers, parties, lines, which ones are
    released) is drawn from fixed seeds, so another anchor yields the same numbers.
    """
    companies = demo_companies()
    clients = companies["clients"][:CLIENT_COUNT]
    suppliers, customers = companies["suppliers"], companies["customers"]
    first_day = _month_start(anchor, 3)
    last_day = _month_start(anchor, 0) - datetime.timedelta(days=1)
    period = (last_day - first_day).days
    invoices: list[_Invoice] = []

    for index, client in enumerate(clients):
        rng = _rng("partnerspace-demo", client.external_id)

        def date(rng=rng) -> datetime.date:
            return first_day + datetime.timedelta(days=rng.randint(0, period))

        purchases = []
        for slot in range(PURCHASES_PER_CLIENT):
            supplier = suppliers[(index * 3 + slot * 2) % len(suppliers)]
            purchases.append(
                _Invoice(
                    client=client,
                    category=_Category.PURCHASE,
                    number=f"{supplier.prefix}/{50000 + 611 * slot + 37 * index}",
                    issue_date=date(),
                    supplier=supplier,
                    customer=client,
                    lines=make_lines(rng, rng.randint(1, 4), supplier.catalogue),
                    payment_id=structured_communication(rng.randrange(10**10)),
                )
            )
        sales = []
        for slot in range(SALES_PER_CLIENT):
            customer = customers[(index * 2 + slot * 3) % len(customers)]
            sales.append(
                _Invoice(
                    client=client,
                    category=_Category.SALES,
                    number="",  # numbered by date below, as a real sales journal is
                    issue_date=date(),
                    supplier=client,
                    customer=customer,
                    lines=make_lines(rng, rng.randint(1, 5), client.catalogue),
                    payment_id=structured_communication(rng.randrange(10**10)),
                )
            )
        sales.sort(key=lambda invoice: invoice.issue_date)
        for serial, invoice in enumerate(sales, start=101):
            invoice.number = f"{client.prefix}-{serial:04d}"

        # One credit note per client, alternating purchase and sale: a partial credit
        # of the first line of an invoice, a few days after it.
        credited = (purchases if index % 2 == 0 else sales)[rng.randrange(2)]
        first = credited.lines[0]
        if first.unit_code == "HUR":  # half of the hours, in half hours
            half = max((first.quantity).to_integral_value(ROUND_HALF_UP) / 2, Decimal("0.5"))
        else:
            half = max(first.quantity // 2, Decimal(1))
        credit_lines = [Line(first.name, half, first.unit_price, first.vat_rate, first.unit_code)]
        if credited.category == _Category.PURCHASE:
            credit_number = f"{credited.supplier.prefix}/CN{7000 + 13 * index}"
        else:
            credit_number = f"{'CN' if client.language == 'nl' else 'NC'}-{index + 1:04d}"
        credit = _Invoice(
            client=client,
            category=credited.category,
            number=credit_number,
            issue_date=min(credited.issue_date + datetime.timedelta(days=6), last_day),
            supplier=credited.supplier,
            customer=credited.customer,
            lines=credit_lines,
            payment_id=structured_communication(rng.randrange(10**10)),
            credit_note_for=credited.number,
        )

        (purchases if credit.category == _Category.PURCHASE else sales).append(credit)

        # Release the older half of each journal: what a firm has approved or sent so far.
        for journal in (purchases, sales):
            journal.sort(key=lambda invoice: (invoice.issue_date, invoice.number))
            for invoice in journal[: len(journal) // 2]:
                invoice.release = True
            invoices.extend(journal)

    planned = [
        Planned(
            client=invoice.client,
            category=invoice.category,
            number=invoice.number,
            name=f"{invoice.number.replace('/', '-')}.xml",
            data=invoice.xml(),
            release=invoice.release,
        )
        for invoice in invoices
    ]
    planned.extend(_statements(clients[0], invoices, customers, first_day))
    return planned


def _statements(
    holder: Company,
    invoices: list[_Invoice],
    customers: list[Company],
    first_day: datetime.date,
):
    """Three consecutive monthly statements of the first client, balances carried over.

    Its invoices of each month are settled in that month's statement with their structured
    communication, as a bank reconciliation would find them; the first two are published.
    """
    rng = _rng("partnerspace-demo", "coda", holder.external_id)
    balance = money(Decimal(rng.randint(1_500_000, 4_500_000)) / 100)
    planned = []
    for sequence in range(1, STATEMENTS + 1):
        month_start = _month_start(first_day, 1 - sequence)  # first_day, then the next two
        month_end = month_start.replace(
            day=calendar.monthrange(month_start.year, month_start.month)[1]
        )
        mine = [
            invoice
            for invoice in invoices
            if invoice.client == holder
            and invoice.credit_note_for is None
            and month_start <= invoice.issue_date <= month_end
        ]
        paid = [
            Payment(invoice.supplier, invoice.payable, invoice.payment_id, invoice.issue_date)
            for invoice in mine
            if invoice.category == _Category.PURCHASE
        ]
        received = [
            Payment(invoice.customer, invoice.payable, invoice.payment_id, invoice.issue_date)
            for invoice in mine
            if invoice.category == _Category.SALES
        ]
        # Customers settling older invoices keep the account afloat.
        for customer in rng.sample(customers, 3):
            amount = money(Decimal(rng.randint(150_000, 900_000)) / 100)
            received.append(
                Payment(customer, amount, structured_communication(rng.randrange(10**10)))
            )
        movements = statement_movements(
            rng,
            holder=holder,
            date_from=month_start,
            date_to=month_end,
            paid=paid,
            received=received,
        )
        data = statement_coda(
            holder=holder,
            sequence_number=sequence,
            creation_date=month_end,
            old_balance=balance,
            movements=movements,
        )
        balance += sum((m.amount for m in movements), Decimal(0))
        planned.append(
            Planned(
                client=holder,
                category=_Category.REPORT,
                number=_statement_number(data),
                name=f"{holder.external_id}-{month_start:%Y-%m}.cod",
                data=data,
                release=sequence < STATEMENTS,
            )
        )
    return planned


def _statement_number(data: bytes) -> str:
    """The number intake will store for a statement: the parser's own reading of it."""
    return str(coda.parse(data).sequence_number)


def demo_password() -> tuple[str, bool]:
    """The demo users' password and whether it is the documented development default."""
    password = getattr(settings, "DEMO_PASSWORD", "")
    if password:
        return password, False
    if settings.DEBUG:
        return DEFAULT_PASSWORD, True
    raise CommandError(
        "Set DEMO_PASSWORD to the password the demo users should get. Without it the "
        f"documented default '{DEFAULT_PASSWORD}' is only used when DEBUG is on, so that "
        "a server never gets a known password."
    )


def seed(stdout=None, *, anchor: datetime.date | None = None) -> dict:
    """Create or refresh the demo firm, its users, clients and documents; idempotent.

    ``anchor`` (default: today) only moves the dates; a document whose client, category
    and number already exist is skipped, so a run on another day adds nothing.
    """
    password, is_default = demo_password()
    anchor = anchor or timezone.localdate()
    companies = demo_companies()

    partner, _created = Partner.objects.update_or_create(
        enterprise_number=partner_enterprise_number(), defaults={"name": PARTNER_NAME}
    )
    User = get_user_model()
    for username, role in (("demo", Membership.Role.OWNER), ("member", Membership.Role.MEMBER)):
        user, _created = User.objects.get_or_create(username=username)
        user.email = f"{username}@example.com"
        user.is_active = True
        user.set_password(password)
        user.save()
        Membership.objects.update_or_create(user=user, partner=partner, defaults={"role": role})
    _operator(password)

    clients = {}
    for company in companies["clients"][:CLIENT_COUNT]:
        clients[company.enterprise_number], _created = Client.objects.update_or_create(
            partner=partner,
            enterprise_number=company.enterprise_number,
            defaults={
                "name": company.name,
                "vat_number": company.vat_number,
                "external_id": company.external_id,
            },
        )

    created = released = 0
    for planned in demo_documents(anchor):
        client = clients[planned.client.enterprise_number]
        existing = Document.objects.filter(
            client=client, category=planned.category, number=planned.number
        ).first()
        if existing is None:
            try:
                result = ingest(client, planned.name, planned.data, category=None)
            except IntakeError as exc:
                raise CommandError(f"Demo document {planned.name} was refused: {exc}") from exc
            document = result.document
            if document.category != planned.category or document.number != planned.number:
                raise CommandError(
                    f"Demo document {planned.name} became a {document.category} numbered "
                    f"{document.number!r}; it was meant as {planned.category} "
                    f"{planned.number!r}."
                )
            created += result.created
        else:
            document = existing
        if planned.release and release(document):
            released += 1

    documents = Document.objects.filter(client__partner=partner)
    summary = {
        "partner": partner.name,
        "users": ["demo", "member", OPERATOR],
        "clients": Client.objects.filter(partner=partner).count(),
        "documents": documents.count(),
        "created": created,
        "released": released,
        "by_category": dict(Counter(documents.values_list("category", flat=True))),
        "by_status": dict(Counter(documents.values_list("status", flat=True))),
        "url": DEMO_URL,
    }
    if stdout is not None:
        stdout.write(_summary_text(summary, partner, password if is_default else None))
    return summary


def _operator(password: str) -> None:
    """The operators' account: staff, no firm, reads the exports in the admin (/admin/)."""
    user, _created = get_user_model().objects.get_or_create(username=OPERATOR)
    user.email = f"{OPERATOR}@example.com"
    user.is_active = user.is_staff = True
    user.is_superuser = False
    user.set_password(password)
    user.save()
    user.user_permissions.set(
        Permission.objects.filter(
            codename__startswith="view_", content_type__app_label__in=OPERATOR_APPS
        )
    )


def _summary_text(summary: dict, partner: Partner, shown_password: str | None) -> str:
    labels = dict(Document.Category.choices)
    statuses = dict(Document.Status.choices)
    lines = [
        f"Demo data ready: {partner.name} ({format_enterprise_number(partner.enterprise_number)})"
        f", {summary['clients']} clients, {summary['documents']} documents "
        f"({summary['created']} new, {summary['released']} released now).",
    ]
    for category, count in sorted(summary["by_category"].items()):
        lines.append(f"  {labels.get(category, category)}: {count}")
    lines.append(
        "  "
        + ", ".join(
            f"{statuses.get(status, status).lower()}: {count}"
            for status, count in sorted(summary["by_status"].items())
        )
    )
    if shown_password:
        lines.append(
            f"Open {DEMO_URL} and sign in as demo / {shown_password} "
            f"(or member / {shown_password}); the admin at {DEMO_URL}admin/ as "
            f"{OPERATOR} / {shown_password}."
        )
    else:
        lines.append(
            f"Open {DEMO_URL} and sign in as demo (or member) with the password in DEMO_PASSWORD;"
            f" the admin at {DEMO_URL}admin/ as {OPERATOR}, same password."
        )
    return "\n".join(lines) + "\n"
