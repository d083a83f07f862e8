"""Intake end to end: files on disk through import_documents into stored documents."""

import datetime
import hashlib
import io
import subprocess
import sys
from decimal import Decimal

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError

from clients import coda, demo
from clients.errors import IntakeError
from clients.intake import ingest, ingest_file
from clients.models import Document
from clients.release import release
from clients.signals import document_released
from partnerspace.enterprise import format_enterprise_number
from tests.peers.workers import ROOT, worker_environment

pytestmark = pytest.mark.django_db

SUPPLIER, CUSTOMER = demo.demo_companies()["suppliers"][0], demo.demo_clients()[0]
DAY = datetime.date(2026, 10, 15)


@pytest.fixture
def client_company(make_partner, make_client):
    return make_client(make_partner(), CUSTOMER.name, enterprise_number=CUSTOMER.enterprise_number)


def purchase(number="AP-1", **kwargs):
    return demo.invoice_xml(
        number=number, issue_date=DAY, supplier=SUPPLIER, customer=CUSTOMER, **kwargs
    )


def sale(number="AR-1"):
    return demo.invoice_xml(number=number, issue_date=DAY, supplier=CUSTOMER, customer=SUPPLIER)


def statement(holder=CUSTOMER):
    return demo.statement_coda(
        holder=holder, sequence_number=7, creation_date=DAY, old_balance=Decimal("1000.00")
    )


def stored_files(settings):
    root = settings.MEDIA_ROOT
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_categories_are_inferred_and_originals_kept_byte_for_byte(client_company):
    for data, category, kind in [
        (purchase(), "purchase", "invoice"),
        (sale(), "sales", "invoice"),
        (purchase("AP-2", credit_note_for="AP-1"), "purchase", "credit_note"),
        (statement(), "report", "statement"),
    ]:
        result = ingest(client_company, "in.xml", data)
        document = result.document
        assert result.created
        assert (document.category, document.kind) == (category, kind)
        assert document.status == ("draft" if category == "sales" else "received")
        assert document.sha256 == hashlib.sha256(data).hexdigest()
        with document.file.open("rb") as stored:
            assert stored.read() == data


def test_invoice_fields_are_extracted(client_company):
    document = ingest(client_company, "ap.xml", purchase("AP-77", lines=4)).document
    assert document.number == "AP-77"
    assert document.issue_date == DAY
    assert document.supplier_name == SUPPLIER.name
    assert document.supplier_id == SUPPLIER.enterprise_number
    assert document.customer_id == CUSTOMER.enterprise_number
    assert document.currency == "EUR"
    assert document.payable_amount == document.total_without_tax + document.tax_total
    assert document.details["line_count"] == 4


def test_statement_fields_are_extracted(client_company):
    document = ingest(client_company, "s.cod", statement()).document
    assert document.number == "007"
    assert document.details["account"] == CUSTOMER.iban
    assert document.details["old_balance"] == "1000.00"


def test_same_bytes_twice_is_a_duplicate(client_company):
    first = ingest(client_company, "a.xml", purchase())
    second = ingest(client_company, "b.xml", purchase())
    assert second.created is False
    assert second.document.pk == first.document.pk
    assert Document.objects.count() == 1


def test_invoice_of_another_company_is_refused_naming_both_numbers(make_partner, make_client):
    stranger = make_client(make_partner(), "Someone Else BV")
    with pytest.raises(IntakeError) as caught:
        ingest(stranger, "ap.xml", purchase())
    message = caught.value.problems[0]
    assert "Someone Else BV" in message
    assert format_enterprise_number(stranger.enterprise_number) in message
    assert format_enterprise_number(CUSTOMER.enterprise_number) in message


