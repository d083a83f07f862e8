"""Refusals tied to one client stop that client only: per-client credentials (a connector
whose connection is the integration's) and per-client settings refused while sending
(``ClientRefused``). The installation's other clients go on; a check or an edit on the
Integrations tab resumes the client; its connections count against the installation's."""

import threading
from contextlib import contextmanager, nullcontext
from datetime import timedelta
from io import StringIO

import pytest
from django import forms
from django.core.management import call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from clients.models import Document
from clients.release import release
from exports import engine
from exports.models import ExportAttempt, ExportJob
from extensions import registry
from extensions.connectors.base import (
    ClientRefused,
    Connector,
    ConnectorForm,
    ReauthorizationRequired,
    Receipt,
    secret,
)
from extensions.models import Installation, Integration
from tests.peers.workers import queued_deliveries

pytestmark = pytest.mark.usefixtures("task_queue")

WAIT = 10  # seconds a thread waits for the test before giving up: a guard, not a pace


class TokenForm(ConnectorForm):
    token = secret(forms.CharField(label="Token"))


class FolderForm(ConnectorForm):
    folder = forms.CharField(label="Folder", required=False)


class Gate:
    """Counts the connections open at once; each waits for the test to let it go."""

    def __init__(self):
        self.changed = threading.Condition()
        self.open = self.most = 0
        self.proceed = threading.Event()

    @contextmanager
    def connection(self):
        with self.changed:
            self.open += 1
            self.most = max(self.most, self.open)
            self.changed.notify_all()
        try:
            assert self.proceed.wait(WAIT), "the test never let the connection go"
            yield
        finally:
            with self.changed:
                self.open -= 1
                self.changed.notify_all()


class PerClient(Connector):
    """One connection per client, with that client's token; refuses ``refused_tokens``."""

    key = "test-per-client"
    name = "Test per client"
    description = "Per-client credentials, for the tests."
    category = "accounting"
    connection_scope = "integration"
    client_form = TokenForm
    received: list
    refused_tokens: set
    gate: Gate | None = None

    def _token(self, destination) -> str:
        token = destination.secrets.get("token", "")
        if token in type(self).refused_tokens:
            raise ReauthorizationRequired("The accounting package refused this client's token.")
        return token

    @contextmanager
    def open(self):
        token = self._token(self.destination)
        gate = type(self).gate
        with gate.connection() if gate else nullcontext():
            yield _Session(type(self).received, token)

    def check(self) -> str:
        return "Ready."

    def check_integration(self, destination) -> str:
        self._token(destination)
        return "Signed in to the client's administration."


class Shared(Connector):
    """One connection for every client; refuses files for ``refused_folders``. With
    ``pipelined``, its session takes files through ``send_many`` and, as SFTP's does
    after a refusal, starts no new file once it reported one."""

    key = "test-shared"
    name = "Test shared"
    description = "Installation-wide connection, per-client folders, for the tests."
    category = "storage"
    client_form = FolderForm
    received: list
    refused_folders: set
    opened: int
    pipelined = False

    @contextmanager
    def open(self):
        type(self).opened += 1
        yield _Pipelined(self) if type(self).pipelined else self

    def send(self, export_file) -> Receipt:
        folder = export_file.client_settings.get("folder", "")
        if folder in type(self).refused_folders:
            raise ClientRefused(f"No write permission in {folder}.")
        type(self).received.append((None, export_file))
        return Receipt(reference=export_file.filename)

    def check(self) -> str:
        return "Ready."


class _Pipelined:
    def __init__(self, connector):
        self.connector = connector

    def send_many(self, items):
        for key, export_file in items:
            try:
                yield key, self.connector.send(export_file)
            except ClientRefused as exc:
                yield key, exc
                return


class _Session:
    def __init__(self, received, token):
        self.received, self.token = received, token

    def send(self, export_file) -> Receipt:
        self.received.append((self.token, export_file))
        return Receipt(reference=export_file.filename)


def setup(connector, firm, make_client, settings_per_client, *, connections=4):
    """An installation of ``connector`` for the firm's clients (more are made when
    ``settings_per_client`` names more), one integration each with its settings."""
    installation = Installation.objects.create(
        partner=firm["partner"], connector=connector.key, name=connector.name
    )
    installation.connections = connections
    installation.save()
    clients = list(firm["clients"])
    while len(clients) < len(settings_per_client):
        clients.append(make_client(firm["partner"], f"Client {len(clients)}"))
    integrations = []
    for client, (values, secrets) in zip(clients, settings_per_client, strict=False):
        integrations.append(
            Integration.objects.create(
                client=client,
                installation=installation,
                categories=["purchase"],
                client_settings=values,
                client_secrets=secrets,
                activated_at=timezone.now() - timedelta(minutes=5),
            )
        )
    return installation, integrations


def release_for(make_document, integration, count=1):
    documents = [
        make_document(integration.client, Document.Category.PURCHASE) for _ in range(count)
    ]
    for document in documents:
        release(document)
    return documents


