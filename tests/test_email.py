"""E-mail connector against a real SMTP server (aiosmtpd), through Django's SMTP backend."""

import base64
import socket
import time
from email import message_from_bytes, policy
from types import SimpleNamespace

import pytest
from django.urls import reverse
from django.utils import timezone, translation

from clients.models import Document
from clients.release import release
from exports import engine
from exports.models import ExportAttempt, ExportJob
from extensions import registry
from extensions.connectors.base import (
    ClientRefused,
    ExportFile,
    ReauthorizationRequired,
    TransientError,
)
from extensions.connectors.email import EmailClientForm, EmailConnector, EmailSettingsForm
from extensions.models import Installation, Integration
from tests.peers import free_port
from tests.peers.smtp import DEFERRED, REFUSED, Recorder

XML = b'<?xml version="1.0" encoding="UTF-8"?>\r\n<Invoice>\xc3\xa9\x00\xff</Invoice>\n'
CODA = b"0000007032512345                  ACME\r\n1 0001 \xe9t\xe9\r\n9               \r\n"


@pytest.fixture(autouse=True)
def _english():
    """The assertions read English messages, whatever another test left active."""
    with translation.override("en"):
        yield


def point_at(settings, host, port):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = host, port
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 5
    settings.DEFAULT_FROM_EMAIL = "Partner Space <exports@portal.example.be>"


@pytest.fixture
def peer(settings, smtp_peer):
    point_at(settings, smtp_peer.host, smtp_peer.port)
    return smtp_peer


def install(data=None):
    """Settings as the install view stores them: the real form's cleaned data."""
    form = EmailSettingsForm(data or {})
    assert form.is_valid(), form.errors
    return EmailConnector(SimpleNamespace(pk=1, settings=form.cleaned_data, secrets={}))


def client_settings(**data):
    form = EmailClientForm(data)
    assert form.is_valid(), form.errors
    return form.cleaned_data


def export_file(key="41", category="purchase", content=XML, **overrides):
    metadata = {
        "document_id": "7",
        "category": category,
        "kind": "statement" if category == "report" else "invoice",
        "number": "INV-001",
        "client_number": "0123456749",
        "client_name": "Bakkerij Peeters BV",
        "external_id": "CL-0001",
        "job_id": key,
    }
    metadata.update(overrides.pop("metadata", {}))
    values = {
        "content": content,
        "filename": "20250307_INV-001_abcdef12.xml",
        "folder": (),
        "content_type": "application/xml",
        "metadata": metadata,
        "client_settings": client_settings(recipients="boekhouding@peeters.be"),
        "idempotency_key": key,
    }
    values.update(overrides)
    return ExportFile(**values)


def parsed(received):
    return message_from_bytes(received.content, policy=policy.default)


def subject(received):
    # Django folds a long encoded subject after "Subject:"; the parser keeps that blank.
    return parsed(received)["Subject"].strip()


def attachments(message):
    return [
        (part.get_filename(), part.get_content_type(), part.get_payload(decode=True))
        for part in message.iter_attachments()
    ]


def test_registered_under_its_key():
    assert registry.get("email") is EmailConnector
    assert EmailConnector.secret_fields(EmailConnector.settings_form) == ()


def test_message_arrives_with_the_original_attached(peer):
    with install().open() as session:
        receipt = session.send(export_file())

    [received] = peer.messages
    message = parsed(received)
    assert received.rcpt_tos == ["boekhouding@peeters.be"]
    assert received.mail_from == "exports@portal.example.be"
    assert subject(received) == "Purchase invoice INV-001 — Bakkerij Peeters BV"
    assert message["Message-ID"] == "<export-41@portal.example.be>"
    assert receipt.reference == "<export-41@portal.example.be>"
    assert attachments(message) == [("20250307_INV-001_abcdef12.xml", "application/xml", XML)]
    body = message.get_body(preferencelist=("plain",)).get_content()
    assert "INV-001" in body and "Bakkerij Peeters BV" in body


