"""Planning and claiming: which releases become jobs, and who may take them."""

import datetime
from datetime import timedelta

import pytest
from django.utils import timezone

from clients.models import Document
from clients.release import release
from exports import engine
from exports.models import ExportJob

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(firm, make_document):
    integration = firm["integration"]
    integration.activated_at = timezone.now() - timedelta(minutes=5)
    integration.save()
    return firm, integration, make_document


def jobs_for(document):
    return list(ExportJob.objects.filter(document=document))


def test_release_plans_one_job_per_integration_that_takes_it(
    setup, django_capture_on_commit_callbacks
):
    firm, integration, make_document = setup
    document = make_document(firm["clients"][0], Document.Category.PURCHASE)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        release(document)
    (job,) = jobs_for(document)
    assert (job.integration, job.installation, job.status) == (
        integration,
        integration.installation,
        "pending",
    )
    assert len(callbacks) == 1  # the delivery task is enqueued after commit
    engine.plan(document)
    assert len(jobs_for(document)) == 1  # planning twice changes nothing


def test_documents_released_before_activation_are_not_exported(setup):
    firm, integration, make_document = setup
    document = make_document(firm["clients"][0], Document.Category.PURCHASE)
    release(document, at=integration.activated_at - timedelta(seconds=1))
    assert jobs_for(document) == []


def test_categories_not_chosen_are_not_exported(setup):
    firm, _, make_document = setup
    report = make_document(firm["clients"][0], Document.Category.REPORT)
    release(report)
    assert jobs_for(report) == []  # the integration takes purchases and sales only


def test_other_clients_and_removed_or_inactive_integrations_get_nothing(setup):
    firm, integration, make_document = setup
    other_client = make_document(firm["clients"][1], Document.Category.PURCHASE)
    release(other_client)
    assert jobs_for(other_client) == []

    integration.active = False
    integration.save()
    inactive = make_document(firm["clients"][0], Document.Category.PURCHASE)
    release(inactive)
    assert jobs_for(inactive) == []

    integration.active, integration.removed_at = True, timezone.now()
    integration.save()
    removed = make_document(firm["clients"][0], Document.Category.SALES)
    release(removed)
    assert jobs_for(removed) == []


def test_switched_off_installation_still_plans_so_nothing_is_dropped(setup):
    firm, integration, make_document = setup
    installation = integration.installation
    installation.active = False
    installation.save()
    document = make_document(firm["clients"][0], Document.Category.PURCHASE)
    release(document)
    (job,) = jobs_for(document)
    assert job.status == "pending"
    assert engine.due_destinations() == set()  # waits until switched on
    installation.active = True
    installation.save()
    assert engine.Destination(installation.pk) in engine.due_destinations()


def test_claims_never_overlap_and_respect_due_time(setup):
    firm, integration, make_document = setup
    documents = [make_document(firm["clients"][0], Document.Category.SALES) for _ in range(7)]
    for document in documents:
        release(document)
    later = jobs_for(documents[-1])[0]
    later.next_attempt_at = timezone.now() + timedelta(hours=1)
    later.save()

    destination = engine.Destination(integration.installation_id)
    token_a, first = engine.claim(destination, 4)
    token_b, second = engine.claim(destination, 4)
    _, third = engine.claim(destination, 4)
    assert len(first) == 4
    assert len(second) == 2  # the dead fixture job and the future one are not due
    assert third == []
    assert not {j.pk for j in first} & {j.pk for j in second}
    assert all(j.claim_token == token_a and j.lease_until > timezone.now() for j in first)
    assert ExportJob.objects.filter(claim_token=token_b, status="running").count() == 2


def test_expired_leases_are_reclaimed_and_counted(setup):
    firm, integration, make_document = setup
    document = make_document(firm["clients"][0], Document.Category.SALES)
    release(document)
    _, (job,) = engine.claim(engine.Destination(integration.installation_id), 10)
    assert engine.reclaim_expired_leases() == 0
    ExportJob.objects.filter(pk=job.pk).update(lease_until=timezone.now() - timedelta(seconds=1))
    assert engine.reclaim_expired_leases() == 1
    job.refresh_from_db()
    assert (job.status, job.attempts, job.claim_token) == ("failed", 1, None)
    assert "worker stopped" in job.last_error


def test_backoff_doubles_from_a_minute_to_a_six_hour_cap():
    seconds = [engine.backoff(n).total_seconds() for n in range(1, 14)]
    assert 48 <= seconds[0] <= 72
    assert 96 <= seconds[1] <= 144
    assert all(s <= 6 * 3600 for s in seconds)
    assert seconds[-1] >= 0.8 * 6 * 3600
    assert engine.backoff(1, retry_after=600).total_seconds() >= 600