def jobs(integration):
    return ExportJob.objects.filter(integration=integration).order_by("pk")


@pytest.fixture
def per_client():
    class Fresh(PerClient):
        received, refused_tokens, gate = [], set(), None

    with registry.registered(Fresh):
        yield Fresh


@pytest.fixture(params=[False, True], ids=["one-by-one", "pipelined"])
def shared(request):
    class Fresh(Shared):
        received, refused_folders, opened, pipelined = [], set(), 0, request.param

    with registry.registered(Fresh):
        yield Fresh


# --- per-client credentials ---------------------------------------------------------------


@pytest.mark.django_db
def test_a_clients_refused_credentials_stop_that_client_only(
    per_client, firm, make_client, make_document, client, django_capture_on_commit_callbacks
):
    """The first client's token is refused at open(): that integration needs a new sign-in,
    its jobs wait with no attempt counted, the sweeper leaves it; the other client's
    documents go, and the installation stays working. The tab says so, with since when;
    a member's Test connection fails while the token is refused, and saving a new token
    (checked first) resumes the client, whose documents then go."""
    installation, (refused, working) = setup(
        per_client, firm, make_client, [({}, {"token": "expired"}), ({}, {"token": "good"})]
    )
    per_client.refused_tokens = {"expired"}
    release_for(make_document, refused, 2)
    release_for(make_document, working, 3)
    waiting_at = engine.Destination(installation.pk, refused.pk)
    going_to = engine.Destination(installation.pk, working.pk)

    report = engine.deliver(waiting_at)
    assert (report.stopped, report.waiting, report.delivered) == ("reconnect", 2, 0)
    refused.refresh_from_db()
    assert refused.status == "reconnect" and refused.needs_a_person
    assert refused.last_error == "The accounting package refused this client's token."
    assert timezone.now() - refused.status_since < timedelta(minutes=1)
    assert {(j.status, j.attempts) for j in jobs(refused)} == {("pending", 0)}
    assert not ExportAttempt.objects.filter(job__integration=refused).exists()
    assert Installation.objects.get(pk=installation.pk).status == "ok"

    assert engine.due_destinations(installation.pk) == {
        going_to
    }  # the sweeper skips the waiting client
    assert engine.deliver(going_to).delivered == 3
    assert [token for token, _file in per_client.received] == ["good"] * 3
    assert engine.deliver(waiting_at).delivered == 0  # nothing is claimed for it

    client.force_login(firm["member"])
    tab = client.get(reverse("integrations:list", args=[refused.client_id])).content.decode()
    assert 'class="status status-reconnect" data-scope="client">Reconnect needed<' in tab
    assert "The accounting package refused this client&#x27;s token." in tab
    assert "since " in tab

    test_url = reverse("integrations:test", args=[refused.client_id, refused.pk])
    answer = client.post(test_url, follow=True).content.decode()
    assert "The accounting package refused this client&#x27;s token." in answer
    assert Integration.objects.get(pk=refused.pk).status == "reconnect"

    edit_url = reverse("integrations:edit", args=[refused.client_id, refused.pk])
    answer = client.post(edit_url, {"categories": ["purchase"], "client-token": "expired"})
    assert answer.status_code == 400  # checked before it is saved
    assert "The configuration was not saved:" in answer.content.decode()

    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post(edit_url, {"categories": ["purchase"], "client-token": "fresh"})
    assert answer.status_code == 302
    refused.refresh_from_db()
    assert (refused.status, refused.last_error, refused.client_secrets) == (
        "ok",
        "",
        {"token": "fresh"},
    )
    assert queued_deliveries() == [(installation.pk, refused.pk)]
    assert engine.deliver(waiting_at).delivered == 2
    assert [token for token, _file in per_client.received][3:] == ["fresh", "fresh"]


@pytest.mark.django_db
def test_a_passing_test_connection_on_the_tab_resumes_the_client(
    per_client, firm, make_client, make_document, client, django_capture_on_commit_callbacks
):
    installation, (integration,) = setup(
        per_client, firm, make_client, [({}, {"token": "revoked"})]
    )
    per_client.refused_tokens = {"revoked"}
    release_for(make_document, integration, 2)
    destination = engine.Destination(installation.pk, integration.pk)
    assert engine.deliver(destination).stopped == "reconnect"

    per_client.refused_tokens = set()  # access granted again at the provider
    client.force_login(firm["member"])
    url = reverse("integrations:test", args=[integration.client_id, integration.pk])
    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post(url, follow=True).content.decode()
    assert "Connection works. Signed in to the client&#x27;s administration." in answer
    assert Integration.objects.get(pk=integration.pk).status == "ok"
    assert queued_deliveries() == [(installation.pk, integration.pk)]
    assert engine.deliver(destination).delivered == 2


# --- per-client settings on a shared connection --------------------------------------------


