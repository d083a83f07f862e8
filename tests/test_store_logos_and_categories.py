"""The Store shows every extension with its own logo and filters by category, with or
without a search, in plain links that work without script."""

from pathlib import Path

import pytest
from defusedxml import ElementTree
from django.contrib.staticfiles import finders
from django.urls import reverse

from extensions import registry

pytestmark = pytest.mark.django_db

SVG = "{http://www.w3.org/2000/svg}svg"


@pytest.fixture
def member(client, firm):
    client.force_login(firm["member"])
    return client


@pytest.mark.parametrize("key", sorted(registry.connectors()))
def test_every_registered_connector_declares_a_well_formed_svg_logo(key):
    connector = registry.get(key)
    assert connector.logo.endswith(".svg")
    path = finders.find(connector.logo)
    assert path, f"{connector.logo} is not among the static files"
    root = ElementTree.parse(path).getroot()
    assert root.tag == SVG
    assert root.get("viewBox")
    assert len(root) > 0


def test_each_logo_is_its_own():
    logos = [connector.logo for connector in registry.connectors().values()]
    contents = {Path(finders.find(logo)).read_bytes() for logo in logos}
    assert len(contents) == len(logos)


def test_store_cards_and_extension_page_show_the_logo_beside_the_name(member):
    store = member.get(reverse("store:index")).content.decode()
    for connector in registry.connectors().values():
        assert f'src="/static/{connector.logo}" alt=""' in store

    page = member.get(reverse("store:extension", args=["sftp"])).content.decode()
    assert 'src="/static/extensions/logos/sftp.svg" alt=""' in page
    assert "SFTP</h1>" in page


def keys(response):
    return {card["connector"].key for card in response.context["cards"]}


def test_a_category_shows_only_its_extensions(member):
    storage = member.get(reverse("store:index"), {"category": "storage"})
    assert keys(storage) == {"sftp", "gdrive", "onedrive", "dropbox"}
    page = storage.content.decode()
    assert '<a href="?category=storage" aria-current="page">' in page
    accounting = keys(member.get(reverse("store:index"), {"category": "accounting"}))
    assert {"exact", "yuki", "octopus", "zenvoices"} <= accounting
    assert not accounting & {"sftp", "email", "http"}


def test_category_and_search_combine_and_each_keeps_the_other(member):
    response = member.get(reverse("store:index"), {"category": "storage", "q": "drive"})
    assert keys(response) == {"gdrive", "onedrive"}
    page = response.content.decode()
    assert '<input type="hidden" name="category" value="storage">' in page
    assert '<a href="?category=accounting&amp;q=drive">' in page
    nothing = member.get(reverse("store:index"), {"category": "email", "q": "drive"})
    assert keys(nothing) == set()
    assert "No extension matches" in nothing.content.decode()


def test_an_unknown_category_shows_everything(member):
    response = member.get(reverse("store:index"), {"category": "nonsense"})
    assert keys(response) == set(registry.connectors())
