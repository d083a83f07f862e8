"""Amounts as a Belgian firm reads them in its language: two decimals, thousands grouped,
the currency after (``16,523.09 EUR``, ``16.523,09 EUR``, ``16 523,09 EUR``). Pages use
the ``amount`` filter, commands call ``format_amount``: one rule everywhere."""

from decimal import Decimal, InvalidOperation

from django.utils import numberformat
from django.utils.formats import get_format
from django.utils.translation import get_language


def format_amount(value, currency: str = "", language: str | None = None) -> str:
    """``""`` for no amount; the value as it was for something that is not a number."""
    if value is None or value == "":
        return ""
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    language = language or get_language()
    text = numberformat.format(
        number,
        get_format("DECIMAL_SEPARATOR", language),
        decimal_pos=2,
        grouping=get_format("NUMBER_GROUPING", language) or 3,
        thousand_sep=get_format("THOUSAND_SEPARATOR", language),
        force_grouping=True,
    )
    return f"{text} {currency}".strip()
