"""What the tests of Onea, PingWin, Count-e and Wings Online share: installing through the
Store and activating a client on its Integrations tab as a person does, releasing
documents and draining the engine against the package's strict local peer."""

import base64
import json
from datetime import timedelta

from django.urls import reverse
from django.utils import timezone

from clients.models import Document
from clients.release import release
from exports import engine
from exports.models import ExportJob
from extensions.models import Installation, Integration


def install(client, key: str, **fields):
    """Store → Install → Confirm and configure → Save configuration: the answer."""
    page = client.get(reverse("store:install", args=[key]))
    assert page.status_code == 200 and "Confirm and configure" in page.content.decode()
    form = client.post(reverse("store:configure", args=[key]), {"confirmed": "1"})
    assert form.status_code == 200
    data = {"name": f"Lambert {key}", "connections": 2}
    data.update({f"settings-{name}": value for name, value in fields.items()})
    return client.post(reverse("store:configure", args=[key]), data)


def installed(client, key: str, **fields) -> tuple[Installation, str]:
    """Installed: the installation and the page's message (the check's sentence)."""
    response = install(client, key, **fields)
    assert response.status_code == 302, response.content.decode()[-3000:]
    page = client.get(response["Location"]).content.decode()
    assert "Installation succeeded." in page
    return Installation.objects.get(connector=key), page


def activate(client, installation, company, **fields):
    """The client's Integrations tab: purchase and sales invoices, the client's fields."""
    url = reverse("integrations:configure", args=[company.pk, installation.pk])
    data = {"categories": ["purchase", "sales"]}
    data.update({f"client-{name}": value for name, value in fields.items()})
    return client.post(url, data)


def activated(client, installation, company, **fields) -> Integration:
    response = activate(client, installation, company, **fields)
    assert response.status_code == 302, response.content.decode()[-3000:]
    return Integration.objects.get(client=company, installation=installation)


def released(make_document, company, category=Document.Category.PURCHASE, **fields):
    document = make_document(company, category, **fields)
    release(document)
    return document


def deliver(installation):
    return engine.deliver(engine.Destination(installation.pk))


def content(document) -> bytes:
    with document.file.open("rb") as stored:
        return stored.read()


def job_of(document) -> ExportJob:
    return ExportJob.objects.get(document=document)


def due_now(document) -> None:
    """The job's backoff spent, as the sweeper would find it later."""
    ExportJob.objects.filter(document=document).update(next_attempt_at=timezone.now())


def at_least(seconds: float):
    return timezone.now() + timedelta(seconds=seconds)


def uploaded(peer) -> list[dict]:
    """Each upload's JSON as received, with its content decoded."""
    bodies = []
    for request in peer.uploads():
        body = json.loads(request.body)
        body["content"] = base64.b64decode(body["content"])
        body["idempotency-key"] = request.headers.get("idempotency-key")
        bodies.append(body)
    return bodies