def test_revive_makes_dead_jobs_due_again(setup):
    firm, *_ = setup
    job = firm["job"]
    assert engine.revive(ExportJob.objects.filter(pk=job.pk)) == 1
    job.refresh_from_db()
    assert (job.status, job.attempts, job.last_error) == ("pending", 0, "")
    assert job.next_attempt_at <= timezone.now()
    # A person asked again: a new idempotency key, the same file name.
    connector = job.installation.connector_instance()
    assert engine.build_file(job, connector).idempotency_key == f"{job.pk}-1"
    engine.revive(ExportJob.objects.filter(pk=job.pk))
    job.refresh_from_db()
    assert engine.build_file(job, connector).idempotency_key == f"{job.pk}-2"


def test_sweeper_schedule_exists_once():
    from django_q.models import Schedule

    from exports.tasks import SWEEP_SCHEDULE, ensure_schedule

    ensure_schedule()
    ensure_schedule()
    (schedule,) = Schedule.objects.filter(name=SWEEP_SCHEDULE)
    assert (schedule.func, schedule.schedule_type, schedule.minutes) == (
        "exports.tasks.sweep",
        Schedule.MINUTES,
        1,
    )


def test_file_names_are_deterministic(setup):
    firm, integration, make_document = setup
    document = make_document(firm["clients"][0], Document.Category.PURCHASE, number="F 2026/001")
    integration.activated_at = timezone.make_aware(datetime.datetime(2026, 1, 1))
    integration.save()
    release(document, at=timezone.make_aware(datetime.datetime(2026, 3, 4, 10, 0)))
    (job,) = jobs_for(document)
    connector = integration.installation.connector_instance()
    first = engine.build_file(job, connector)
    second = engine.build_file(job, connector)
    assert first.filename == second.filename
    assert first.filename.startswith("20260304_F-2026-001_")
    assert first.content == document.file.open("rb").read()
    assert first.idempotency_key == str(job.pk)


def test_slots_bound_the_workers_of_one_destination(setup):
    from exports import slots

    _, integration, _ = setup
    destination = engine.Destination(integration.installation_id)
    first, second = slots.acquire(destination, 2), slots.acquire(destination, 2)
    assert first and second and first.pk != second.pk
    assert slots.acquire(destination, 2) is None  # both connections are in use
    slots.release(first)
    third = slots.acquire(destination, 2)
    assert third is not None and third.pk == first.pk
    # A worker that died frees its slot when the lease runs out.
    from exports.models import DeliverySlot

    DeliverySlot.objects.filter(pk=second.pk).update(lease_until=timezone.now() - timedelta(1))
    assert slots.acquire(destination, 2).pk == second.pk


def test_releases_coalesce_into_one_queued_delivery(setup):
    from exports import slots
    from exports.models import DeliveryWake

    _, integration, _ = setup
    destination = engine.Destination(integration.installation_id)
    assert slots.wake(destination) is True
    assert slots.wake(destination) is False  # one is already queued
    slots.clear_wake(destination)  # the task started
    assert slots.wake(destination) is True
    DeliveryWake.objects.update(queued_at=timezone.now() - slots.STALE_WAKE * 2)
    assert slots.wake(destination) is True  # a lost task does not silence the destination


def test_busy_destination_is_left_to_the_workers_on_it(setup):
    from exports import slots

    firm, integration, make_document = setup
    installation = integration.installation
    installation.connections = 1
    installation.save()
    destination = engine.Destination(installation.pk)
    held = slots.acquire(destination, 1)
    document = make_document(firm["clients"][0], Document.Category.SALES)
    release(document)
    assert engine.deliver(destination).stopped == "busy"
    assert jobs_for(document)[0].status == "pending"
    slots.release(held)


def test_a_month_end_release_wakes_each_destination_once(
    setup, django_capture_on_commit_callbacks
):
    from django.db import transaction

    firm, integration, make_document = setup
    documents = [make_document(firm["clients"][0], Document.Category.SALES) for _ in range(20)]
    with django_capture_on_commit_callbacks(execute=False) as callbacks, transaction.atomic():
        for document in documents:
            release(document)
    assert len(callbacks) == 1
    assert callbacks[0].destinations == {engine.Destination(integration.installation_id)}
    assert ExportJob.objects.filter(document__in=documents).count() == 20