def test_text_attachment_keeps_its_bytes_and_line_ends(peer):
    report = export_file(
        category="report",
        content=CODA,
        filename="20250307_042_abcdef12.cod",
        content_type="text/plain",
        metadata={"number": "042"},
    )
    with install().open() as session:
        session.send(report)

    message = parsed(peer.messages[0])
    assert subject(peer.messages[0]) == "Transaction report 042 — Bakkerij Peeters BV"
    assert attachments(message) == [("20250307_042_abcdef12.cod", "text/plain", CODA)]


@pytest.mark.parametrize(
    ("declared", "arrives_as", "charset"),
    [
        ("text/plain; charset=iso-8859-1", "text/plain", "iso-8859-1"),
        ("", "application/octet-stream", None),
        ("nonsense", "application/octet-stream", None),
    ],
)
def test_attachment_content_types(peer, declared, arrives_as, charset):
    with install().open() as session:
        session.send(export_file(content=CODA, content_type=declared))
    [part] = parsed(peer.messages[0]).iter_attachments()
    assert (part.get_content_type(), part.get_param("charset")) == (arrives_as, charset)
    assert part.get_payload(decode=True) == CODA


def test_credit_note_and_sales_are_named_in_the_subject(peer):
    with install().open() as session:
        session.send(export_file(category="sales", metadata={"kind": "credit_note"}))
    assert subject(peer.messages[0]) == "Sales credit note INV-001 — Bakkerij Peeters BV"


def test_a_batch_of_ten_uses_one_smtp_connection(peer):
    with install().open() as session:
        for key in range(10):
            session.send(export_file(key=str(100 + key)))

    assert len(peer.messages) == 10
    assert peer.handler.connections == 1
    assert len({received.peer for received in peer.messages}) == 1
    assert [parsed(received)["Message-ID"] for received in peer.messages] == [
        f"<export-{100 + key}@portal.example.be>" for key in range(10)
    ]


def test_a_second_batch_opens_a_second_connection(peer):
    for _batch in range(2):
        with install().open() as session:
            session.send(export_file())
    assert peer.handler.connections == 2


def test_a_redelivery_carries_the_same_message_id(peer):
    for _attempt in range(2):
        with install().open() as session:
            session.send(export_file(key="77"))
    first, second = (parsed(received)["Message-ID"] for received in peer.messages)
    assert first == second == "<export-77@portal.example.be>"


def test_reports_go_to_the_separate_address_when_set(peer):
    separate = client_settings(
        recipients="boekhouding@peeters.be", report_recipients="bank@peeters.be"
    )
    with install().open() as session:
        session.send(export_file(key="1", category="report", client_settings=separate))
        session.send(export_file(key="2", category="purchase", client_settings=separate))
        session.send(export_file(key="3", category="report"))

    assert [received.rcpt_tos for received in peer.messages] == [
        ["bank@peeters.be"],
        ["boekhouding@peeters.be"],
        ["boekhouding@peeters.be"],
    ]


def test_several_recipients_subject_prefix_and_reply_to(peer):
    several = client_settings(recipients="a@peeters.be, b@peeters.be;c@peeters.be")
    connector = install({"subject_prefix": "[Lambert]", "reply_to": "help@lambert.be"})
    with connector.open() as session:
        session.send(export_file(client_settings=several))

    [received] = peer.messages
    message = parsed(received)
    assert received.rcpt_tos == ["a@peeters.be", "b@peeters.be", "c@peeters.be"]
    assert subject(received) == "[Lambert] Purchase invoice INV-001 — Bakkerij Peeters BV"
    assert message["Reply-To"] == "help@lambert.be"