def test_forced_category_must_match_the_parties(client_company):
    with pytest.raises(IntakeError, match="addressed to"):
        ingest(client_company, "ar.xml", sale(), category="purchase")
    with pytest.raises(IntakeError, match="issued by"):
        ingest(client_company, "ap.xml", purchase(), category="sales")
    with pytest.raises(IntakeError, match="only be a transaction report"):
        ingest(client_company, "s.cod", statement(), category="purchase")
    with pytest.raises(IntakeError, match="not a transaction report"):
        ingest(client_company, "ap.xml", purchase(), category="report")


def test_statement_of_another_holder_is_refused(client_company):
    other = demo.demo_clients()[1]
    with pytest.raises(
        IntakeError, match=r"account BE\d+ \(line 1\) belongs to .*, enterprise number"
    ):
        ingest(client_company, "s.cod", statement(holder=other))


def test_release_sets_status_time_and_signals_once(client_company):
    document = ingest(client_company, "ap.xml", purchase()).document
    received = []

    def receiver(sender, document, **kwargs):
        received.append(document.pk)

    document_released.connect(receiver)
    try:
        assert release(document) is True
        assert release(document) is False
    finally:
        document_released.disconnect(receiver)
    document.refresh_from_db()
    assert document.status == "approved"
    assert document.released_at is not None
    assert received == [document.pk]


# --- import_documents -------------------------------------------------------------


