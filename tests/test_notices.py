"""The firm's owners get one e-mail when a client's exports start failing or the extension
needs a reconnect, and one when it works again: never one per failure, never one per
client for what stops them all, never to members or to an owner who turned it off, in
each owner's own language."""

import threading

import pytest
from django.core import mail
from django.db import connection
from django.urls import reverse

from clients.models import Document
from clients.release import release
from exports import engine
from extensions import notices, registry
from extensions.models import Integration
from partnerspace.models import Membership
from tests.notice_peers import Switchable, install, queued_notices, run_notices

pytestmark = pytest.mark.usefixtures("task_queue")


@pytest.fixture(autouse=True)
def _retry_at_once(settings):
    """A failed export is due again at once, so each delivery is the next failure."""
    settings.EXPORT_RETRY_CAP_SECONDS = 0
    settings.EXPORT_NOTICE_FAILURES = 3
    settings.PORTAL_URL = "https://portal.example.be"


@pytest.fixture
def archive():
    class Fresh(Switchable):
        mode, received = "working", []

    with registry.registered(Fresh):
        yield Fresh


@pytest.fixture
def people(firm, make_user):
    """The owner (English), a second owner who reads Dutch, and a member, all with an
    address."""
    partner = firm["partner"]
    owner, member = firm["owner"], firm["member"]
    dutch = make_user("eigenaar")
    Membership.objects.create(
        user=dutch, partner=partner, role=Membership.Role.OWNER, notice_language="nl"
    )
    for user, address in [
        (owner, "owner@lambert.example"),
        (dutch, "eigenaar@lambert.example"),
        (member, "member@lambert.example"),
    ]:
        user.email = address
        user.save()
    return {"owner": owner, "dutch": dutch, "member": member}


def deliver(installation, django_capture_on_commit_callbacks):
    """One delivery, as a worker runs it, then the notices it queued, as a worker runs them."""
    with django_capture_on_commit_callbacks(execute=True):
        report = engine.deliver(engine.Destination(installation.pk))
    run_notices()
    return report


def recipients(message) -> set[str]:
    return set(message.to)


@pytest.mark.django_db
def test_three_failures_tell_each_owner_once_and_no_member(
    archive, firm, people, make_document, django_capture_on_commit_callbacks
):
    client = firm["clients"][0]
    installation, (integration,) = install(archive, firm["partner"], [client])
    with django_capture_on_commit_callbacks(execute=True):
        release(make_document(client, Document.Category.PURCHASE))
    archive.mode = "failing"

    for failure in (1, 2):
        assert deliver(installation, django_capture_on_commit_callbacks).retrying == 1
        assert mail.outbox == [], f"a notice after {failure} failure(s)"

    assert deliver(installation, django_capture_on_commit_callbacks).retrying == 1
    assert len(mail.outbox) == 2  # one per language: each owner gets exactly one
    everyone = [address for message in mail.outbox for address in message.to]
    assert sorted(everyone) == ["eigenaar@lambert.example", "owner@lambert.example"]
    english = next(m for m in mail.outbox if m.to == ["owner@lambert.example"])
    assert english.extra_headers["Content-Language"] == "en"
    assert "Bakkerij Peeters BV" in english.subject and "Archief Lambert" in english.subject
    assert "The archive did not answer within 60 seconds." in english.body
    tab = reverse("integrations:list", args=[client.pk])
    assert f"https://portal.example.be{tab}" in english.body
    dutch = next(m for m in mail.outbox if m.to == ["eigenaar@lambert.example"])
    assert dutch.extra_headers["Content-Language"] == "nl"

    for _fourth_and_fifth in (4, 5):
        assert deliver(installation, django_capture_on_commit_callbacks).retrying == 1
    assert len(mail.outbox) == 2
    integration.refresh_from_db()
    assert integration.consecutive_failures == 5 and integration.notified_state == "failing"