def test_a_refused_recipient_is_the_clients_to_correct_and_named(settings, start_smtp):
    """The addresses are the client's settings: that client waits, not the installation."""
    peer = start_smtp(Recorder(refuse={"gone@peeters.be": REFUSED}))
    point_at(settings, peer.host, peer.port)
    with install().open() as session:
        with pytest.raises(ClientRefused, match=r"gone@peeters\.be") as refused:
            session.send(
                export_file(client_settings=client_settings(recipients="gone@peeters.be"))
            )
        # The session is still usable for the rest of the batch.
        session.send(export_file())
    assert "550" in str(refused.value)
    assert [received.rcpt_tos for received in peer.messages] == [["boekhouding@peeters.be"]]


@pytest.mark.django_db
def test_a_refused_mailbox_stops_its_client_while_the_others_mail_goes_on(
    settings, start_smtp, firm, make_document, client, django_capture_on_commit_callbacks
):
    """One client's address is unknown to the mail server (550 5.1.1): over one SMTP
    connection, that client's integration needs attention with the server's reason and
    its documents wait without an attempt, while the other client's are mailed. Correcting
    the address on the Integrations tab sends what waited."""
    peer = start_smtp(Recorder(refuse={"gone@peeters.be": REFUSED}))
    point_at(settings, peer.host, peer.port)
    installation = Installation.objects.create(
        partner=firm["partner"], connector="email", name="Mail"
    )
    peeters, dubois = firm["clients"]
    refused, working = (
        Integration.objects.create(
            client=who,
            installation=installation,
            categories=["purchase"],
            client_settings=client_settings(recipients=address),
            activated_at=timezone.now() - timezone.timedelta(minutes=5),
        )
        for who, address in [(peeters, "gone@peeters.be"), (dubois, "boekhouding@dubois.be")]
    )
    for who in (peeters, dubois, peeters, dubois):
        release(make_document(who, Document.Category.PURCHASE))
    destination = engine.Destination(installation.pk)

    report = engine.deliver(destination)

    assert (report.stopped, report.delivered, report.waiting, report.dead) == ("", 2, 2, 0)
    assert peer.handler.connections == 1
    assert [received.rcpt_tos for received in peer.messages] == [["boekhouding@dubois.be"]] * 2
    refused.refresh_from_db()
    assert refused.status == "attention"
    assert "gone@peeters.be" in refused.last_error and "550 5.1.1" in refused.last_error
    waiting = ExportJob.objects.filter(integration=refused)
    assert {(job.status, job.attempts) for job in waiting} == {("pending", 0)}
    assert not ExportAttempt.objects.filter(job__in=waiting).exists()
    assert Installation.objects.get(pk=installation.pk).status == "ok"
    assert Integration.objects.get(pk=working.pk).last_success_at is not None
    assert engine.due_destinations(installation.pk) == set()

    client.force_login(firm["member"])
    tab = client.get(reverse("integrations:list", args=[peeters.pk])).content.decode()
    assert 'class="status status-attention" data-scope="client">Needs attention<' in tab
    assert "gone@peeters.be" in tab

    edit = reverse("integrations:edit", args=[peeters.pk, refused.pk])
    with django_capture_on_commit_callbacks(execute=True):
        answer = client.post(
            edit, {"categories": ["purchase"], "client-recipients": "boekhouding@peeters.be"}
        )
    assert answer.status_code == 302
    assert Integration.objects.get(pk=refused.pk).status == "ok"
    assert engine.deliver(destination).delivered == 2
    assert [received.rcpt_tos for received in peer.messages][2:] == [
        ["boekhouding@peeters.be"]
    ] * 2


def test_a_deferred_recipient_is_transient(settings, start_smtp):
    peer = start_smtp(Recorder(refuse={"boekhouding@peeters.be": DEFERRED}))
    point_at(settings, peer.host, peer.port)
    with install().open() as session, pytest.raises(TransientError, match="451"):
        session.send(export_file())
    assert peer.messages == []


