"""Belgian enterprise numbers (KBO/BCE) and the VAT numbers built on them.

Accepted spellings: ``BE 0123.456.749``, ``0123456749``, ``BE0123456749``; stored as the
ten digits. Old nine-digit numbers get their leading zero back.
"""

import re

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

_SEPARATORS = re.compile(r"[\s.\-/]")


def normalize(value: str) -> str:
    """Strip the country prefix and separators; no validation."""
    text = _SEPARATORS.sub("", str(value or "")).upper()
    if text.startswith("BE"):
        text = text[2:]
    if len(text) == 9 and text.isdigit():
        text = "0" + text
    return text


def is_valid(number: str) -> bool:
    """The mod-97 rule: 97 - (first 8 digits mod 97) equals the last two digits."""
    return (
        len(number) == 10
        and number.isdigit()
        and number[0] in "01"
        and 97 - int(number[:8]) % 97 == int(number[8:])
    )


def clean_enterprise_number(value: str) -> str:
    """Return the ten-digit form or raise a ValidationError that says what is wrong."""
    number = normalize(value)
    if not number:
        raise ValidationError(_("Enter an enterprise number."), code="required")
    if not number.isdigit() or len(number) != 10:
        raise ValidationError(
            _("%(value)s is not an enterprise number: it must have 10 digits."),
            code="format",
            params={"value": value},
        )
    if number[0] not in "01":
        raise ValidationError(
            _("%(value)s is not an enterprise number: it must start with 0 or 1."),
            code="prefix",
            params={"value": value},
        )
    if not is_valid(number):
        raise ValidationError(
            _("%(value)s is not a valid enterprise number: the check digits do not match."),
            code="checksum",
            params={"value": value},
        )
    return number


def clean_vat_number(value: str) -> str:
    """A Belgian VAT number is BE followed by the enterprise number."""
    return "BE" + clean_enterprise_number(value)


def format_enterprise_number(number: str) -> str:
    """0123456749 -> 0123.456.749, the way it is printed on invoices."""
    if len(number) == 10 and number.isdigit():
        return f"{number[:4]}.{number[4:7]}.{number[7:]}"
    return number


def validate_enterprise_number(value: str) -> None:
    clean_enterprise_number(value)


def validate_vat_number(value: str) -> None:
    if value:
        clean_vat_number(value)


class EnterpriseNumberField(models.CharField):
    """Stores the ten digits whatever spelling was typed."""

    default_validators = [validate_enterprise_number]

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_length", 10)
        super().__init__(*args, **kwargs)

    def to_python(self, value):
        value = super().to_python(value)
        return normalize(value) if value else value

    def pre_save(self, model_instance, add):
        value = normalize(getattr(model_instance, self.attname))
        setattr(model_instance, self.attname, value)
        return value

    def formfield(self, **kwargs):
        kwargs.setdefault("max_length", 20)
        field = super().formfield(**kwargs)
        field.max_length = 20
        field.widget.attrs["maxlength"] = "20"
        return field


class VatNumberField(models.CharField):
    """Stores ``BE`` + ten digits, or nothing for a company without VAT."""

    default_validators = [validate_vat_number]

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_length", 12)
        super().__init__(*args, **kwargs)

    def to_python(self, value):
        value = super().to_python(value)
        return "BE" + normalize(value) if value else value

    def pre_save(self, model_instance, add):
        value = getattr(model_instance, self.attname)
        value = "BE" + normalize(value) if value else ""
        setattr(model_instance, self.attname, value)
        return value

    def formfield(self, **kwargs):
        field = super().formfield(**kwargs)
        field.max_length = 20
        field.widget.attrs["maxlength"] = "20"
        return field
