"""The daily digest of failed exports: one e-mail per firm that had failures since the
last one, to its owners who want it, none for a firm without; ``--dry-run`` sends and
records nothing; the django-q2 schedule that runs it exists once."""

import ast
from datetime import timedelta
from decimal import Decimal
from io import StringIO
from pydoc import locate

import pytest
from django.core import mail
from django.core.management import call_command
from django.utils import timezone
from django_q.models import Schedule

from exports import digest
from exports.models import ExportAttempt, ExportJob, FailureDigest
from extensions.models import Installation, Integration
from partnerspace.models import Membership


def dead_job(document, integration, *, error="The server refused the file.", ago=None):
    """A job that ended dead, with the attempt that ended it."""
    job = ExportJob.objects.create(
        document=document,
        integration=integration,
        installation=integration.installation,
        status=ExportJob.Status.DEAD,
        attempts=1,
        last_error=error,
    )
    finished = timezone.now() - (timedelta(minutes=5) if ago is None else ago)
    ExportAttempt.objects.create(
        job=job,
        number=1,
        started_at=finished,
        finished_at=finished,
        outcome=ExportAttempt.Outcome.PERMANENT,
        error=error,
    )
    return job


@pytest.fixture
def failures(firm, make_client, make_document, make_user, make_partner):
    """Two exports of the firm failed today; a third firm whose exports all went."""
    firm["owner"].email = "owner@lambert.example"
    firm["owner"].save()
    firm["member"].email = "member@lambert.example"
    firm["member"].save()
    integration = firm["integration"]
    first = make_document(
        firm["clients"][0],
        number="INV-2026-0042",
        payable_amount=Decimal("16523.09"),
        currency="EUR",
    )
    second = make_document(firm["clients"][0], number="INV-2026-0043")
    jobs = [dead_job(first, integration), dead_job(second, integration)]
    calm_owner = make_user("calm")
    calm_owner.email = "calm@elsewhere.example"
    calm_owner.save()
    calm = make_partner("Kantoor Rustig", owner=calm_owner)
    client = make_client(calm, "Rustig BV")
    installation = Installation.objects.create(partner=calm, connector="sftp", name="SFTP")
    calm_integration = Integration.objects.create(
        client=client, installation=installation, categories=["purchase"]
    )
    ExportJob.objects.create(
        document=make_document(client),
        integration=calm_integration,
        installation=installation,
        status=ExportJob.Status.DELIVERED,
    )
    return {**firm, "jobs": jobs, "calm": calm}


def run(*args) -> str:
    out = StringIO()
    call_command("exports_digest", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_one_email_per_firm_with_failures_and_none_without(failures):
    output = run()
    assert "Fiduciaire Lambert" in output and "Kantoor Rustig" not in output
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["owner@lambert.example"]  # owners only
    assert "Fiduciaire Lambert" in message.subject
    assert "INV-2026-0042" in message.body and "INV-2026-0043" in message.body
    assert "16,523.09 EUR" in message.body  # English, as a Belgian firm reads amounts
    assert "The server refused the file." in message.body
    assert message.extra_headers["Content-Language"] == "en"

    # The next run has nothing new to say.
    mail.outbox.clear()
    assert "No failed exports" in run()
    assert mail.outbox == []


@pytest.mark.django_db
def test_only_what_failed_since_the_last_digest_is_listed(failures, make_document):
    run()
    mail.outbox.clear()
    later = dead_job(
        make_document(failures["clients"][0], number="INV-2026-0099"),
        failures["integration"],
        ago=timedelta(0),  # now: after the last digest
    )
    run()
    assert len(mail.outbox) == 1
    body = mail.outbox[0].body
    assert later.document.number in body and "INV-2026-0042" not in body


@pytest.mark.django_db
def test_each_owner_reads_it_in_their_language_and_may_turn_it_off(failures, make_user):
    dutch = make_user("eigenaar")
    dutch.email = "eigenaar@lambert.example"
    dutch.save()
    Membership.objects.create(
        user=dutch,
        partner=failures["partner"],
        role=Membership.Role.OWNER,
        notice_language="nl",
    )
    Membership.objects.filter(user=failures["owner"]).update(notify_digest=False)
    run()
    assert [m.to for m in mail.outbox] == [["eigenaar@lambert.example"]]
    assert mail.outbox[0].extra_headers["Content-Language"] == "nl"
    assert "16.523,09 EUR" in mail.outbox[0].body


@pytest.mark.django_db
def test_dry_run_sends_and_records_nothing(failures):
    output = run("--dry-run")
    assert "Fiduciaire Lambert" in output
    assert mail.outbox == []
    assert not FailureDigest.objects.exists()
    run()
    assert len(mail.outbox) == 1


@pytest.mark.django_db
def test_the_daily_schedule_exists_once_and_runs_the_command(failures):
    digest.ensure_schedule()
    digest.ensure_schedule()
    (schedule,) = Schedule.objects.filter(name=digest.SCHEDULE)
    assert schedule.schedule_type == Schedule.DAILY and schedule.repeats == -1
    assert schedule.next_run > timezone.now()
    # What django-q2's scheduler calls for it: the command itself.
    args = ast.literal_eval(schedule.args)
    locate(schedule.func)(*(args if isinstance(args, tuple) else (args,)))
    assert [m.to for m in mail.outbox] == [["owner@lambert.example"]]
