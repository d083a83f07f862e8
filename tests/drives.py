"""What the cloud drives' tests share: a sign-in followed through a fake provider, the
Integrations tab asking nothing, the folders the files land in."""

import re
import threading
from urllib.parse import parse_qs, urlsplit

import requests
from django.db import connection
from django.urls import reverse

from clients.models import Document
from clients.release import release
from exports import engine
from exports.models import ExportJob
from extensions.connectors.cloud import ROOT_FOLDER
from extensions.models import Installation, Integration


def at_provider(start, authorize_url: str):
    """Follow our redirect to the provider's sign-in page (``authorize_url``); its answer:
    where it sends the person back."""
    assert start.status_code == 302, start.content.decode()[:500]
    location = start["Location"]
    assert location.startswith(authorize_url + "?"), location
    answer = requests.get(location, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    return urlsplit(answer.headers["Location"])


def back_from_provider(client, back):
    assert back.path == reverse("store:signin_callback")
    return client.get(back.path, parse_qs(back.query))


def activate(client, installation, company):
    """The Integrations tab: add the extension for a client; nothing to type, the
    document types as offered (transaction reports only where the installation sends
    them)."""
    url = reverse("integrations:configure", args=[company.pk, installation.pk])
    page = client.get(url).content.decode()
    assert 'name="client-' not in page
    offered = re.findall(r'name="categories" value="(\w+)"', page)
    assert set(offered) <= {"purchase", "sales", "report"} and offered
    response = client.post(url, {"categories": offered})
    assert response.status_code == 302
    return Integration.objects.get(client=company, installation=installation)


def deliver(installation):
    return engine.deliver(engine.Destination(installation.pk))


def client_folder(company):
    return f"{ROOT_FOLDER}/{company.name}_{company.vat_number}"


def content(document):
    with document.file.open("rb") as stored:
        return stored.read()


def send_together(installation, company, make_document, count=20) -> list:
    """``count`` purchase invoices of ``company`` released, then each sent by a worker of
    its own (a thread with its own database connection), all starting at once after the
    access token expired, as a month-end release wakes them. The workers' errors."""
    documents = [make_document(company, Document.Category.PURCHASE) for _ in range(count)]
    for document in documents:
        release(document)
    Installation.objects.get(pk=installation.pk).credentials.save({"expires_at": 0})
    stored = Installation.objects.get(pk=installation.pk).connector_instance()
    files = [
        engine.build_file(ExportJob.objects.get(document=document), stored)
        for document in documents
    ]
    start, errors = threading.Barrier(count), []

    def worker(export_file):
        try:
            connector = Installation.objects.get(pk=installation.pk).connector_instance()
            start.wait()
            with connector.open() as session:
                session.send(export_file)
        except Exception as exc:  # reported by the caller
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(f,)) for f in files]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return errors