@pytest.mark.django_db
def test_a_clients_refused_settings_stop_that_client_in_the_same_drain(
    shared, firm, make_client, make_document, client, django_capture_on_commit_callbacks
):
    """Over one connection, the first client's folder is refused: its jobs go back untouched
    and it needs attention, while the other client's documents, before and after it in
    the batch, are delivered in the same drain. Editing the folder resumes it."""
    installation, (refused, working) = setup(
        shared, firm, make_client, [({"folder": "/locked"}, {}), ({"folder": "/in"}, {})]
    )
    shared.refused_folders = {"/locked"}
    release_for(make_document, working)
    release_for(make_document, refused)
    release_for(make_document, working)
    release_for(make_document, refused)
    release_for(make_document, working)
    destination = engine.Destination(installation.pk)

    report = engine.deliver(destination)
    assert (report.stopped, report.delivered, report.waiting, report.dead) == ("", 3, 2, 0)
    assert shared.opened == 1
    assert {f.metadata["client_name"] for _token, f in shared.received} == {working.client.name}
    refused.refresh_from_db()
    assert (refused.status, refused.last_error) == ("attention", "No write permission in /locked.")
    assert {(j.status, j.attempts) for j in jobs(refused)} == {("pending", 0)}
    assert not ExportAttempt.objects.filter(job__integration=refused).exists()
    assert Installation.objects.get(pk=installation.pk).status == "ok"

    release_for(make_document, refused)  # planned while it waits, not sent
    assert (
        engine.due_destinations(installation.pk) == set()
    )  # the sweeper skips the waiting client
    assert engine.deliver(destination).delivered == 0
    assert jobs(refused).filter(status="pending").count() == 3

    client.force_login(firm["member"])
    tab = client.get(reverse("integrations:list", args=[refused.client_id])).content.decode()
    assert 'class="status status-attention" data-scope="client">Needs attention<' in tab
    assert "No write permission in /locked." in tab

    edit_url = reverse("integrations:edit", args=[refused.client_id, refused.pk])
    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post(edit_url, {"categories": ["purchase"], "client-folder": "/in/b"})
    assert answer.status_code == 302
    assert Integration.objects.get(pk=refused.pk).status == "ok"
    assert queued_deliveries() == [(installation.pk, None)]
    assert engine.deliver(destination).delivered == 3


# --- the installation's parallel connections ---------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_clients_with_their_own_connections_share_the_installations_limit(
    per_client, firm, make_client, make_document
):
    """Two parallel connections, five clients each with a connection of its own: at most
    two are open at once, the other deliveries find no free connection, and each delivery
    that frees one wakes the clients still due, which then deliver."""
    per_client.gate = gate = Gate()
    tokens = [({}, {"token": f"t{n}"}) for n in range(5)]
    installation, integrations = setup(per_client, firm, make_client, tokens, connections=2)
    for integration in integrations:
        release_for(make_document, integration)
    destinations = [engine.Destination(installation.pk, i.pk) for i in integrations]
    reports, woken, failures = {}, [], []
    finished = threading.Condition()

    def deliver(destination):
        try:
            reports[destination] = engine.deliver(destination, requeue=woken.append)
        except Exception as exc:  # reported by the test, not lost in the thread
            failures.append(exc)
        finally:
            connection.close()
            with finished:
                finished.notify_all()

    threads = [threading.Thread(target=deliver, args=(d,)) for d in destinations]
    for thread in threads:
        thread.start()
    with gate.changed:
        assert gate.changed.wait_for(lambda: gate.open == 2, WAIT)
    with finished:
        assert finished.wait_for(lambda: len(reports) + len(failures) == 3, WAIT)
    assert not failures, failures
    assert gate.open == gate.most == 2
    busy = {d for d, report in reports.items() if report.stopped == "busy"}
    assert len(busy) == 3

    gate.proceed.set()
    for thread in threads:
        thread.join(WAIT)
    assert not failures, failures
    assert gate.most == 2
    assert sum(report.delivered for report in reports.values()) == 2
    # The sweeper is not needed: each delivery that frees a connection wakes the next
    # clients due, as the queue would run them.
    queue, delivered = list(woken), 0
    while queue and delivered < len(busy):
        delivered += engine.deliver(queue.pop(0), requeue=queue.append).delivered
    assert delivered == len(busy)
    assert set(
        ExportJob.objects.filter(installation=installation).values_list("status", flat=True)
    ) == {"delivered"}


@pytest.mark.django_db
def test_exports_retry_resumes_a_client_that_needed_attention(
    shared, firm, make_client, make_document
):
    installation, (refused,) = setup(shared, firm, make_client, [({"folder": "/full"}, {})])
    shared.refused_folders = {"/full"}
    release_for(make_document, refused, 2)
    destination = engine.Destination(installation.pk)
    assert engine.deliver(destination).waiting == 2
    assert Integration.objects.get(pk=refused.pk).status == "attention"

    shared.refused_folders = set()  # the client's folder was given space
    call_command("exports_retry", "--installation", str(installation.pk), stdout=StringIO())
    assert Integration.objects.get(pk=refused.pk).status == "ok"
    assert queued_deliveries() == [(installation.pk, None)]
    assert engine.deliver(destination).delivered == 2