def hostile_corpus(folder):
    """One file per way an untrusted upload can be wrong."""
    laughs = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        + b"".join(
            f'<!ENTITY lol{i} "{("&lol" + str(i - 1) + ";") * 10}">'.encode() if i else b""
            for i in range(1, 10)
        ).replace(b"&lol0;", b"&lol;")
        + b"]><Invoice>&lol9;</Invoice>"
    )
    good = purchase()
    lines = statement().split(b"\r\n")
    files = {
        "xxe.xml": b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
        b'<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2">&e;</Invoice>',
        "laughs.xml": laughs,
        "external-dtd.xml": b'<?xml version="1.0"?><!DOCTYPE Invoice SYSTEM '
        b'"http://127.0.0.1:9/x.dtd"><Invoice/>',
        "wrong-root.xml": b'<?xml version="1.0"?><Order xmlns="urn:x"><ID>1</ID></Order>',
        "truncated.xml": good[: len(good) // 2],
        "empty.xml": b"",
        "latin1.xml": good.replace(
            SUPPLIER.name.encode(), (SUPPLIER.name + " \xe9").encode("latin-1")
        ),
        "short-line.cod": b"\r\n".join([lines[0], lines[1][:100], *lines[2:]]),
        "bad-trailer.cod": b"\r\n".join(
            line if not line.startswith(b"9") else line[:16] + b"999999" + line[22:]
            for line in lines
        ),
        "oversized.xml": b"<" + b" " * (1024 * 1024 + 1),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return files


def run_import(capsys, *args):
    try:
        call_command("import_documents", *args)
        code = 0
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def test_hostile_corpus_is_refused_file_by_file_and_nothing_is_stored(
    client_company, tmp_path, capsys, settings
):
    settings.INTAKE_MAX_BYTES = 1024 * 1024
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    files = hostile_corpus(corpus)
    assert b"\xe9" in files["latin1.xml"]

    code, out, err = run_import(capsys, str(corpus), "--client", client_company.enterprise_number)

    assert code == 1
    rejected = [line for line in err.splitlines() if line.startswith("rejected: ")]
    assert len(rejected) == len(files)
    expected = {
        "xxe.xml": "DOCTYPE",
        "laughs.xml": "DOCTYPE",
        "external-dtd.xml": "DOCTYPE",
        "wrong-root.xml": "Order",
        "truncated.xml": "not well-formed XML",
        "empty.xml": "empty",
        "latin1.xml": "not valid",
        "short-line.cod": "Line 2",
        "bad-trailer.cod": "records",
        "oversized.xml": "1 MB limit",
    }
    for name, reason in expected.items():
        line = next(line for line in rejected if f"/{name}: " in line)
        assert reason in line, line
    assert "root:x:0:0" not in out + err
    assert f"{len(files)} files: 0 imported, 0 duplicate, {len(files)} rejected" in out
    assert Document.objects.count() == 0
    assert stored_files(settings) == []


def test_import_reports_each_file_and_exits_zero(client_company, tmp_path, capsys, settings):
    (tmp_path / "ap.xml").write_bytes(purchase())
    (tmp_path / "ar.xml").write_bytes(sale())
    (tmp_path / "st.cod").write_bytes(statement())
    (tmp_path / ".hidden").write_bytes(b"junk")

    code, out, err = run_import(
        capsys, str(tmp_path), "--client", "BE " + CUSTOMER.enterprise_number, "--release"
    )
    assert (code, err) == (0, "")
    assert "imported: " in out
    assert "3 files: 3 imported, 0 duplicate, 0 rejected" in out
    statuses = sorted(Document.objects.values_list("status", flat=True))
    assert statuses == ["approved", "published", "sent"]
    assert len(stored_files(settings)) == 3

    code, out, _ = run_import(
        capsys, str(tmp_path / "ap.xml"), "--client", CUSTOMER.enterprise_number
    )
    assert code == 0
    assert "duplicate: " in out
    assert Document.objects.count() == 3


def test_import_mixed_folder_exits_one_but_keeps_the_good_files(client_company, tmp_path, capsys):
    (tmp_path / "good.xml").write_bytes(purchase())
    (tmp_path / "bad.xml").write_bytes(b"<Invoice")
    code, out, err = run_import(capsys, str(tmp_path), "--client", CUSTOMER.enterprise_number)
    assert code == 1
    assert "1 imported, 0 duplicate, 1 rejected" in out
    assert "bad.xml" in err
    assert Document.objects.count() == 1


def test_import_refuses_unknown_client_and_missing_path(client_company, tmp_path):
    with pytest.raises(CommandError, match="No client with enterprise number 0123456749"):
        call_command("import_documents", str(tmp_path), "--client", "0123456749")
    with pytest.raises(CommandError, match="check digits"):
        call_command("import_documents", str(tmp_path), "--client", "0123456748")
    with pytest.raises(CommandError, match="no such file"):
        call_command(
            "import_documents", str(tmp_path / "nope"), "--client", CUSTOMER.enterprise_number
        )


# Runs argv[2:] and writes its peak resident memory (kB) to argv[1]. The command is started
# from this small process, not from the test runner: on Linux a child's peak memory counts
# what it inherited before exec, and the test runner is itself over 100 MB.
PEAK_MEMORY = """
import resource, subprocess, sys
code = subprocess.call(sys.argv[2:])
with open(sys.argv[1], "w") as out:
    out.write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))
sys.exit(code)
"""


@pytest.mark.django_db(transaction=True)
def test_a_huge_file_is_refused_unread_by_import_documents(client_company, tmp_path, settings):
    """A 1 GB file must not cost 1 GB of memory: the command refuses it by its size alone.

    The command runs as its own process, on the committed rows of the shared test database.
    """
    big = tmp_path / "big.xml"
    with big.open("wb") as sparse:
        sparse.truncate(1024 * 1024 * 1024)
    peak = tmp_path / "peak-kb"
    command = ["import_documents", str(big), "--client", client_company.enterprise_number]

    result = subprocess.run(
        [sys.executable, "-c", PEAK_MEMORY, str(peak), sys.executable, "manage.py", *command],
        cwd=ROOT,
        env=worker_environment(INTAKE_MAX_BYTES=20 * 1024 * 1024),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 1, result.stderr
    refusal = f"rejected: {big}: The file is 1024 MB, larger than the 20 MB limit."
    assert refusal in result.stderr.splitlines()
    assert "1 files: 0 imported, 0 duplicate, 1 rejected" in result.stdout
    assert int(peak.read_text()) < 100 * 1024, f"peak memory {peak.read_text()} kB"
    assert Document.objects.count() == 0
    assert stored_files(settings) == []


def test_an_oversized_upload_in_the_admin_is_refused_and_nothing_stored(
    client_company, client, django_user_model, settings
):
    settings.INTAKE_MAX_BYTES = 1024 * 1024
    django_user_model.objects.create_superuser("root", "root@example.com", "root-pass")
    client.login(username="root", password="root-pass")
    upload = SimpleUploadedFile("huge.xml", b"<" + b" " * (3 * 1024 * 1024 - 1))

    response = client.post(
        "/admin/clients/document/add/",
        {"client": client_company.pk, "upload": upload, "category_choice": ""},
    )

    assert response.status_code == 200
    assert "The file is 3 MB, larger than the 1 MB limit." in response.content.decode()
    assert Document.objects.count() == 0
    assert stored_files(settings) == []


class Stream(io.RawIOBase):
    """A pipe-like source: no length, no seeking."""

    def __init__(self, data):
        self._source = io.BytesIO(data)

    def readable(self):
        return True

    def readinto(self, buffer):
        return self._source.readinto(buffer)


def test_a_stream_of_unknown_length_is_hashed_as_read_and_cut_at_the_limit(
    client_company, settings
):
    data = purchase()
    (result,) = ingest_file(client_company, "ap.xml", Stream(data))
    document = result.document
    assert document.sha256 == hashlib.sha256(data).hexdigest()
    with document.file.open("rb") as stored:
        assert stored.read() == data

    settings.INTAKE_MAX_BYTES = 1024 * 1024
    with pytest.raises(IntakeError, match="larger than the 1 MB limit"):
        ingest_file(client_company, "sale.xml", Stream(sale() + b" " * 1024 * 1024))
    assert Document.objects.count() == 1


def test_release_documents_selects_and_releases(client_company, capsys):
    ap = ingest(client_company, "ap.xml", purchase()).document
    ar = ingest(client_company, "ar.xml", sale()).document
    with pytest.raises(CommandError, match="Select documents"):
        call_command("release_documents")
    call_command("release_documents", "--category", "purchase", "--dry-run")
    assert "1 documents would be released." in capsys.readouterr().out
    ap.refresh_from_db()
    assert ap.released_at is None

    call_command("release_documents", "--client", CUSTOMER.enterprise_number, "--ids", str(ap.pk))
    assert "1 documents released." in capsys.readouterr().out
    ap.refresh_from_db()
    ar.refresh_from_db()
    assert (ap.status, ar.status) == ("approved", "draft")


def test_coda_writer_output_is_a_statement_for_intake():
    assert coda.looks_like_coda(statement())


# --- a bank's export of several statements; duplicates by meaning -----------------------

OTHER = demo.demo_clients()[1]


def bank_export(*holders, newline=b"\r\n"):
    """One statement per holder in turn (sequence 1, 2, ...), "1" on every trailer."""
    parts = []
    for sequence, holder in enumerate(holders, start=1):
        data = demo.statement_coda(
            holder=holder,
            sequence_number=sequence,
            creation_date=DAY,
            old_balance=Decimal("100.00") * sequence,
        )
        parts.append(data[:-3] + b"1\r\n")  # the trailer's multiple-file code
    return b"".join(parts).replace(b"\r\n", newline)


def test_an_export_becomes_one_document_per_statement(client_company, tmp_path, capsys):
    data = bank_export(CUSTOMER, CUSTOMER, CUSTOMER)
    path = tmp_path / "export 2026-10.cod"
    path.write_bytes(data)
    code, out, err = run_import(capsys, str(path), "--client", CUSTOMER.enterprise_number)
    assert (code, err) == (0, "")
    lines = [line for line in out.splitlines() if line.startswith("imported: ")]
    assert [line.split(" [")[1][:3] for line in lines] == ["1/3", "2/3", "3/3"]
    assert all(f"Statement 00{n} of {CUSTOMER.iban}" in lines[n - 1] for n in (1, 2, 3))
    statements = coda.parse_statements(data)
    documents = Document.objects.order_by("number")
    assert [d.number for d in documents] == ["001", "002", "003"]
    for document, parsed in zip(documents, statements, strict=True):
        assert document.original_name == "export 2026-10.cod"
        assert document.file.read() == parsed.data  # the statement's own bytes
        assert document.details["old_balance"] == str(parsed.old_balance)
        assert document.details["new_balance"] == str(parsed.new_balance)
        assert document.details["movement_count"] == parsed.movement_count
        assert document.sha256 == hashlib.sha256(parsed.data).hexdigest()


def test_a_statement_of_another_holder_refuses_the_whole_export(
    client_company, tmp_path, capsys, settings
):
    path = tmp_path / "export.cod"
    path.write_bytes(bank_export(CUSTOMER, OTHER, CUSTOMER))
    code, out, err = run_import(capsys, str(path), "--client", CUSTOMER.enterprise_number)
    assert code == 1
    assert f"account {OTHER.iban} (line " in err
    assert f"belongs to {OTHER.name}, enterprise number" in err
    assert format_enterprise_number(OTHER.enterprise_number) in err
    assert "1 files: 0 imported, 0 duplicate, 1 rejected" in out
    assert Document.objects.count() == 0
    assert stored_files(settings) == []


def test_a_firm_imports_a_multi_client_export(
    client_company, make_client, tmp_path, capsys, settings
):
    partner = client_company.partner
    other = make_client(partner, OTHER.name, enterprise_number=OTHER.enterprise_number)
    (tmp_path / "export.cod").write_bytes(bank_export(CUSTOMER, OTHER, CUSTOMER))
    (tmp_path / "ap.xml").write_bytes(purchase())
    code, out, err = run_import(capsys, str(tmp_path), "--partner", partner.enterprise_number)
    assert (code, err) == (0, "")
    assert f"for {OTHER.name}" in out and f"for {CUSTOMER.name}" in out
    assert "2 files: 4 imported, 0 duplicate, 0 rejected" in out
    assert client_company.documents.count() == 3  # two statements and the invoice
    assert list(other.documents.values_list("number", flat=True)) == ["002"]

    stranger = demo.demo_clients()[2]
    (tmp_path / "stranger.cod").write_bytes(bank_export(stranger))
    code, _out, err = run_import(
        capsys, str(tmp_path / "stranger.cod"), "--partner", partner.enterprise_number
    )
    assert code == 1
    assert f"who is not a client of {partner.name}" in err


def test_byte_different_copies_of_a_statement_are_duplicates(client_company, tmp_path, capsys):
    (tmp_path / "export.cod").write_bytes(bank_export(CUSTOMER, CUSTOMER))
    run_import(capsys, str(tmp_path / "export.cod"), "--client", CUSTOMER.enterprise_number)
    first = Document.objects.get(number="002")
    # Re-downloaded alone, with other line ends: the same statement in other bytes.
    again = coda.parse_statements(bank_export(CUSTOMER, CUSTOMER, newline=b"\n"))[1].data
    assert again != first.file.read()
    (tmp_path / "again.cod").write_bytes(again)
    code, out, _ = run_import(
        capsys, str(tmp_path / "again.cod"), "--client", CUSTOMER.enterprise_number
    )
    assert code == 0
    assert (
        f"duplicate: {tmp_path / 'again.cod'}: Statement 002 of {CUSTOMER.iban}: the same "
        f"document as the one imported from export.cod on "
    ) in out
    assert f"(document {first.pk})" in out
    assert Document.objects.count() == 2


def test_byte_different_copies_of_an_invoice_are_duplicates(client_company):
    data = purchase("AP-9")
    first = ingest(client_company, "ap.xml", data)
    # Exported again: other line ends and a comment.
    reformatted = data.replace(b"\n", b"\r\n").replace(b"?>", b"?>\n<!-- again -->", 1)
    assert reformatted != data
    again = ingest(client_company, "ap (1).xml", reformatted)
    assert again.created is False and again.same_bytes is False
    assert again.document == first.document
    same = ingest(client_company, "ap (2).xml", data)
    assert same.created is False and same.same_bytes is True
    # Another number, or another kind with the same number, is another document.
    assert ingest(client_company, "ap-10.xml", purchase("AP-10")).created
    credit = demo.invoice_xml(
        number="AP-9", issue_date=DAY, supplier=SUPPLIER, customer=CUSTOMER,
        credit_note_for="AP-8",
    )  # fmt: skip
    assert ingest(client_company, "cn.xml", credit).created
    assert Document.objects.count() == 3


def test_a_statement_repeated_within_one_export_is_stored_once(client_company):
    single = demo.statement_coda(
        holder=CUSTOMER, sequence_number=5, creation_date=DAY, old_balance=Decimal("1")
    )
    from clients.intake import ingest_all

    results = ingest_all(client_company, "twice.cod", single + single.replace(b"\r\n", b"\n"))
    assert [r.created for r in results] == [True, False]
    assert results[1].document == results[0].document
    assert Document.objects.count() == 1


def test_credit_notes_are_printed_as_credit_notes(client_company, tmp_path, capsys):
    credit = demo.invoice_xml(
        number="CN-7", issue_date=DAY, supplier=CUSTOMER, customer=SUPPLIER,
        credit_note_for="AR-1",
    )  # fmt: skip
    (tmp_path / "cn.xml").write_bytes(credit)
    _code, out, _ = run_import(capsys, str(tmp_path), "--client", CUSTOMER.enterprise_number)
    assert f"imported: {tmp_path / 'cn.xml'}: Credit note CN-7" in out
    assert Document.objects.get().category == "sales"


def test_an_export_through_the_admin_upload(client_company, django_user_model, client):
    admin = django_user_model.objects.create_superuser("root", "r@example.com", "root-pw")
    client.force_login(admin)
    upload = SimpleUploadedFile("export.cod", bank_export(CUSTOMER, CUSTOMER))
    response = client.post(
        "/admin/clients/document/add/",
        {"client": client_company.pk, "upload": upload, "category_choice": ""},
        follow=True,
    )
    assert "The file held 2 statements." in response.content.decode()
    assert Document.objects.count() == 2


def test_another_coda_version_is_refused_by_name(client_company):
    data = demo.statement_coda(
        holder=CUSTOMER, sequence_number=5, creation_date=DAY, old_balance=Decimal("1")
    )
    version_1 = data[:127] + b"1" + data[128:]
    with pytest.raises(IntakeError, match="CODA version '1' is not supported"):
        ingest(client_company, "old.cod", version_1)


def test_the_supplier_is_shown_by_its_endpoint_number(client_company):
    """A supplier in a VAT group: its VAT id is the group's number, its endpoint its own."""
    group = "0403170701"  # sorts before the supplier's own number
    data = purchase("AP-11").replace(
        f"<cbc:CompanyID>{SUPPLIER.vat_number}</cbc:CompanyID>".encode(),
        f"<cbc:CompanyID>BE{group}</cbc:CompanyID>".encode(),
    )
    assert f"BE{group}".encode() in data
    document = ingest(client_company, "ap.xml", data).document
    assert document.supplier_id == SUPPLIER.enterprise_number


def test_a_statement_without_a_sequence_number_is_compared_by_its_bytes(client_company):
    """No sequence number, no meaning to compare: only identical bytes are the same."""
    from clients.intake import ingest_all

    lines = demo.statement_coda(
        holder=CUSTOMER, sequence_number=5, creation_date=DAY, old_balance=Decimal("1")
    ).split(b"\r\n")
    lines[1] = lines[1][:2] + b"   " + lines[1][5:]  # record 1, positions 3-5
    single = b"\r\n".join(lines)
    results = ingest_all(client_company, "twice.cod", single + single)
    assert results[0].created and results[0].document.meaning == ""
    assert not results[1].created and results[1].same_bytes
    assert results[1].document == results[0].document
    assert Document.objects.count() == 1
