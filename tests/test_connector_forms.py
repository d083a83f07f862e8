"""Forms built with their context: a client's field offering a list fetched from the
destination (as Exact divisions or Yuki administrations will), checked again on save."""

import pytest
from django import forms
from django.urls import reverse

from extensions import registry
from extensions.connectors.base import Connector, ConnectorForm, TransientError
from extensions.models import Installation, Integration

pytestmark = pytest.mark.django_db


class Ledger:
    """The destination's side: which administrations exist, and whether it answers."""

    administrations = {"adm-1": "Bakkerij (2025)", "adm-2": "Bakkerij (2026)"}
    down = False
    asked_for = []


class _ClientForm(ConnectorForm):
    administration = forms.ChoiceField(label="Administration")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.offer_choices(
            "administration",
            lambda: self.connector(self.installation).administrations(self.client),
        )


class _LedgerConnector(Connector):
    key = "ledger-test"
    name = "Ledger test"
    description = "test"
    category = "accounting"
    client_form = _ClientForm

    def administrations(self, client):
        Ledger.asked_for.append((self.destination.pk, client.pk))
        if Ledger.down:
            raise TransientError("ledger.example did not answer within 10 seconds.")
        return sorted(Ledger.administrations.items())

    def open(self):
        raise AssertionError("not used")

    def check(self):
        return "ok"


@pytest.fixture
def ledger(firm):
    Ledger.administrations = {"adm-1": "Bakkerij (2025)", "adm-2": "Bakkerij (2026)"}
    Ledger.down, Ledger.asked_for = False, []
    with registry.registered(_LedgerConnector):
        yield Installation.objects.create(
            partner=firm["partner"], connector="ledger-test", name="Ledger", settings={}
        )


def test_the_client_form_offers_the_destinations_list_for_this_client(client, firm, ledger):
    company = firm["clients"][1]
    client.force_login(firm["member"])
    url = reverse("integrations:configure", args=[company.pk, ledger.pk])
    page = client.get(url).content.decode()
    assert "Bakkerij (2025)" in page and "Bakkerij (2026)" in page
    assert Ledger.asked_for == [(ledger.pk, company.pk)]  # asked with its context

    response = client.post(url, {"categories": ["purchase"], "client-administration": "adm-2"})
    assert response.status_code == 302
    integration = Integration.objects.get(client=company, installation=ledger)
    assert integration.client_settings == {"administration": "adm-2"}


def test_a_choice_the_destination_no_longer_has_is_refused_on_save(client, firm, ledger):
    company = firm["clients"][1]
    client.force_login(firm["member"])
    url = reverse("integrations:configure", args=[company.pk, ledger.pk])
    client.get(url)
    del Ledger.administrations["adm-2"]  # removed at the destination meanwhile
    response = client.post(url, {"categories": ["purchase"], "client-administration": "adm-2"})
    assert "Select a valid choice" in response.content.decode()
    assert not Integration.objects.filter(client=company, installation=ledger).exists()


def test_a_destination_that_does_not_answer_is_said_on_the_field(client, firm, ledger):
    company = firm["clients"][1]
    client.force_login(firm["member"])
    Ledger.down = True
    url = reverse("integrations:configure", args=[company.pk, ledger.pk])
    response = client.post(url, {"categories": ["purchase"], "client-administration": "adm-1"})
    body = response.content.decode()
    assert "The list could not be fetched from the destination" in body
    assert "ledger.example did not answer within 10 seconds." in body
    assert not Integration.objects.filter(client=company, installation=ledger).exists()
