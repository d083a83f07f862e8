"""Every connector of the registry against the contract (``tests/contract.py``), each
test once per connector key, so a new destination is checked by being listed."""

import io
import re
from dataclasses import replace
from datetime import timedelta

import pytest
from django import forms
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone, translation

from clients.models import Document
from clients.release import release
from exports import engine
from exports.models import ExportJob
from extensions import registry, views
from extensions.connectors.base import (
    ConfirmationNeeded,
    Connector,
    ConnectorForm,
    DestinationRefused,
    ReauthorizationRequired,
    Receipt,
    TransientError,
)
from extensions.models import Installation, Integration
from tests import contract
from tests.peers import free_port

pytestmark = pytest.mark.django_db

KEYS = sorted(registry.connectors())
by_key = pytest.mark.parametrize("key", KEYS)


@pytest.fixture(autouse=True)
def _english():
    """Messages are read in the source language, whatever another test left active."""
    with translation.override("en"):
        yield


@pytest.fixture
def stage(firm, make_document):
    """Installs a connector with a configuration for the firm's second client and makes
    the file one of its jobs sends, through the engine's own ``build_file``."""

    class Stage:
        client = firm["clients"][1]

        def install(self, connector, config):
            installation = Installation.objects.create(
                partner=firm["partner"],
                connector=connector.key,
                name=f"Contract {connector.key}",
                settings=config.settings,
                secrets=config.secrets,
            )
            integration = Integration.objects.create(
                client=self.client,
                installation=installation,
                categories=sorted(connector.accepts),
                client_settings=config.client_settings,
                client_secrets=config.client_secrets,
                activated_at=timezone.now() - timedelta(minutes=5),
            )
            return installation, integration

        def connector(self, installation, integration):
            """As the engine builds it: per client when its scope is the integration."""
            connector = installation.connector_instance()
            if connector.connection_scope == "integration":
                connector.destination = integration.connector_destination()
            return connector

        def export_file(self, installation, integration):
            document = make_document(self.client, Document.Category.PURCHASE)
            release(document)
            job = ExportJob.objects.get(document=document, integration=integration)
            return engine.build_file(job, self.connector(installation, integration))

    return Stage()


def no_leak(text: str, config, what: str) -> None:
    leaked = contract.leaks(text, config)
    assert not leaked, f"{what} shows {', '.join(leaked)}: {contract.around(text, config)}"


# --- the kit itself ----------------------------------------------------------------------


def test_every_entry_of_the_kit_is_a_registered_connector():
    """A key is stored in every installation: an entry left without its connector means a
    key was renamed, which would orphan the installations of the old one."""
    assert sorted(set(contract.ENTRIES) - set(KEYS)) == []


def test_a_connector_without_an_entry_fails_naming_what_to_add():
    with (
        registry.registered(contract.memory_connector("unlisted-test")),
        pytest.raises(pytest.fail.Exception, match=r"add unlisted-test to tests/contract\.py"),
    ):
        contract.entry_for("unlisted-test")


def test_declaration_problems_are_found():
    class Careless(Connector):
        key = "Careless Key"
        name = "Careless"
        description = "Not translatable."
        category = "cloud"
        accepts = frozenset({"everything"})
        formats = ("pdf",)
        connection_scope = "client"

        def open(self):
            raise AssertionError("not used")

        def check(self):
            raise AssertionError("not used")

    problems = "\n".join(contract.declaration_problems(Careless))
    for expected in (
        "not a slug",
        "description is not translatable",
        "writes is empty",
        "category 'cloud'",
        "accepts ['everything']",
        "unknown formats ['pdf']",
        "connection_scope 'client'",
    ):
        assert expected in problems


def test_a_credential_field_not_marked_secret_is_found():
    class Leaky(ConnectorForm):
        api_key = forms.CharField()
        pin = forms.CharField(widget=forms.PasswordInput)

    assert contract.secret_field_problems(Leaky) == [
        "api_key looks like a credential but is not wrapped in secret()",
        "pin looks like a credential but is not wrapped in secret()",
    ]


def test_the_memory_connector_meets_the_declarations_and_serves_the_engine(stage):
    """What a test of the engine does with it: register a fresh one, release, deliver."""
    memory = contract.memory_connector()
    assert contract.declaration_problems(memory) == []
    with registry.registered(memory):
        installation, integration = stage.install(memory, contract.Config({}, {}))
        export_file = stage.export_file(installation, integration)
        report = engine.deliver(engine.destination_of(integration))
        assert report.delivered == 1
        contract.send_twice(lambda: stage.connector(installation, integration), export_file)
    assert list(memory.held) == [export_file.idempotency_key]
    assert len(memory.received) == 3  # the engine's send and the two of a lost answer

    refusing = contract.memory_connector(refusal=DestinationRefused("quota exhausted"))
    with pytest.raises(DestinationRefused), refusing(None).open() as session:
        session.send(export_file)


# --- declarations and forms ---------------------------------------------------------------


