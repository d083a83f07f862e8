"""Month end on a real OpenSSH server: 200 documents of 20 clients, one connection per
delivery run, and the server stopped in the middle of a batch loses and duplicates nothing."""

import stat
import threading

import pytest
from django.utils import timezone

from clients.models import Document
from clients.release import release
from exports import engine
from exports.models import ExportJob
from extensions.models import Installation, Integration

pytestmark = pytest.mark.django_db(transaction=True)

DOCUMENTS, CLIENTS, BATCH = 200, 20, 100


def final_files(root):
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.name.endswith(".part"))


def stop_after(peer, count, stopped: threading.Event, done: threading.Event):
    """Stop the server once ``count`` files have landed: a fault in the middle of a batch."""
    while not done.is_set():
        if len(final_files(peer.root)) >= count:
            peer.sshd.stop()
            stopped.set()
            return
        done.wait(0.01)


def test_two_hundred_documents_exactly_once_through_a_server_restart(
    openssh_server, firm, make_client, make_document, settings
):
    settings.EXPORT_BATCH_SIZE = BATCH
    peer = openssh_server
    installation = Installation.objects.create(
        partner=firm["partner"],
        connector="sftp",
        name="Month end",
        settings={
            "host": peer.host,
            "port": peer.port,
            "username": peer.username,
            "upload_path": "Invoice_import/[uen_number]/[invoice_type]/",
            **peer.pin(),
        },
        secrets={"password": peer.password},
    )
    clients = [make_client(firm["partner"], f"Month end client {i:02d}") for i in range(CLIENTS)]
    for client in clients:
        Integration.objects.create(
            client=client, installation=installation, categories=["purchase", "sales"]
        )
    documents = [
        make_document(clients[i % CLIENTS], Document.Category.PURCHASE, number=f"ME-{i:03d}")
        for i in range(DOCUMENTS)
    ]
    for document in documents:
        release(document)
    destination = engine.Destination(installation.pk)

    stopped, done = threading.Event(), threading.Event()
    watcher = threading.Thread(target=stop_after, args=(peer, 60, stopped, done))
    watcher.start()
    try:
        first = engine.deliver(destination)
    finally:
        done.set()
        watcher.join()
    assert stopped.is_set()
    assert first.stopped == "transient"
    assert 60 <= first.delivered < DOCUMENTS
    assert first.retrying + first.waiting > 0  # cut in the middle of a batch
    landed_while_up = len(final_files(peer.root))

    assert peer.sshd.start()
    ExportJob.objects.filter(installation=installation).exclude(status="delivered").update(
        next_attempt_at=timezone.now()
    )
    second = engine.deliver(destination)
    assert second.stopped == ""
    assert first.delivered + second.delivered == DOCUMENTS

    files = final_files(peer.root)
    assert len(files) == DOCUMENTS > landed_while_up
    assert not [p for p in peer.root.rglob("*.part")]
    by_name = {p.name: p for p in files}
    for job in ExportJob.objects.filter(installation=installation).select_related("document"):
        assert job.status == "delivered"
        path = by_name[job.remote_reference.rsplit("/", 1)[1]]
        assert path.read_bytes() == job.document.file.open("rb").read()
        assert stat.S_IMODE(path.stat().st_mode) == 0o664
        assert path.parent.name == "purchases"
        assert path.parent.parent.name == job.document.client.enterprise_number
    # One SSH connection per delivery run: the interrupted one, then one connection that
    # carried all the remaining jobs, batch after batch.
    assert second.batches == -(-(DOCUMENTS - first.delivered) // BATCH)
    assert peer.sshd.logins() == 2
