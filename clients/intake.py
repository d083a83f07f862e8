"""Intake: an untrusted file becomes Documents, or is refused with every reason found.

A file is one invoice, one credit note, or one or more bank statements (a bank's export
holds several, each stored as a document of its own, with its own bytes). A file is taken
whole or not at all: the bytes are written to storage only after every document parsed
and passed its checks, the rows are saved in one transaction, and the bytes are removed
again if the rows do not make it. A file's size is checked before it is read, and never
more than the limit plus one byte is read, so an oversized file costs neither memory nor
the time to read it.

A document already stored for the client is reported as a duplicate of the first copy:
the same bytes (SHA-256), or the same document in other bytes (``Document.meaning``: a
statement re-downloaded with other line ends, an invoice exported again).
"""

import hashlib
import io
import os
from dataclasses import dataclass, replace

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
    document: Document  # the stored document; for a duplicate, the first copy
    created: bool  # False: this document was already stored for the client
    same_bytes: bool = False  # for a duplicate: identical bytes, not only the same document


READ_CHUNK = 1024 * 1024


def ingest(client: Client, name: str, data: bytes, *, category: str | None = None):
    """Store a file holding one document for ``client``; ``category`` is inferred when not
    given. A file of several statements goes through :func:`ingest_all`."""
    refuse_oversized(data)
    results = _ingest(client, name, data, hashlib.sha256(data).hexdigest(), category, one=True)
    return results[0]


def ingest_all(target, name: str, data: bytes, *, category: str | None = None):
    """Every document of the file, for ``target``: a client, or a firm whose client each
    document names by enterprise number. A list of :class:`IntakeResult`, in file order."""
    refuse_oversized(data)
    return _ingest(target, name, data, hashlib.sha256(data).hexdigest(), category)