@pytest.mark.django_db
def test_the_next_delivery_after_failures_sends_one_notice_that_it_works_again(
    archive, firm, people, make_document, django_capture_on_commit_callbacks
):
    client = firm["clients"][0]
    installation, (integration,) = install(archive, firm["partner"], [client])
    with django_capture_on_commit_callbacks(execute=True):
        release(make_document(client, Document.Category.PURCHASE))
    archive.mode = "failing"
    for _failure in range(3):
        deliver(installation, django_capture_on_commit_callbacks)
    assert len(mail.outbox) == 2
    mail.outbox.clear()

    archive.mode = "working"
    assert deliver(installation, django_capture_on_commit_callbacks).delivered == 1
    assert sorted(a for m in mail.outbox for a in m.to) == [
        "eigenaar@lambert.example",
        "owner@lambert.example",
    ]
    assert all("Bakkerij Peeters BV" in m.subject for m in mail.outbox)

    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        release(make_document(client, Document.Category.SALES))
    assert deliver(installation, django_capture_on_commit_callbacks).delivered == 1
    assert mail.outbox == []  # still working: nothing to tell
    integration.refresh_from_db()
    assert integration.notified_state == "ok"


@pytest.mark.django_db
def test_a_reconnect_of_the_extension_is_one_notice_naming_it_not_one_per_client(
    archive, firm, people, make_document, client, django_capture_on_commit_callbacks
):
    clients = firm["clients"]
    installation, integrations = install(archive, firm["partner"], clients)
    with django_capture_on_commit_callbacks(execute=True):
        for each in clients:
            release(make_document(each, Document.Category.PURCHASE))
    archive.mode = "reconnect"

    report = deliver(installation, django_capture_on_commit_callbacks)
    assert (report.stopped, report.waiting) == ("reconnect", 2)
    assert deliver(installation, django_capture_on_commit_callbacks).stopped == "inactive"
    assert len(mail.outbox) == 2  # one per language, for both clients at once
    english = next(m for m in mail.outbox if m.to == ["owner@lambert.example"])
    assert "Archief Lambert" in english.subject
    assert not any(each.name in english.subject for each in clients)
    assert "The archive refused the stored sign-in." in english.body
    manage = reverse("store:manage", args=[installation.pk])
    assert f"https://portal.example.be{manage}" in english.body
    assert all(
        i.notified_state == "ok"
        for i in Integration.objects.filter(pk__in=[i.pk for i in integrations])
    )

    # Fixed, and proven by Test connection: one more, that it works again.
    mail.outbox.clear()
    archive.mode = "working"
    client.force_login(people["owner"])
    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post(reverse("store:test", args=[installation.pk]))
    assert answer.status_code == 302
    run_notices()
    assert sorted(a for m in mail.outbox for a in m.to) == [
        "eigenaar@lambert.example",
        "owner@lambert.example",
    ]
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("store:test", args=[installation.pk]))
    run_notices()
    assert mail.outbox == []


@pytest.mark.django_db
def test_one_clients_refusal_names_that_client_and_its_check_tells_it_works_again(
    archive, firm, people, make_document, client, django_capture_on_commit_callbacks
):
    refused, other = firm["clients"]
    installation, (integration, _other) = install(archive, firm["partner"], [refused, other])
    with django_capture_on_commit_callbacks(execute=True):
        release(make_document(refused, Document.Category.PURCHASE))
    archive.mode = "client refused"
    assert deliver(installation, django_capture_on_commit_callbacks).waiting == 1
    english = next(m for m in mail.outbox if m.to == ["owner@lambert.example"])
    assert refused.name in english.subject and other.name not in english.subject
    assert "No write permission in this client's folder." in english.body
    assert reverse("integrations:list", args=[refused.pk]) in english.body
    assert len(mail.outbox) == 2

    # A member corrects it; the check on the Integrations tab passes: one more notice.
    mail.outbox.clear()
    archive.mode = "working"
    client.force_login(people["member"])
    with django_capture_on_commit_callbacks(execute=True):
        client.post(reverse("integrations:test", args=[refused.pk, integration.pk]))
    run_notices()
    assert sorted(a for m in mail.outbox for a in m.to) == [
        "eigenaar@lambert.example",
        "owner@lambert.example",
    ]