@by_key
def test_declarations(key):
    connector = registry.get(key)
    contract.entry_for(key)  # listed, so every other check runs for it
    assert connector.key == key
    assert reverse("store:extension", args=[key]) == f"/store/{key}/"
    assert contract.declaration_problems(connector) == []


@by_key
def test_a_bound_form_never_shows_a_stored_secret(key, stage):
    """Neither retyped (a form shown again after an error) nor from the stored values."""
    connector = registry.get(key)
    sample = contract.entry_for(key).sample
    installation, _integration = stage.install(connector, sample)
    stored = {**sample.settings, **sample.secrets}
    if connector.settings_form is not None:
        data = contract.form_data(connector.settings_form, stored, "settings")
        bound = views._settings_form(connector, data, installation=installation)
        bound.is_valid()
        unbound = views._settings_form(connector, installation=installation)
        unbound.initial = {**unbound.initial, **sample.secrets}
        for form in (bound, unbound):
            no_leak(str(form), sample, "the settings form")
    if connector.client_form is not None:
        values = {**sample.client_settings, **sample.client_secrets}
        form = connector.client_form(
            contract.form_data(connector.client_form, values, "client"),
            prefix="client",
            initial=values,
            has_stored_secrets=set(sample.client_secrets),
            connector=connector,
            installation=installation,
            client=stage.client,
        )
        form.is_valid()
        no_leak(str(form), sample, "the client form")


@by_key
def test_blank_secrets_keep_the_stored_ones(key, stage):
    connector = registry.get(key)
    sample = contract.entry_for(key).sample
    installation, _integration = stage.install(connector, sample)
    if connector.settings_form is not None:
        data = contract.form_data(connector.settings_form, sample.settings, "settings")
        form = views._settings_form(connector, data, installation=installation)
        assert form.is_valid(), f"the kit's sample does not pass the form: {form.errors}"
        assert form.split(installation.secrets) == (
            {k: v for k, v in form.cleaned_data.items() if k not in form.secret_names},
            sample.secrets,
        )
    if connector.client_form is not None and sample.client_secrets:
        data = contract.form_data(connector.client_form, sample.client_settings, "client")
        form = connector.client_form(
            data,
            prefix="client",
            has_stored_secrets=set(sample.client_secrets),
            connector=connector,
            installation=installation,
            client=stage.client,
        )
        assert form.is_valid(), form.errors
        assert form.split(sample.client_secrets)[1] == sample.client_secrets


@by_key
def test_changing_the_binding_drops_the_stored_secrets(key, stage):
    """Each binding field in turn names another destination: the stored secrets are not
    kept for it, and the form says why when it asks for them again."""
    connector = registry.get(key)
    entry = contract.entry_for(key)
    sample = entry.sample
    typed = connector.secret_fields(connector.settings_form)
    if typed and not (connector.binding_fields or entry.rebind):
        pytest.fail(
            f"{key} takes secrets but names no destination they belong to: declare "
            "binding_fields (or override binding()) and give tests/contract.py a rebind value",
            pytrace=False,
        )
    missing = set(connector.binding_fields) - set(entry.rebind)
    assert not missing, f"give {key}'s entry in tests/contract.py a rebind value for {missing}"
    installation, _integration = stage.install(connector, sample)
    assert installation.secrets_binding == connector.binding(sample.settings)
    for name, other in entry.rebind.items():
        edited = {**sample.settings, name: other}
        assert connector.binding(edited) != installation.secrets_binding, (
            f"{name}={other!r} does not change {key}'s binding"
        )
        # Changed behind the form's back (or by a sign-in): no connector gets the secrets.
        moved = Installation.objects.get(pk=installation.pk)
        moved.settings = edited
        with pytest.raises(ReauthorizationRequired):
            moved.connector_instance()
        form_class = connector.settings_form
        if form_class is None or name not in form_class.base_fields:
            continue  # not a field of the form (an account a sign-in named)
        data = contract.form_data(form_class, edited, "settings")
        form = views._settings_form(connector, data, installation=installation)
        valid = form.is_valid()
        assert form.stored_secrets_dropped, f"changing {name} kept the secrets"
        kept = set(form.split(installation.secrets)[1].values()) & set(sample.secrets.values())
        assert not kept, f"changing {name} kept {len(kept)} stored secret(s)"
        if not valid:
            assert str(form.rebind_message) in form.non_field_errors(), form.errors


@by_key
def test_pages_the_admin_and_dumps_never_show_a_secret(
    key, stage, client, admin_client, firm, settings
):
    connector = registry.get(key)
    settings.EMAIL_HOST_PASSWORD = "operator-smtp-Pass/9 w"
    sample = replace(contract.entry_for(key).sample, hidden=(settings.EMAIL_HOST_PASSWORD,))
    installation, integration = stage.install(connector, sample)
    client.force_login(firm["owner"])
    pages = {
        "Manage": client.get(reverse("store:manage", args=[installation.pk])),
        "the Integrations tab": client.get(reverse("integrations:list", args=[stage.client.pk])),
        "the integration's form": client.get(
            reverse("integrations:edit", args=[stage.client.pk, integration.pk])
        ),
        "the admin's installations": admin_client.get("/admin/extensions/installation/"),
        "the admin's installation": admin_client.get(
            f"/admin/extensions/installation/{installation.pk}/change/"
        ),
        "the admin's integrations": admin_client.get("/admin/extensions/integration/"),
        "the admin's integration": admin_client.get(
            f"/admin/extensions/integration/{integration.pk}/change/"
        ),
    }
    for what, response in pages.items():
        assert response.status_code == 200, what
        no_leak(response.content.decode(), sample, what)
    shown = pages["the admin's installation"].content.decode()
    assert all(v in shown for v in sample.settings.values() if isinstance(v, str) and v), (
        "the admin shows the settings, so it could have shown the secrets"
    )
    dump = io.StringIO()
    call_command("dumpdata", stdout=dump)
    no_leak(dump.getvalue(), sample, "dumpdata")


