"""A leading "/" in an SFTP upload folder starts at the server's root, as the guide writes
it; without one the folder starts in the login folder. The preview says which, and the
file lands where the preview says, on real SFTP servers."""

import posixpath
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from clients.models import Document
from clients.release import release
from exports import engine
from exports.models import ExportJob
from extensions import paths
from extensions.models import Installation, Integration
from tests.test_exports_flow import accept_key, install_sftp

pytestmark = pytest.mark.django_db

GUIDE_PATH = "/invoice_import/[external_id]_[uen_number]/[invoice_type]"


def test_the_guides_example_is_valid_from_the_root_and_keeps_every_rule():
    assert paths.validate_template(GUIDE_PATH, rooted=True) == GUIDE_PATH + "/"
    parts = paths.render(
        GUIDE_PATH,
        client=paths.SAMPLE_CLIENT,
        category="purchase",
        today=paths.timezone.localdate(),
        rooted=True,
    )
    assert parts == (paths.ROOT, "invoice_import", "CL-0001_0123456749", "purchases")
    for refused in ("//srv/share", "/../etc", "/a//../b", "\\x", "C:/x"):
        with pytest.raises(ValidationError):
            paths.validate_template(refused, rooted=True)
    with pytest.raises(ValidationError):  # where no root is offered, "/" is still refused
        paths.validate_template(GUIDE_PATH)


@pytest.fixture
def signed_in(client, firm):
    client.force_login(firm["owner"])
    return client


def preview(browser, template, **extra):
    return browser.get(reverse("store:path_preview"), {"template": template, **extra}).json()


def test_the_preview_says_where_the_path_starts(signed_in, firm):
    rooted = preview(signed_in, GUIDE_PATH, rooted="1")
    assert rooted["path"] == "/invoice_import/CL-0001_0123456749/purchases/"
    assert rooted["text"].startswith("From the server's root")
    relative = preview(signed_in, "Invoice_import/[year]", rooted="1")
    assert relative["text"].startswith("In the login folder: ./Invoice_import/")
    # A client's empty folder previews the installation's, not "./".
    inherited = preview(signed_in, "", rooted="1", inherit=GUIDE_PATH)
    assert inherited["inherited"] is True
    assert "/invoice_import/" in inherited["text"]


def test_the_guides_path_saves_as_written_and_delivers_at_the_root(
    signed_in, firm, sftp_server, make_document
):
    saved = accept_key(
        signed_in, install_sftp(signed_in, sftp_server, **{"settings-upload_path": GUIDE_PATH})
    )
    assert saved.status_code == 302
    installation = Installation.objects.get(name="Lambert server")
    assert installation.settings["upload_path"] == GUIDE_PATH + "/"
    client_company = firm["clients"][0]
    Integration.objects.create(
        client=client_company, installation=installation, categories=["sales"]
    )
    said = preview(
        signed_in,
        installation.settings["upload_path"],
        rooted="1",
        client=client_company.pk,
        category="sales",
    )["path"]
    document = make_document(client_company, Document.Category.SALES)
    release(document)
    assert engine.deliver(engine.Destination(installation.pk)).delivered == 1
    job = ExportJob.objects.get(document=document, installation=installation)
    assert posixpath.dirname(job.remote_reference) + "/" == said
    # The server's root is the chroot of this peer: the file is under it, as previewed.
    landed = Path(sftp_server.root, said.lstrip("/"), posixpath.basename(job.remote_reference))
    assert landed.is_file()


def test_on_openssh_a_rooted_path_is_absolute_and_a_plain_one_starts_at_login(
    openssh_server, firm, make_document
):
    peer = openssh_server
    home = peer.home.strip("/")
    client_company = firm["clients"][0]
    landed = {}
    for name, template in (
        ("rooted", f"/{home}/rooted/[invoice_type]/"),
        ("plain", "plain/[invoice_type]/"),
    ):
        installation = Installation.objects.create(
            partner=firm["partner"],
            connector="sftp",
            name=name,
            settings={
                "host": peer.host,
                "port": peer.port,
                "username": peer.username,
                "upload_path": template,
                **peer.pin(),
            },
            secrets={"password": peer.password},
        )
        Integration.objects.create(
            client=client_company, installation=installation, categories=["purchase"]
        )
        document = make_document(client_company, Document.Category.PURCHASE, number=name)
        release(document)
        assert engine.deliver(engine.Destination(installation.pk)).delivered == 1
        landed[name] = ExportJob.objects.get(
            document=document, installation=installation
        ).remote_reference
    root = Path(peer.root)
    assert landed["rooted"].startswith(f"/{home}/rooted/purchases/")
    assert (root / "rooted" / "purchases" / posixpath.basename(landed["rooted"])).is_file()
    assert landed["plain"].startswith(f"{peer.home.rstrip('/')}/plain/purchases/")
    assert (root / "plain" / "purchases" / posixpath.basename(landed["plain"])).is_file()