def ingest_file(
    target, name: str, fileobj, *, size: int | None = None, category: str | None = None
):
    """:func:`ingest_all` for what the binary ``fileobj`` holds from its position on.

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
    return _ingest(target, name, data, digest, category)


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


def _ingest(target, name, data, digest, category, *, one=False):
    if not data:
        raise IntakeError(_("The file is empty."))
    if category is not None and category not in Category.values:
        raise IntakeError(_("Unknown category %(category)s.") % {"category": category})
    recipient = _Recipient(target)
    if coda.looks_like_coda(data):
        statements = coda.parse_statements(data)
        if one and len(statements) > 1:
            raise IntakeError(
                _("This file holds %(count)s statements; import it with import_documents.")
                % {"count": len(statements)}
            )
        if len(statements) == 1:  # the file itself, byte for byte
            statements = [replace(statements[0], data=data)]
        documents = [
            (_statement(recipient.for_statement(s), s, category), s.data) for s in statements
        ]
    elif ubl.looks_like_xml(data):
        parsed = ubl.parse(data)
        document = _invoice(recipient.for_invoice(parsed), parsed, category)
        documents = [(document, data)]
    else:
        raise IntakeError(_("This is neither a UBL invoice (XML) nor a CODA bank statement."))
    for document, content in documents:
        document.sha256 = digest if content is data else hashlib.sha256(content).hexdigest()
        document.size = len(content)
        document.original_name = _clean_name(name)
        document.status = INITIAL_STATUS[document.category]
        document.meaning = document.meaning_key()
    try:
        return _store(documents)
    except IntegrityError:
        # Another import stored one of them meanwhile: now it is found as a duplicate.
        return _store(documents)


class _Recipient:
    """Whose document it is: one client (checked against the file), or a firm's client
    found by the enterprise number the document names (refused when it is not one)."""

    def __init__(self, target):
        self.client = target if isinstance(target, Client) else None
        self.partner = target.partner if self.client else target

    def _of_firm(self, numbers: set[str]) -> list[Client]:
        return list(Client.objects.for_partner(self.partner).filter(enterprise_number__in=numbers))

    def for_statement(self, parsed) -> Client:
        holder = parsed.enterprise_number
        where = _statement_place(parsed)
        if self.client is not None:
            if holder and holder != self.client.enterprise_number:
                raise IntakeError(
                    _(
                        "The statement of account %(account)s (line %(line)s) belongs to "
                        "%(holder_name)s, enterprise number %(holder)s, not to %(client)s "
                        "(%(number)s)."
                    )
                    % {
                        **where,
                        "holder_name": parsed.holder_name or _("an unnamed holder"),
                        "holder": format_enterprise_number(holder),
                        "client": self.client.name,
                        "number": format_enterprise_number(self.client.enterprise_number),
                    }
                )
            return self.client
        if not holder:
            raise IntakeError(
                _(
                    "The statement of account %(account)s (line %(line)s) names no enterprise "
                    "number for its holder %(holder_name)s: import it for one client."
                )
                % {**where, "holder_name": parsed.holder_name or _("(unnamed)")}
            )
        found = self._of_firm({holder})
        if not found:
            raise IntakeError(
                _(
                    "The statement of account %(account)s (line %(line)s) belongs to "
                    "%(holder_name)s, enterprise number %(holder)s, who is not a client of "
                    "%(firm)s."
                )
                % {
                    **where,
                    "holder_name": parsed.holder_name or _("an unnamed holder"),
                    "holder": format_enterprise_number(holder),
                    "firm": self.partner.name,
                }
            )
        return found[0]

    def for_invoice(self, parsed) -> Client:
        if self.client is not None:
            return self.client
        numbers = set(parsed.supplier.enterprise_numbers | parsed.customer.enterprise_numbers)
        found = self._of_firm(numbers)
        if len(found) == 1:
            return found[0]
        if not found:
            message = _("Neither %(supplier)s nor %(customer)s is a client of %(firm)s.")
        else:
            message = _(
                "Both %(supplier)s and %(customer)s are clients of %(firm)s: import this "
                "invoice for one of them."
            )
        raise IntakeError(
            message
            % {
                "supplier": _party_numbers(parsed.supplier),
                "customer": _party_numbers(parsed.customer),
                "firm": self.partner.name,
            }
        )


def _statement_place(parsed) -> dict:
    return {"account": parsed.account or _("(no account)"), "line": parsed.first_line}


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


def _store(documents) -> list[IntakeResult]:
    """Find what is already stored, then write the rest (``(document, bytes)`` pairs):
    bytes first, rows in one transaction, bytes removed again if the rows do not make it."""
    results, new, seen = [], [], {}
    for document, content in documents:
        keys = [(document.client_id, "sha256", document.sha256)]
        if document.meaning:
            keys.append((document.client_id, "meaning", document.meaning))
        first = next((seen[key] for key in keys if key in seen), None)  # earlier in the file
        if first is None:
            first = _stored_copy(document)
        if first is not None:
            same_bytes = first.sha256 == document.sha256
            results.append(IntakeResult(first, created=False, same_bytes=same_bytes))
            continue
        seen.update(dict.fromkeys(keys, document))
        new.append((document, content))
        results.append(IntakeResult(document, created=True))
    written = []
    try:
        for document, content in new:
            document.file.save(document.original_name, ContentFile(content), save=False)
            written.append(document)
        with transaction.atomic():
            for document, _content in new:
                document.save()
    except BaseException:
        for document in written:
            document.file.delete(save=False)
        for document, _content in new:
            document.pk = None
        raise
    return results


def _stored_copy(document) -> Document | None:
    """The client's document with these bytes, or else with this meaning."""
    stored = Document.objects.filter(client=document.client_id)
    found = stored.filter(sha256=document.sha256).first()
    if found is None and document.meaning:
        found = stored.filter(meaning=document.meaning).first()
    return found


def _clean_name(name: str) -> str:
    base = os.path.basename(str(name).replace("\\", "/"))
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    return base[:255] or "document"


def _main_identifier(party) -> str:
    """The enterprise number the party is best known by (``ubl.Party.main_number``), else
    its VAT number or first identifier as written."""
    first_written = party.identifiers[0] if party.identifiers else ""
    return party.main_number or party.vat_number or first_written


def _party_numbers(party) -> str:
    numbers = sorted(party.enterprise_numbers) or list(party.identifiers)
    shown = ", ".join(format_enterprise_number(n) for n in numbers) or _("no identifier")
    return f"{party.name} ({shown})"
