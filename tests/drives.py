"""What the cloud drives' tests share: a sign-in followed through a fake provider, the
Integrations tab asking nothing, the folders the files land in."""

import re
from urllib.parse import parse_qs, urlsplit

import requests
from django.urls import reverse

from exports import engine
from extensions.connectors.cloud import ROOT_FOLDER
from extensions.models import Integration


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