@pytest.mark.django_db
def test_an_owner_who_turned_notices_off_gets_none(
    archive, firm, people, make_document, django_capture_on_commit_callbacks
):
    Membership.objects.filter(user=people["owner"]).update(notify_problems=False)
    client = firm["clients"][0]
    installation, _integrations = install(archive, firm["partner"], [client])
    with django_capture_on_commit_callbacks(execute=True):
        release(make_document(client, Document.Category.PURCHASE))
    archive.mode = "failing"
    for _failure in range(3):
        deliver(installation, django_capture_on_commit_callbacks)
    assert [m.to for m in mail.outbox] == [["eigenaar@lambert.example"]]

    Membership.objects.filter(user=people["dutch"]).update(notify_problems=False)
    mail.outbox.clear()
    archive.mode = "working"
    deliver(installation, django_capture_on_commit_callbacks)
    assert mail.outbox == []


@pytest.mark.django_db
def test_the_notice_is_written_with_the_owners_language_active(
    archive, firm, people, make_document, django_capture_on_commit_callbacks
):
    """Each owner's own choice, or the portal's language when they made none; the message
    says which (the words are translated separately)."""
    Membership.objects.filter(user=people["dutch"]).update(notice_language="fr")
    Membership.objects.filter(user=people["owner"]).update(notice_language="")
    client = firm["clients"][0]
    installation, _integrations = install(archive, firm["partner"], [client])
    with django_capture_on_commit_callbacks(execute=True):
        release(make_document(client, Document.Category.PURCHASE))
    archive.mode = "failing"
    for _failure in range(3):
        deliver(installation, django_capture_on_commit_callbacks)
    languages = {m.to[0]: m.extra_headers["Content-Language"] for m in mail.outbox}
    assert languages == {"eigenaar@lambert.example": "fr", "owner@lambert.example": "en"}


@pytest.mark.django_db
def test_two_workers_that_saw_the_same_change_send_one_notice(
    archive, firm, people, django_capture_on_commit_callbacks
):
    """Both read the third failure before either recorded it; the conditional UPDATE lets
    only the first queue the notice."""
    client = firm["clients"][0]
    _installation, (integration,) = install(archive, firm["partner"], [client])
    Integration.objects.filter(pk=integration.pk).update(consecutive_failures=3)
    first = notices.changes_of_integrations([integration.pk])
    second = notices.changes_of_integrations([integration.pk])
    assert first == second == [("integration", integration.pk, "failing")]
    with django_capture_on_commit_callbacks(execute=True):
        assert (notices.record(first), notices.record(second)) == (1, 0)
    assert [task["args"] for task in queued_notices()] == [
        ("integration", integration.pk, "failing")
    ]


@pytest.mark.django_db(transaction=True)
def test_workers_in_threads_recording_the_same_change_send_one_notice(
    archive, firm, people, make_document
):
    """Eight workers record the third failure at once, each on its own connection."""
    client = firm["clients"][0]
    _installation, (integration,) = install(archive, firm["partner"], [client])
    Integration.objects.filter(pk=integration.pk).update(consecutive_failures=3)
    workers = 8
    start = threading.Barrier(workers)
    outcomes, errors = [], []

    def worker():
        try:
            start.wait(10)
            outcomes.append(notices.integrations_changed([integration.pk]))
        except Exception as exc:  # reported below, with the others' outcomes
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert sorted(outcomes) == [0] * (workers - 1) + [1]
    assert [task["args"] for task in queued_notices()] == [
        ("integration", integration.pk, "failing")
    ]
    run_notices()
    assert sorted(a for m in mail.outbox for a in m.to) == [
        "eigenaar@lambert.example",
        "owner@lambert.example",
    ]
