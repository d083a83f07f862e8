"""The engine against a destination of the tests' own, registered for the test: a drain's
time budget, and a destination that refuses because of its own configuration."""

from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from clients.models import Document
from clients.release import release
from exports import engine, tasks
from exports.models import ExportAttempt, ExportJob
from extensions import registry
from extensions.connectors.base import Connector, DestinationRefused, Receipt
from extensions.models import Installation, Integration
from tests.peers.workers import queued_deliveries

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("task_queue")]


class Clock:
    """The drain's clock: time passes only while the destination takes a file."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Recorder(Connector):
    """Takes files into ``received``, each taking ``seconds`` on ``clock``; while
    ``refusal`` is set, it refuses every check with it, and every file once
    ``refuse_from`` files were received."""

    key = "test-recorder"
    name = "Test recorder"
    description = "Keeps what it is sent, for the tests."
    category = "storage"
    received: list
    clock: Clock
    seconds = 1.0
    refusal: Exception | None = None
    refuse_from = 0

    @contextmanager
    def open(self):
        yield self

    def send(self, export_file) -> Receipt:
        cls = type(self)
        if cls.refusal is not None and len(cls.received) >= cls.refuse_from:
            raise cls.refusal
        cls.clock.now += cls.seconds
        cls.received.append(export_file)
        return Receipt(reference=export_file.filename)

    def check(self) -> str:
        if type(self).refusal is not None:
            raise type(self).refusal
        return "Ready."


@pytest.fixture
def recorder(firm, make_document):
    """A fresh ``Recorder`` class, registered for the test, installed for the firm's first
    client; ``release(n)`` releases n purchase invoices for it."""

    class Fresh(Recorder):
        received = []
        clock = Clock()

    with registry.registered(Fresh):
        installation = Installation.objects.create(
            partner=firm["partner"], connector=Fresh.key, name="Recorder"
        )
        Integration.objects.create(
            client=firm["clients"][0],
            installation=installation,
            categories=["purchase"],
            activated_at=timezone.now() - timedelta(minutes=5),
        )

        def release_documents(count):
            documents = [
                make_document(firm["clients"][0], Document.Category.PURCHASE) for _ in range(count)
            ]
            for document in documents:
                release(document)
            return documents

        Fresh.installation = installation
        Fresh.destination = engine.Destination(installation.pk)
        Fresh.release = staticmethod(release_documents)
        yield Fresh


def jobs_of(installation):
    return ExportJob.objects.filter(installation=installation).order_by("pk")


# --- a drain's time budget ---------------------------------------------------------------


def test_a_drain_stops_when_its_budget_is_spent_and_the_next_one_goes_on(recorder, settings):
    """Each file takes the destination a second and the budget is 3.5 s: the fourth file
    is started within it, the fifth is not. What was sent is delivered, the rest is back
    due and untouched, and the destination is queued again, once."""
    settings.EXPORT_DRAIN_SECONDS = 3.5
    recorder.release(6)
    requeue = lambda destination: tasks.enqueue([destination])  # noqa: E731 - as tasks.deliver

    report = engine.deliver(recorder.destination, requeue=requeue, clock=recorder.clock)

    assert (report.stopped, report.delivered, report.waiting) == ("budget", 4, 2)
    jobs = list(jobs_of(recorder.installation))
    sent = {f.metadata["job_id"] for f in recorder.received}
    assert sent == {str(job.pk) for job in jobs[:4]}
    assert {(j.status, j.attempts) for j in jobs[:4]} == {("delivered", 1)}
    assert {(j.status, j.attempts, j.claim_token) for j in jobs[4:]} == {("pending", 0, None)}
    assert all(j.next_attempt_at <= timezone.now() for j in jobs[4:])  # due now
    assert ExportAttempt.objects.filter(job__in=jobs[4:]).count() == 0
    assert len(queued_deliveries()) == 1
    tasks.enqueue([recorder.destination])  # a release meanwhile: already queued
    assert len(queued_deliveries()) == 1

    report = engine.deliver(recorder.destination, requeue=requeue, clock=recorder.clock)
    assert (report.stopped, report.delivered, report.waiting) == ("", 2, 0)
    assert set(jobs_of(recorder.installation).values_list("status", flat=True)) == {"delivered"}
    assert len(recorder.received) == 6  # each file sent once


def test_the_delivery_task_queues_the_next_one_when_its_budget_is_spent(recorder, settings):
    """No budget at all: every task still sends one file, then hands over to the next."""
    settings.EXPORT_DRAIN_SECONDS = 0
    recorder.release(3)
    answer = tasks.deliver(recorder.installation.pk)
    assert (answer["stopped"], answer["delivered"], answer["waiting"]) == ("budget", 1, 2)
    assert queued_deliveries() == [(recorder.installation.pk, None)]
    assert jobs_of(recorder.installation).filter(status="pending").count() == 2


# --- a destination that refuses because of its configuration -----------------------------


def test_a_destination_refusing_for_its_configuration_stops_and_waits_for_a_person(
    recorder, client, firm, django_capture_on_commit_callbacks
):
    """Two files go through, then the destination refuses (a folder's rights): the whole
    installation needs attention, the refused job and the rest wait without an attempt
    counted, the sweeper leaves it alone, and the Integrations tab and Manage say why. A
    successful Test connection sets it back and wakes the jobs, which then deliver."""
    recorder.release(5)
    message = "no write permission in /home/lambert/in"

    recorder.refusal, recorder.refuse_from = DestinationRefused(message), 2
    report = engine.deliver(recorder.destination)

    assert (report.stopped, report.delivered, report.waiting, report.dead) == (
        "attention",
        2,
        3,
        0,
    )
    installation = Installation.objects.get(pk=recorder.installation.pk)
    assert (installation.status, installation.last_error) == ("attention", message)
    waiting = jobs_of(installation).filter(status="pending")
    assert waiting.count() == 3
    assert set(waiting.values_list("attempts", flat=True)) == {0}
    assert not ExportAttempt.objects.filter(job__in=waiting).exists()
    assert recorder.destination not in engine.due_destinations()  # the sweeper leaves it
    assert engine.deliver(recorder.destination).stopped == "inactive"

    client.force_login(firm["owner"])
    tab = client.get(reverse("integrations:list", args=[firm["clients"][0].pk]))
    assert 'class="status status-attention">Needs attention<' in tab.content.decode()
    assert message in tab.content.decode()
    manage = client.get(reverse("store:manage", args=[installation.pk])).content.decode()
    assert 'class="status status-attention">Needs attention<' in manage

    # Still refusing: the check says so, and nothing changes.
    client.post(reverse("store:test", args=[installation.pk]))
    assert Installation.objects.get(pk=installation.pk).status == "attention"

    recorder.refusal = None  # a person fixed the folder, then tests the connection
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("store:test", args=[installation.pk]))
    assert Installation.objects.get(pk=installation.pk).status == "ok"
    assert len(queued_deliveries()) == 1  # the waiting jobs were woken
    report = engine.deliver(recorder.destination)
    assert (report.stopped, report.delivered) == ("", 3)
    assert set(jobs_of(installation).values_list("attempts", flat=True)) == {1}


def test_exports_retry_resumes_a_destination_that_needed_attention(recorder):
    recorder.release(2)
    recorder.refusal = DestinationRefused("quota exhausted")
    assert engine.deliver(recorder.destination).stopped == "attention"
    recorder.refusal = None
    call_command("exports_retry", "--installation", str(recorder.installation.pk), stdout=None)
    assert Installation.objects.get(pk=recorder.installation.pk).status == "ok"
    assert len(queued_deliveries()) == 1
    assert engine.deliver(recorder.destination).delivered == 2


def test_the_admins_retry_resumes_a_destination_that_needed_attention(
    recorder, client, django_user_model, django_capture_on_commit_callbacks
):
    recorder.release(2)
    recorder.refusal = DestinationRefused("no write permission in /in")
    assert engine.deliver(recorder.destination).stopped == "attention"
    recorder.refusal = None
    client.force_login(django_user_model.objects.create_superuser("root", "r@x.example", "pw"))
    selected = list(jobs_of(recorder.installation).values_list("pk", flat=True))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/exports/exportjob/",
            {"action": "retry_now", "_selected_action": selected},
            follow=True,
        )
    assert "1 destination that needed attention is tried again." in response.content.decode()
    assert Installation.objects.get(pk=recorder.installation.pk).status == "ok"
    assert engine.deliver(recorder.destination).delivered == 2
