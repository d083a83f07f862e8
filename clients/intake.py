"""Intake: an untrusted file becomes a Document, or is refused with every reason found.

A refused file leaves nothing behind: the bytes are written to storage only after parsing
succeeded, and removed again if the row cannot be saved. A file's size is checked before it
is read, and never more than the limit plus one byte is read, so an oversized file costs
neither memory nor the time to read it.
"""

import hashlib
import io
import os
from dataclasses import dataclass

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from django.utils.translation import gettext as _

from clients import coda, ubl
from clients.errors import IntakeError, refuse_oversized, refuse_size
from clients.models import Client, Document
from clients.release import INITIAL_STATUS
from partnerspace.enterprise import format_enterprise_number

Category = Document.Category


@dataclass(frozen=True)
class IntakeResult:
    document: Document
    created: bool  # False: the same bytes were already stored for this client


READ_CHUNK = 1024 * 1024


def ingest(client: Client, name: str, data: bytes, *, category: str | None = None):
    """Store ``data`` for ``client``; ``category`` is inferred when not given."""
    refuse_oversized(data)
    return _ingest(client, name, data, hashlib.sha256(data).hexdigest(), category)


def ingest_file(
    client: Client, name: str, fileobj, *, size: int | None = None, category: str | None = None
):
    """Store what the binary ``fileobj`` holds from its current position on.

    ``size`` is what the caller already knows (``stat``, ``upload.size``); without it a
    seekable file is measured by seeking. Either way an oversized file is refused before a
    byte is read, and the read stops one byte past the limit, so a file that grew since it
    was measured, or a stream of unknown length, is refused all the same.
    """
    limit = settings.INTAKE_MAX_BYTES
    if size is None:
        size = _remaining(fileobj)
    if size is not None:
        refuse_size(size, limit)
    data, digest = _read_bounded(fileobj, limit)
    return _ingest(client, name, data, digest, category)


def _read_bounded(fileobj, limit: int) -> tuple[bytes, str]:
    """At most ``limit`` + 1 bytes, hashed chunk by chunk as they arrive."""
    sha256 = hashlib.sha256()
    chunks, total = [], 0
    while total <= limit:
        chunk = fileobj.read(min(READ_CHUNK, limit + 1 - total))
        if not chunk:
            break
        sha256.update(chunk)
        chunks.append(chunk)
        total += len(chunk)
    if total > limit:
        chunks.clear()
        refuse_size(total + (_remaining(fileobj) or 0), limit)
    return b"".join(chunks), sha256.hexdigest()


def _remaining(fileobj) -> int | None:
    """Bytes left after the current position, found by seeking; None for a pure stream."""
    try:
        if not fileobj.seekable():
            return None
        position = fileobj.tell()
        end = fileobj.seek(0, io.SEEK_END)
        fileobj.seek(position)
    except (AttributeError, OSError, ValueError):
        return None
    return max(end - position, 0)


def _ingest(client, name, data, digest, category):
    if not data:
        raise IntakeError(_("The file is empty."))
    if category is not None and category not in Category.values:
        raise IntakeError(_("Unknown category %(category)s.") % {"category": category})

    existing = Document.objects.filter(client=client, sha256=digest).first()
    if existing:
        return IntakeResult(existing, created=False)

    if coda.looks_like_coda(data):
        document = _statement(client, coda.parse(data), category)
    elif ubl.looks_like_xml(data):
        document = _invoice(client, ubl.parse(data), category)
    else:
        raise IntakeError(_("This is neither a UBL invoice (XML) nor a CODA bank statement."))

    document.sha256 = digest
    document.size = len(data)
    document.original_name = _clean_name(name)
    document.status = INITIAL_STATUS[document.category]
    return _store(document, data)


