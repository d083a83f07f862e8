import pytest
from django.core.exceptions import ValidationError

from partnerspace.enterprise import (
    clean_enterprise_number,
    clean_vat_number,
    format_enterprise_number,
    is_valid,
)


@pytest.mark.parametrize(
    "typed",
    ["BE 0123.456.749", "0123456749", "BE0123456749", "be0123456749", "0123 456 749", "123456749"],
)
def test_accepted_spellings_store_ten_digits(typed):
    assert clean_enterprise_number(typed) == "0123456749"


@pytest.mark.parametrize("number", ["0403170701", "0202239951", "1000000021"])
def test_real_numbers_pass_the_mod97_rule(number):
    assert is_valid(number)


@pytest.mark.parametrize(
    ("typed", "reason"),
    [
        ("0123456748", "check digits"),
        ("2123456749", "start with 0 or 1"),
        ("01234567", "10 digits"),
        ("012345674900", "10 digits"),
        ("BE01234A6749", "10 digits"),
        ("", "Enter an enterprise number"),
    ],
)
def test_bad_numbers_say_why(typed, reason):
    with pytest.raises(ValidationError) as caught:
        clean_enterprise_number(typed)
    assert reason in caught.value.messages[0]


def test_vat_number_is_be_plus_enterprise_number():
    assert clean_vat_number("0123.456.749") == "BE0123456749"
    with pytest.raises(ValidationError):
        clean_vat_number("BE0123456748")


def test_format_for_print():
    assert format_enterprise_number("0123456749") == "0123.456.749"


@pytest.mark.django_db
def test_client_stores_normalized_numbers(make_partner, make_client):
    from clients.models import Client

    partner = make_partner()
    client = make_client(partner, enterprise_number="BE 0123.456.749")
    client.vat_number = "be 0123 456 749"
    client.save()
    client.refresh_from_db()
    assert (client.enterprise_number, client.vat_number) == ("0123456749", "BE0123456749")
    duplicate = Client(partner=partner, name="Same number", enterprise_number="0123456749")
    with pytest.raises(ValidationError) as caught:
        duplicate.full_clean()
    assert "enterprise_number" in str(caught.value) or "__all__" in caught.value.message_dict
