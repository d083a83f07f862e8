"""The addresses exports connect from are shown on the pages of every extension that
connects to the firm's own server (SFTP, HTTP), and on no other; unset, the page says the
operator has not listed them."""

import pytest
from django.urls import reverse

from extensions import registry

pytestmark = pytest.mark.django_db

ADDRESSES = ["203.0.113.7", "2001:db8::7"]


@pytest.fixture
def signed_in(client, firm):
    client.force_login(firm["owner"])
    return client


def page(client, key):
    return client.get(reverse("store:extension", args=[key])).content.decode()


def test_shown_exactly_on_the_extensions_that_reach_the_firms_server(signed_in, settings):
    settings.EXPORT_EGRESS_IPS = ADDRESSES
    shown = {key for key in registry.connectors() if "203.0.113.7" in page(signed_in, key)}
    assert shown == {"sftp", "http"}
    assert "2001:db8::7" in page(signed_in, "http")


def test_on_the_configure_and_manage_forms(signed_in, settings, firm):
    settings.EXPORT_EGRESS_IPS = ADDRESSES
    form = signed_in.post(reverse("store:configure", args=["sftp"]), {"confirmed": "1"})
    assert "203.0.113.7" in form.content.decode()
    manage = signed_in.get(firm["installation"].get_absolute_url())
    assert "203.0.113.7" in manage.content.decode()


def test_unset_the_page_says_the_operator_has_not_listed_them(signed_in, settings):
    settings.EXPORT_EGRESS_IPS = []
    assert "the operator of this portal has not set them" in page(signed_in, "sftp")
    assert "the operator of this portal has not set them" not in page(signed_in, "email")