def _invoice(client, parsed, category):
    if category == Category.REPORT:
        raise IntakeError(
            _("This is an invoice, not a transaction report: reports are CODA files.")
        )
    is_customer = client.enterprise_number in parsed.customer.enterprise_numbers
    is_supplier = client.enterprise_number in parsed.supplier.enterprise_numbers
    number = format_enterprise_number(client.enterprise_number)
    if category is None:
        if is_customer == is_supplier:
            raise IntakeError(
                _(
                    "Cannot tell whether this is a purchase or a sale of %(client)s "
                    "(%(number)s): the supplier is %(supplier)s and the customer is "
                    "%(customer)s."
                )
                % {
                    "client": client.name,
                    "number": number,
                    "supplier": _party_numbers(parsed.supplier),
                    "customer": _party_numbers(parsed.customer),
                }
            )
        category = Category.PURCHASE if is_customer else Category.SALES
    elif category == Category.PURCHASE and not is_customer:
        raise IntakeError(
            _(
                "This purchase invoice is addressed to %(customer)s, not to %(client)s "
                "(%(number)s)."
            )
            % {
                "customer": _party_numbers(parsed.customer),
                "client": client.name,
                "number": number,
            }
        )
    elif category == Category.SALES and not is_supplier:
        raise IntakeError(
            _("This sales invoice was issued by %(supplier)s, not by %(client)s (%(number)s).")
            % {
                "supplier": _party_numbers(parsed.supplier),
                "client": client.name,
                "number": number,
            }
        )
    return Document(
        client=client,
        category=category,
        kind=Document.Kind.CREDIT_NOTE if parsed.kind == "credit_note" else Document.Kind.INVOICE,
        number=parsed.number,
        issue_date=parsed.issue_date,
        due_date=parsed.due_date,
        supplier_name=parsed.supplier.name,
        supplier_id=_main_identifier(parsed.supplier),
        customer_name=parsed.customer.name,
        customer_id=_main_identifier(parsed.customer),
        currency=parsed.currency,
        total_without_tax=parsed.total_without_tax,
        tax_total=parsed.tax_total,
        payable_amount=parsed.payable_amount,
        content_type="application/xml",
        details={
            "customization_id": parsed.customization_id,
            "profile_id": parsed.profile_id,
            "type_code": parsed.type_code,
            "buyer_reference": parsed.buyer_reference,
            "line_count": parsed.line_count,
        },
    )


def _statement(client, parsed, category):
    if category not in (None, Category.REPORT):
        raise IntakeError(_("This is a CODA bank statement: it can only be a transaction report."))
    holder = parsed.enterprise_number
    if holder and holder != client.enterprise_number:
        raise IntakeError(
            _(
                "This statement belongs to enterprise number %(holder)s, not to %(client)s "
                "(%(number)s)."
            )
            % {
                "holder": format_enterprise_number(holder),
                "client": client.name,
                "number": format_enterprise_number(client.enterprise_number),
            }
        )
    return Document(
        client=client,
        category=Category.REPORT,
        kind=Document.Kind.STATEMENT,
        number=parsed.sequence_number,
        issue_date=parsed.statement_date,
        supplier_name=parsed.bank_id,
        customer_name=parsed.holder_name,
        customer_id=parsed.account,
        currency=parsed.currency,
        content_type="text/plain; charset=windows-1252",
        details={
            "account": parsed.account,
            "bank_id": parsed.bank_id,
            "sequence_number": parsed.sequence_number,
            "creation_date": parsed.creation_date.isoformat(),
            "old_balance": str(parsed.old_balance),
            "new_balance": str(parsed.new_balance),
            "movement_count": parsed.movement_count,
            "total_debit": str(parsed.total_debit),
            "total_credit": str(parsed.total_credit),
        },
    )


def _store(document, data):
    """Write the bytes, then the row; undo the bytes if the row does not make it."""
    document.file.save(document.original_name, ContentFile(data), save=False)
    try:
        with transaction.atomic():
            document.save()
    except IntegrityError:
        document.file.delete(save=False)
        existing = Document.objects.filter(client=document.client, sha256=document.sha256).first()
        if existing is None:
            raise
        return IntakeResult(existing, created=False)
    except BaseException:
        document.file.delete(save=False)
        raise
    return IntakeResult(document, created=True)


def _clean_name(name: str) -> str:
    base = os.path.basename(str(name).replace("\\", "/"))
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    return base[:255] or "document"


def _main_identifier(party) -> str:
    if party.enterprise_numbers:
        return sorted(party.enterprise_numbers)[0]
    return party.vat_number or (party.identifiers[0] if party.identifiers else "")


def _party_numbers(party) -> str:
    numbers = sorted(party.enterprise_numbers) or list(party.identifiers)
    shown = ", ".join(format_enterprise_number(n) for n in numbers) or _("no identifier")
    return f"{party.name} ({shown})"
