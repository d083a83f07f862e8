"""How an invoice's quantities, rates and units read on the document page."""

from decimal import Decimal

from django import template
from django.utils.formats import number_format
from django.utils.translation import gettext_lazy as _

register = template.Library()

# UN/ECE Recommendation 20 codes most Belgian invoices use; any other shows as written.
UNITS = {
    "C62": _("pcs"),
    "H87": _("pcs"),
    "EA": _("pcs"),
    "XPP": _("pcs"),
    "HUR": _("hours"),
    "DAY": _("days"),
    "MON": _("months"),
    "ANN": _("years"),
    "KGM": _("kg"),
    "TNE": _("tonnes"),
    "MTR": _("m"),
    "MTK": _("m²"),
    "MTQ": _("m³"),
    "LTR": _("litres"),
    "KMT": _("km"),
    "KWH": _("kWh"),
    "LS": _("lump sum"),
}


@register.filter
def quantity(value):
    """``1,5`` / ``1.5`` / ``12``: only the decimals the number has, in the page's language."""
    if value is None or value == "":
        return ""
    number = Decimal(value)
    exponent = number.normalize().as_tuple().exponent
    places = max(0, -exponent) if isinstance(exponent, int) else 0
    return number_format(number, decimal_pos=places, use_l10n=True, force_grouping=True)


@register.filter
def unit(code):
    """A readable unit for a UN/ECE unit code."""
    return UNITS.get((code or "").strip().upper(), code or "")


# UNCL 5305 VAT category codes of EN 16931.
VAT_CATEGORIES = {
    "S": _("Standard rate"),
    "Z": _("Zero rated"),
    "E": _("Exempt from VAT"),
    "AE": _("Reverse charge"),
    "K": _("Intra-community supply"),
    "G": _("Export outside the EU"),
    "O": _("Outside the scope of VAT"),
    "L": _("Canary Islands tax"),
    "M": _("Ceuta and Melilla tax"),
}


@register.filter
def vat_category(code):
    """A readable VAT category for its code; an unknown code shows as written."""
    return VAT_CATEGORIES.get((code or "").strip().upper(), code or "")
