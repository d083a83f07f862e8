"""Belgian conventions in every language: dates day/month/year (English on a 24-hour clock),
amounts with thousands separators and the currency as each language writes them, on
pages and through the one helper commands use."""

import datetime
from decimal import Decimal

import pytest
from django.template import Context, Template
from django.urls import reverse
from django.utils import formats, translation

from partnerspace.amounts import format_amount

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("language", "expected"),
    [("en", "16,523.09 EUR"), ("nl", "16.523,09 EUR"), ("fr", "16\xa0523,09 EUR")],
)
def test_amounts_per_language(language, expected):
    with translation.override(language):
        assert format_amount(Decimal("16523.09"), "EUR") == expected
        rendered = Template("{% load portal %}{{ value|amount:'EUR' }}").render(
            Context({"value": Decimal("16523.09")})
        )
        assert rendered == expected
    assert format_amount(Decimal("-1234567.5"), "EUR", "en") == "-1,234,567.50 EUR"
    assert format_amount(None, "EUR") == ""


@pytest.mark.parametrize("language", ["en", "nl", "fr"])
def test_short_dates_are_day_month_year_in_every_language(language):
    """Belgium writes 04/03/2026 in all three (Django's Dutch would say 4-3-2026)."""
    moment = datetime.datetime(2026, 3, 4, 17, 5)
    with translation.override(language):
        assert formats.date_format(moment.date(), "SHORT_DATE_FORMAT") == "04/03/2026"
        assert formats.date_format(moment, "SHORT_DATETIME_FORMAT") == "04/03/2026 17:05"


def test_english_dates_are_day_month_year_on_a_24_hour_clock():
    moment = datetime.datetime(2026, 3, 4, 17, 5)
    with translation.override("en"):
        assert formats.date_format(moment.date(), "SHORT_DATE_FORMAT") == "04/03/2026"
        assert formats.date_format(moment, "SHORT_DATETIME_FORMAT") == "04/03/2026 17:05"
        assert formats.time_format(moment.time()) == "17:05"
        assert formats.date_format(moment.date()) == "4 March 2026"


def test_the_documents_tab_shows_amounts_and_dates_the_belgian_way(client, firm, settings):
    document = firm["documents"][0]
    document.payable_amount = Decimal("16523.09")
    document.currency = "EUR"
    document.issue_date = datetime.date(2026, 3, 4)
    document.save()
    client.force_login(firm["owner"])
    url = reverse("clients:documents", args=[document.client.pk])
    english = client.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert "16,523.09 EUR" in english
    assert "04/03/2026" in english
    client.post(reverse("set_language"), {"language": "nl", "next": url})
    assert "16.523,09 EUR" in client.get(url).content.decode()