# --- against the real peer ----------------------------------------------------------------


def raised(stage, installation, integration, expected) -> dict:
    """What ``check()`` and a send, each by a connector of its own, raised: ``expected``."""
    errors = {}
    with pytest.raises(expected) as caught:
        stage.connector(installation, integration).check()
    errors["check()"] = caught.value
    export_file = stage.export_file(installation, integration)
    with (
        pytest.raises(expected) as caught,
        stage.connector(installation, integration).open() as session,
    ):
        session.send(export_file)
    errors["send()"] = caught.value
    return errors


@by_key
def test_an_unreachable_destination_is_transient(key, stage, request):
    connector = registry.get(key)
    entry = contract.entry_for(key)
    config = entry.unreachable(contract.Peers(request), free_port())
    config.apply()
    installation, integration = stage.install(connector, config)
    for what, error in raised(stage, installation, integration, TransientError).items():
        no_leak(str(error), config, f"{what}'s error")


@by_key
def test_wrong_credentials_need_a_person(key, stage, request):
    connector = registry.get(key)
    entry = contract.entry_for(key)
    if entry.wrong_credentials is None:
        assert entry.no_credentials  # declared in the kit: nothing to refuse
        return
    configs = entry.wrong_credentials(contract.Peers(request))
    for config in configs if isinstance(configs, list) else [configs]:
        config.apply()
        installation, integration = stage.install(connector, config)
        errors = raised(stage, installation, integration, ReauthorizationRequired)
        for what, error in errors.items():
            assert not isinstance(error, ConfirmationNeeded), f"{what}: {error}"
            no_leak(str(error), config, f"{what}'s error")


@by_key
def test_a_retry_after_a_lost_answer_leaves_one(key, stage, request):
    connector = registry.get(key)
    entry = contract.entry_for(key)
    peers = contract.Peers(request)
    config = entry.live(peers)
    config.apply()
    installation, integration = stage.install(connector, config)
    export_file = stage.export_file(installation, integration)
    assert export_file.idempotency_key

    first, second = contract.send_twice(
        lambda: stage.connector(installation, integration), export_file
    )

    copies = entry.copies(peers)
    expected = f"{key}: expected {entry.one_means}; the destination holds {copies}"
    assert copies, expected
    assert {copy.content for copy in copies} == {export_file.content}, expected
    assert len({repr(copy.identity) for copy in copies}) == 1, expected
    if not entry.receiver_deduplicates:
        assert len(copies) == 1, expected
    assert isinstance(first, Receipt) and first.reference, first
    assert first.reference == second.reference, "one document, one remote reference"

    # The same configuration passes Test connection, in one sentence and without secrets.
    sentence = stage.connector(installation, integration).check()
    assert isinstance(sentence, str) and sentence.strip(), sentence
    no_leak(sentence, config, "check()'s sentence")


@by_key
def test_released_invoices_arrive_and_the_integrations_tab_counts_them(
    key, stage, request, client, firm, make_document
):
    """The whole way a firm sees it: a released purchase invoice and a released sales
    invoice go through the engine to the real peer, byte for byte, and the client's
    Integrations tab shows the integration active with both delivered."""
    connector = registry.get(key)
    entry = contract.entry_for(key)
    peers = contract.Peers(request)
    config = entry.live(peers)
    config.apply()
    installation, integration = stage.install(connector, config)
    documents = [
        make_document(stage.client, category)
        for category in (Document.Category.PURCHASE, Document.Category.SALES)
    ]
    for document in documents:
        release(document)
    contents = set()
    for document in documents:
        with document.file.open("rb") as stored:
            contents.add(stored.read())

    report = engine.deliver(engine.destination_of(integration))

    assert (report.delivered, report.waiting, report.dead) == (2, 0, 0), report
    held = {copy.content for copy in entry.copies(peers)}
    assert contents <= held, f"{key}: the destination holds {len(held)} other files"
    client.force_login(firm["member"])
    tab = client.get(reverse("integrations:list", args=[stage.client.pk])).content.decode()
    row = tab[tab.index(f"<strong>{installation.name}</strong>") :].split("</tr>")[0]
    assert '<span class="status status-ok">Active</span>' in row, row
    assert [int(n) for n in re.findall(r'<td class="num">(\d+)</td>', row)] == [2, 0, 0], row
