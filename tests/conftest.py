"""Shared fixtures: a firm with an owner and a member, a second firm with an outsider."""

import hashlib
import itertools

import pytest
from django.core.cache import cache
from django.core.files.base import ContentFile
from django.utils import translation

from clients.models import Client, Document
from clients.release import INITIAL_STATUS, release
from exports.models import ExportJob
from extensions.models import Installation, Integration
from partnerspace.enterprise import normalize
from partnerspace.models import Membership, Partner

pytest_plugins = [
    "tests.peers.sftp",
    "tests.peers.smtp",
    "tests.peers.http",
    "tests.peers.google",
    "tests.peers.dropbox",
    "tests.peers.microsoft",
    "tests.peers.exact",
    "tests.peers.yuki",
    "tests.peers.octopus",
    "tests.peers.document_apis",
    "tests.peers.bocount",
    "tests.peers.lyanthe",
    "tests.peers.zenvoices",
    "tests.peers.workers",
    "tests.peppol_examples",
]

_sequence = itertools.count(1)


def enterprise_number(seed: int) -> str:
    """A valid Belgian enterprise number derived from ``seed``."""
    base = 4_000_000 + seed * 7919 % 15_000_000
    return f"{base:08d}{97 - base % 97:02d}"


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture(autouse=True)
def _empty_cache():
    """Ids a test's fake handed out mean nothing to the next test's fake."""
    cache.clear()


@pytest.fixture(autouse=True)
def _default_language(settings):
    """A request in another language leaves it active in the thread; start each test clean."""
    translation.activate(settings.LANGUAGE_CODE)
    yield
    translation.activate(settings.LANGUAGE_CODE)


@pytest.fixture
def make_partner(django_user_model):
    def make(name="Fiduciaire Test", *, owner=None, members=()):
        partner = Partner.objects.create(
            name=name, enterprise_number=enterprise_number(next(_sequence))
        )
        for user, role in [(owner, Membership.Role.OWNER)] + [
            (m, Membership.Role.MEMBER) for m in members
        ]:
            if user is not None:
                Membership.objects.create(user=user, partner=partner, role=role)
        return partner

    return make


@pytest.fixture
def make_user(django_user_model):
    def make(username):
        return django_user_model.objects.create_user(username, password="pw-" + username)

    return make


@pytest.fixture
def make_client():
    def make(partner, name="Bakkerij Peeters BV", **fields):
        number = fields.pop("enterprise_number", None) or enterprise_number(next(_sequence))
        return Client.objects.create(
            partner=partner,
            name=name,
            enterprise_number=number,
            vat_number="BE" + normalize(number),
            external_id=fields.pop("external_id", f"CL-{next(_sequence):04d}"),
            **fields,
        )

    return make


@pytest.fixture
def make_document():
    """A stored document row without going through intake (intake has its own tests)."""

    def make(client, category=Document.Category.PURCHASE, data=None, **fields):
        data = data or f"<Invoice>{next(_sequence)}</Invoice>".encode()
        document = Document(
            client=client,
            category=category,
            kind=Document.Kind.STATEMENT
            if category == Document.Category.REPORT
            else Document.Kind.INVOICE,
            status=INITIAL_STATUS[category],
            number=fields.pop("number", f"INV-{next(_sequence)}"),
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
            original_name="invoice.xml",
            content_type="application/xml",
            **fields,
        )
        document.file.save("invoice.xml", ContentFile(data), save=False)
        document.save()
        return document

    return make


@pytest.fixture
def firm(make_partner, make_user, make_client, make_document):
    """The owner's firm with a member, two clients and a few documents, plus an outsider."""
    owner, member, outsider = make_user("owner"), make_user("member"), make_user("outsider")
    partner = make_partner("Fiduciaire Lambert", owner=owner, members=[member])
    other = make_partner("Boekhouding Elders", owner=outsider)
    clients = [
        make_client(partner, "Bakkerij Peeters BV"),
        make_client(partner, "Menuiserie Dubois SRL"),
    ]
    make_client(other, "Garage Elders NV")
    documents = [
        make_document(clients[0], Document.Category.PURCHASE),
        make_document(clients[0], Document.Category.SALES),
        make_document(clients[1], Document.Category.REPORT),
    ]
    release(documents[0])
    installation = Installation.objects.create(
        partner=partner,
        connector="sftp",
        name="Lambert SFTP",
        settings={"host": "sftp.lambert.example", "port": 22, "username": "lambert"},
        secrets={"password": "s3cret-password"},
    )
    integration = Integration.objects.create(
        client=clients[0], installation=installation, categories=["purchase", "sales"]
    )
    job = ExportJob.objects.create(
        document=documents[0],
        integration=integration,
        installation=installation,
        status=ExportJob.Status.DEAD,
        attempts=3,
        last_error="connection refused",
    )
    return {
        "partner": partner,
        "other": other,
        "owner": owner,
        "member": member,
        "outsider": outsider,
        "clients": clients,
        "documents": documents,
        "installation": installation,
        "integration": integration,
        "job": job,
    }