def test_nothing_listening_is_transient(settings):
    point_at(settings, "127.0.0.1", free_port())
    with (
        pytest.raises(TransientError, match="refused the connection"),
        install().open() as session,
    ):
        session.send(export_file())


def test_a_silent_server_times_out(settings):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the handshake completes, no greeting ever comes
        point_at(settings, *silent.getsockname())
        settings.EMAIL_TIMEOUT = 1
        started = time.monotonic()
        with pytest.raises(TransientError, match="did not answer"):
            install().check()
        assert time.monotonic() - started < 5


# The test server takes a login over plain SMTP; aiosmtpd warns about that.
def test_wrong_smtp_credentials_need_a_person_and_hide_the_password(settings, start_smtp):
    peer = start_smtp(accounts={"relay": "right-password"})
    point_at(settings, peer.host, peer.port)
    settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = "relay", "wrong-password"
    with pytest.raises(ReauthorizationRequired) as refused, install().open() as session:
        session.send(export_file())
    assert "wrong-password" not in str(refused.value)
    assert "EMAIL_URL" in str(refused.value)
    assert peer.messages == []

    settings.EMAIL_HOST_PASSWORD = "right-password"
    with install().open() as session:
        session.send(export_file())
    assert len(peer.messages) == 1


def test_a_reply_quoting_the_smtp_password_does_not_show_it(settings, start_smtp):
    password = "relay-Pass word!"
    plain = base64.b64encode(f"\0relay\0{password}".encode()).decode()
    refusal = f"550 5.7.1 Relaying denied for relay/{password} (AUTH PLAIN {plain})"
    peer = start_smtp(
        Recorder(refuse={"boekhouding@peeters.be": refusal}), accounts={"relay": password}
    )
    point_at(settings, peer.host, peer.port)
    settings.EMAIL_HOST_USER, settings.EMAIL_HOST_PASSWORD = "relay", password
    with pytest.raises(ClientRefused) as refused, install().open() as session:
        session.send(export_file())
    message = str(refused.value)
    assert "550 5.7.1 Relaying denied for relay/*** (AUTH PLAIN ***)" in message
    assert password not in message and plain not in message


def test_check_greets_the_server_and_sends_nothing(peer):
    sentence = install().check()
    assert f"127.0.0.1:{peer.port}" in sentence
    assert peer.handler.connections == 1
    assert peer.messages == []


def test_check_reports_an_unreachable_server(settings):
    point_at(settings, "127.0.0.1", free_port())
    with pytest.raises(TransientError):
        install().check()


def test_check_with_a_non_smtp_backend_says_so(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert "locmem" in install().check()


def test_other_backends_are_respected(settings, mailoutbox):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    with install().open() as session:
        session.send(export_file())
    assert [message.to for message in mailoutbox] == [["boekhouding@peeters.be"]]


def test_a_client_without_recipients_is_the_clients_to_correct(peer):
    with install().open() as session, pytest.raises(ClientRefused, match="No recipient"):
        session.send(export_file(client_settings={}))


@pytest.mark.parametrize(
    "recipients",
    ["not-an-address", "a@peeters.be, nope", "a@peeters.be\nBcc: x@evil.example", ""],
)
def test_client_form_rejects_bad_addresses(recipients):
    form = EmailClientForm({"recipients": recipients})
    assert not form.is_valid()
    assert "recipients" in form.errors


def test_client_form_rejects_a_bad_report_address():
    form = EmailClientForm({"recipients": "a@peeters.be", "report_recipients": "bank@"})
    assert not form.is_valid()
    assert "bank@" in str(form.errors["report_recipients"])


def test_client_form_normalizes_several_addresses():
    assert client_settings(recipients=" a@peeters.be;b@peeters.be ,a@peeters.be ") == {
        "recipients": "a@peeters.be, b@peeters.be",
        "report_recipients": "",
    }


def test_settings_form_rejects_a_bad_reply_to():
    assert not EmailSettingsForm({"reply_to": "nope"}).is_valid()
