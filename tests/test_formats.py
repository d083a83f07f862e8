"""Output formats: declared by each connector, chosen once per installation by the shared
pages, applied by the engine alone, with the portal's original never altered."""

import datetime
from decimal import Decimal

import pytest
from django.urls import reverse

from clients import demo
from clients.models import Document
from clients.release import release
from exports import engine
from exports.models import ExportJob
from extensions import formats, paths, registry
from extensions.connectors.base import PEPPOL_BIS3, PURCHASE, SALES
from extensions.connectors.sftp import SftpConnector
from extensions.models import Installation, Integration

pytestmark = pytest.mark.django_db

FACT = "Files are sent as Peppol BIS 3.0 UBL (original, unchanged)."
INVALID = "Choose one of the formats this extension offers."
MARKED = "marked"
MARK = b"MARKED\n"


class TwoFormatSftp(SftpConnector):
    """SFTP offering a second, test-only format, so that a choice has to be made."""

    key = "sftp-two-formats"
    name = "SFTP, two formats"
    formats = (PEPPOL_BIS3, MARKED)


def _marked(content, document):
    return formats.Rendered(MARK + content, "text/plain", "txt")


@pytest.fixture
def two_formats(monkeypatch):
    monkeypatch.setitem(
        formats.FORMATS,
        MARKED,
        formats.Format(MARKED, "Marked text", frozenset({PURCHASE, SALES}), _marked),
    )
    with registry.registered(TwoFormatSftp):
        yield TwoFormatSftp


@pytest.fixture
def signed_in(client, firm):
    client.force_login(firm["owner"])
    return client


def sftp_settings(peer, **extra):
    return {
        "host": peer.host,
        "port": peer.port,
        "username": peer.username,
        "upload_path": "in/",
        **peer.pin(),
        **extra,
    }


def installed(firm, peer, connector="sftp", **extra):
    return Installation.objects.create(
        partner=firm["partner"],
        connector=connector,
        name="Formats",
        settings=sftp_settings(peer, **extra),
        secrets={"password": peer.password},
    )


def manage_post(peer, **values):
    return {
        "name": "Formats",
        "connections": 2,
        "settings-host": peer.host,
        "settings-port": peer.port,
        "settings-username": peer.username,
        "settings-password": "",
        "settings-private_key": "",
        "settings-passphrase": "",
        "settings-upload_path": "in/",
        "settings-report_path": "",
        **values,
    }


def released_pair(make_document, client_company):
    """A real Peppol BIS 3.0 invoice and a real CODA statement, both released."""
    companies = demo.demo_companies()
    invoice = demo.invoice_xml(
        number="F-2026-017",
        issue_date=datetime.date(2026, 3, 2),
        supplier=companies["suppliers"][0],
        customer=companies["clients"][0],
    )
    coda = demo.statement_coda(
        holder=companies["clients"][0],
        sequence_number=3,
        creation_date=datetime.date(2026, 3, 31),
        old_balance=Decimal("1250.00"),
    )
    documents = [
        make_document(client_company, Document.Category.PURCHASE, data=invoice),
        make_document(client_company, Document.Category.REPORT, data=coda),
    ]
    for document in documents:
        release(document)
    return documents


def landed(peer) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in peer.root.rglob("*") if p.is_file()}


# --- the registry ----------------------------------------------------------------------


def test_every_connector_declares_known_formats_and_the_first_is_the_default():
    for connector in registry.connectors().values():
        assert connector.formats, connector.key
        assert PEPPOL_BIS3 in connector.formats, connector.key
        assert all(key in formats.FORMATS for key in connector.formats), connector.key
        assert formats.chosen(connector, {}) == connector.formats[0]


def test_the_original_format_leaves_transaction_reports_out():
    original = formats.FORMATS[PEPPOL_BIS3]
    assert str(original.label) == "Peppol BIS 3.0 UBL (original, unchanged)"
    assert original.categories == {PURCHASE, SALES}


def test_a_stored_choice_counts_only_while_the_connector_offers_it(two_formats):
    assert formats.chosen(two_formats, {"format": MARKED}) == MARKED
    assert formats.chosen(SftpConnector, {"format": MARKED}) == PEPPOL_BIS3
    assert formats.chosen(two_formats, {"format": "gone"}) == PEPPOL_BIS3
    # What the SFTP form used to store is read as the generic setting.
    assert formats.chosen(two_formats, {"output_format": PEPPOL_BIS3}) == PEPPOL_BIS3


# --- the pages -------------------------------------------------------------------------


def test_one_format_is_stated_as_a_fact_on_configure_and_manage(signed_in, firm):
    configure = signed_in.post(reverse("store:configure", args=["sftp"]), {"confirmed": "1"})
    manage = signed_in.get(reverse("store:manage", args=[firm["installation"].pk]))
    for page in (configure, manage):
        body = page.content.decode()
        assert page.status_code == 200
        assert FACT in body
        assert 'name="format"' not in body and 'name="settings-output_format"' not in body


def test_two_formats_are_a_choice_on_configure_and_manage(
    signed_in, firm, sftp_server, two_formats
):
    configure = signed_in.post(
        reverse("store:configure", args=[two_formats.key]), {"confirmed": "1"}
    )
    installation = installed(firm, sftp_server, two_formats.key, format=MARKED)
    manage = signed_in.get(reverse("store:manage", args=[installation.pk]))
    for page, selected in ((configure, PEPPOL_BIS3), (manage, MARKED)):
        body = page.content.decode()
        assert page.status_code == 200
        assert FACT not in body
        field = page.context["meta_form"]["format"]
        assert [value for value, _label in field.field.choices] == [PEPPOL_BIS3, MARKED]
        assert field.value() == selected
        assert f'<option value="{selected}" selected>' in body
        assert "Peppol BIS 3.0 UBL (original, unchanged)" in body and "Marked text" in body


def test_an_invalid_format_is_a_form_error(signed_in, firm, sftp_server, two_formats):
    configure = signed_in.post(
        reverse("store:configure", args=[two_formats.key]),
        {
            **manage_post(sftp_server, **{"settings-password": sftp_server.password}),
            "format": "docx",
        },
    )
    assert configure.status_code == 200
    assert INVALID in configure.content.decode()
    assert not Installation.objects.filter(connector=two_formats.key).exists()

    installation = installed(firm, sftp_server, two_formats.key)
    manage = signed_in.post(
        reverse("store:manage", args=[installation.pk]),
        manage_post(sftp_server, format="docx"),
    )
    assert manage.status_code == 200
    assert manage.context["meta_form"].errors["format"] == [INVALID]
    installation.refresh_from_db()
    assert "format" not in installation.settings


def test_the_choice_survives_accepting_the_host_key(signed_in, sftp_server, two_formats):
    url = reverse("store:configure", args=[two_formats.key])
    asked = signed_in.post(
        url,
        {
            **manage_post(sftp_server, **{"settings-password": sftp_server.password}),
            "format": MARKED,
        },
    )
    assert sftp_server.fingerprint in asked.content.decode()
    pin = asked.content.decode().split('name="confirmation" value="', 1)[1].split('"', 1)[0]
    assert signed_in.post(url, {"confirmation": pin, "confirm": "1"}).status_code == 302
    installation = Installation.objects.get(connector=two_formats.key)
    assert installation.settings["format"] == MARKED


def test_saving_manage_moves_the_old_sftp_setting_to_the_generic_one(signed_in, firm, sftp_server):
    installation = installed(firm, sftp_server, output_format=PEPPOL_BIS3)
    response = signed_in.post(
        reverse("store:manage", args=[installation.pk]), manage_post(sftp_server)
    )
    assert response.status_code == 302
    installation.refresh_from_db()
    assert installation.settings["format"] == PEPPOL_BIS3
    assert "output_format" not in installation.settings


# --- applied by the engine, through a real SFTP server ---------------------------------


def test_the_default_format_lands_byte_identical_under_the_stable_name(
    firm, sftp_server, make_document
):
    installation = installed(firm, sftp_server, output_format=PEPPOL_BIS3)
    client_company = firm["clients"][1]
    Integration.objects.create(
        client=client_company, installation=installation, categories=["purchase", "report"]
    )
    documents = released_pair(make_document, client_company)

    assert engine.deliver(engine.Destination(installation.pk)).delivered == 2
    originals = {paths.file_name(d): d.file.open("rb").read() for d in documents}
    assert landed(sftp_server) == originals
    assert sorted(name.rsplit(".", 1)[1] for name in originals) == ["cod", "xml"]


def test_a_chosen_format_changes_what_travels_never_the_original(
    signed_in, firm, sftp_server, make_document, two_formats
):
    installation = installed(firm, sftp_server, two_formats.key)
    assert (
        signed_in.post(
            reverse("store:manage", args=[installation.pk]),
            manage_post(sftp_server, format=MARKED),
        ).status_code
        == 302
    )
    client_company = firm["clients"][1]
    Integration.objects.create(
        client=client_company, installation=installation, categories=["purchase", "report"]
    )
    invoice, statement = released_pair(make_document, client_company)
    stored = {d.pk: d.file.open("rb").read() for d in (invoice, statement)}

    assert engine.deliver(engine.Destination(installation.pk)).delivered == 2
    stem = paths.file_name(invoice).rsplit(".", 1)[0]
    assert landed(sftp_server) == {
        f"{stem}.txt": MARK + stored[invoice.pk],
        paths.file_name(statement): stored[statement.pk],  # a CODA report stays itself
    }
    job = ExportJob.objects.get(document=invoice, installation=installation)
    assert job.remote_reference.endswith(f"{stem}.txt")
    installation.refresh_from_db()
    built = engine.build_file(job, installation.connector_instance())
    assert (built.content_type, built.filename) == ("text/plain", f"{stem}.txt")
    for document in (invoice, statement):
        document.refresh_from_db()
        assert document.file.open("rb").read() == stored[document.pk]
