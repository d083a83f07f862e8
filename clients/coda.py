"""Belgian CODA 2.x bank statements (Febelfin "coded statement of account"): read and write.

A CODA file is a sequence of 128-character records in windows-1252, one per line:

    0     header: creation date, bank, account holder's enterprise number, version "2"
    1     old balance: account (structure 0-3), currency, balance, holder name
    2.1   movement: sign, amount, dates, communication (2.2 and 2.3 continue it,
          2.3 adds the counterparty)
    3.x   information about a movement
    4     free communication
    8     new balance
    9     trailer: record count and debit/credit totals, the file's own checksum

A bank's export commonly holds several statements one after the other (each from its
header 0 to its trailer 9, for one or several accounts). The trailer's "multiple file"
code is not relied upon: real exports write 1 on every trailer, the last one included, so
a statement simply ends at its trailer and the next starts at the following header.

``parse_statements`` treats its input as hostile: it refuses anything that does not follow
the layout, and cross-checks each trailer and the balances so that a truncated or edited
file is refused rather than half-imported. ``write`` produces files that ``parse``
accepts; the demo data generator uses it.

Field positions below are 1-based and inclusive, exactly as printed in the Febelfin
standard (CODA 2.6), so that they can be checked against the spec by eye.
"""

import datetime
import re
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import NoReturn

from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop as N_

from clients.errors import IntakeError, refuse_oversized
from partnerspace.enterprise import is_valid as is_valid_enterprise_number
from partnerspace.enterprise import normalize as normalize_enterprise_number

RECORD_LENGTH = 128
ENCODING = "cp1252"
MAX_PROBLEMS = 20

HEADER = {  # record 0
    "creation_date": (6, 11),
    "bank_number": (12, 14),
    "application_code": (15, 16),
    "addressee": (35, 60),
    "bic": (61, 71),
    "holder_id": (72, 82),
    "separate_application": (84, 88),
    "version": (128, 128),
}
OLD_BALANCE = {  # record 1
    "structure": (2, 2),
    "paper_sequence": (3, 5),
    "account": (6, 42),
    "sign": (43, 43),
    "amount": (44, 58),
    "date": (59, 64),
    "holder_name": (65, 90),
    "description": (91, 125),
    "coda_sequence": (126, 128),
}
MOVEMENT = {  # record 2.1
    "sequence": (3, 6),
    "detail": (7, 10),
    "bank_reference": (11, 31),
    "sign": (32, 32),
    "amount": (33, 47),
    "value_date": (48, 53),
    "transaction_code": (54, 61),
    "communication_type": (62, 62),
    "communication": (63, 115),
    "entry_date": (116, 121),
    "paper_sequence": (122, 124),
    "globalisation": (125, 125),
    "next": (126, 126),
    "link": (128, 128),
}
MOVEMENT_2 = {  # record 2.2
    "sequence": (3, 6),
    "detail": (7, 10),
    "communication": (11, 63),
    "customer_reference": (64, 98),
    "counterparty_bic": (99, 109),
    "next": (126, 126),
    "link": (128, 128),
}
MOVEMENT_3 = {  # record 2.3
    "sequence": (3, 6),
    "detail": (7, 10),
    "counterparty_account": (11, 44),
    "counterparty_currency": (45, 47),
    "counterparty_name": (48, 82),
    "communication": (83, 115),
    "next": (126, 126),
    "link": (128, 128),
}
NEW_BALANCE = {  # record 8
    "paper_sequence": (2, 4),
    "account": (5, 41),
    "sign": (42, 42),
    "amount": (43, 57),
    "date": (58, 63),
    "link": (128, 128),
}
TRAILER = {  # record 9
    "record_count": (17, 22),
    "debit": (23, 37),
    "credit": (38, 52),
    "multiple_file": (128, 128),
}
# The 37-character "account number and currency" zone of records 1 and 8, by account
# structure (position 2 of record 1), relative to the start of the zone.
ACCOUNT_ZONE = {
    "0": {"number": (1, 12), "currency": (14, 16)},  # Belgian account number
    "1": {"number": (1, 34), "currency": (35, 37)},  # foreign account number
    "2": {"number": (1, 31), "currency": (35, 37)},  # IBAN of a Belgian account
    "3": {"number": (1, 34), "currency": (35, 37)},  # IBAN of a foreign account
}
IBAN_STRUCTURES = {"2", "3"}

# Record kinds: the first character, plus the article code for movements and information.
KNOWN_KINDS = {"0", "1", "21", "22", "23", "31", "32", "33", "4", "8", "9"}
# What the trailer's record count covers (spec: "number of records 1, 2.1, 2.2, 2.3, 3.1,
# 3.2, 3.3 and 8"): not the header, the trailer itself, nor free communication (4).
COUNTED_KINDS = {"1", "21", "22", "23", "31", "32", "33", "8"}
# Structured communication types that carry the 12-digit Belgian "+++xxx/xxxx/xxxxx+++".
BELGIAN_STRUCTURED = {"101", "102"}

_DIGITS = re.compile(r"[0-9]+")
_CENT = Decimal("0.01")


@dataclass
class Movement:
    """One movement (a record 2.1 and its 2.2/2.3 continuations)."""

    amount: Decimal  # signed: negative = debit
    value_date: datetime.date
    booking_date: datetime.date
    counterparty_name: str = ""
    counterparty_account: str = ""
    communication: str = ""  # free text; or a 12-digit Belgian structured communication
    structured: bool = False


@dataclass(frozen=True)
class ParsedStatement:
    """What intake keeps of a statement; amounts in the account currency."""

    bank_id: str
    holder_name: str
    enterprise_number: str
    account: str
    currency: str
    statement_date: datetime.date
    creation_date: datetime.date
    sequence_number: str
    old_balance: Decimal
    new_balance: Decimal
    # Top-level movements: records 2.1 with detail number 0000. The details of a globalised
    # movement (detail 0001, 0002, ...) are already in its amount, so they are not counted,
    # exactly as the trailer's totals do not count them.
    movement_count: int
    total_debit: Decimal  # positive: the sum of the debit movements
    total_credit: Decimal
    # The top-level movements (detail number 0000), for whoever wants more than totals.
    movements: tuple[Movement, ...] = field(default=(), compare=False, repr=False)
    # This statement's own records, as they are in the file (line ends included), and
    # where they start: a statement of a multi-statement file is stored on its own.
    data: bytes = field(default=b"", compare=False, repr=False)
    first_line: int = field(default=1, compare=False)


def looks_like_coda(data: bytes) -> bool:
    """Cheap sniff: the first line is a 128-byte record "0000..." ending in a version digit
    (another version than 2 is then refused by name)."""
    first = data[: RECORD_LENGTH + 3].split(b"\n", 1)[0].removesuffix(b"\r")
    return len(first) == RECORD_LENGTH and first.startswith(b"0000") and first[-1:].isdigit()


def parse(data: bytes, *, max_bytes: int | None = None) -> ParsedStatement:
    """Read a file holding exactly one CODA statement."""
    statements = parse_statements(data, max_bytes=max_bytes)
    if len(statements) > 1:
        raise IntakeError(
            _("Line %(line)s: a second statement starts after the trailer.")
            % {"line": statements[1].first_line}
        )
    return statements[0]


def parse_statements(data: bytes, *, max_bytes: int | None = None) -> list[ParsedStatement]:
    """Every statement of a CODA file, in file order; raise ``IntakeError`` listing what is
    wrong (with line numbers counted from the start of the file)."""
    refuse_oversized(data, max_bytes)
    lines = _split_lines(data)
    statements = []
    for group in _statement_groups(lines):
        start, end = group[0].start, group[-1].end
        statement = _Reader(group).read()
        statements.append(replace(statement, data=data[start:end], first_line=group[0].number))
    return statements


def _statement_groups(lines: list["_Line"]) -> list[list["_Line"]]:
    """A statement ends at its trailer (9) when a header (0) follows; anything else after a
    trailer stays with it, for the reader to refuse in place."""
    groups = [[]]
    for line in lines:
        if line.kind == "0" and groups[-1] and groups[-1][-1].kind == "9":
            groups.append([])
        groups[-1].append(line)
    return groups


# --- reading ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Line:
    number: int  # 1-based, as people count lines
    text: str
    start: int = 0  # byte offsets of the line in the file, its line end included
    end: int = 0

    @property
    def kind(self) -> str:
        return self.text[:2] if self.text[:1] in ("2", "3") else self.text[:1]

    def get(self, layout: dict, name: str) -> str:
        start, end = layout[name]
        return self.text[start - 1 : end]


class _Problems(list):
    """Problems found so far; gives up (raises) once there are enough to act on."""

    def add(self, message: str) -> None:
        self.append(message)
        if len(self) >= MAX_PROBLEMS:
            self.fail()

    def fail(self) -> NoReturn:
        problems = list(self)
        if len(problems) >= MAX_PROBLEMS:
            problems.append(
                _("Stopped after %(count)s problems; there may be more.") % {"count": MAX_PROBLEMS}
            )
        raise IntakeError(problems)


def _split_lines(data: bytes) -> list[_Line]:
    """Decode and cut into records; refuse bytes, lengths and kinds that cannot be CODA."""
    chunks = data.split(b"\n")
    while chunks and not chunks[-1].strip(b"\r"):
        chunks.pop()  # a trailing newline (or a few) is fine
    if not chunks:
        raise IntakeError(_("The file is empty."))

    problems = _Problems()
    lines = []
    offset = 0
    for number, chunk in enumerate(chunks, start=1):
        start, offset = offset, min(offset + len(chunk) + 1, len(data))
        chunk = chunk.removesuffix(b"\r")
        line, problem = _read_line(number, chunk)
        if line:
            lines.append(replace(line, start=start, end=offset))
            continue
        problems.add(problem)
        if number == 1 and not chunk.startswith(b"0"):
            # Not even the start of a header: do not list every line of an XML or PDF.
            problems.append(_("This does not look like a CODA bank statement."))
            problems.fail()
    if problems:
        problems.fail()
    return lines


def _read_line(number: int, chunk: bytes) -> tuple[_Line | None, str | None]:
    """The record on this line, or why this line cannot be a CODA record."""
    try:
        text = chunk.decode(ENCODING)
    except UnicodeDecodeError as error:
        return None, _(
            "Line %(line)s: byte 0x%(byte)s at position %(column)s is not windows-1252 text."
        ) % {"line": number, "byte": f"{chunk[error.start]:02X}", "column": error.start + 1}
    if len(text) != RECORD_LENGTH:
        return None, _(
            "Line %(line)s has %(length)s characters; CODA records have exactly 128."
        ) % {
            "line": number,
            "length": len(text),
        }
    line = _Line(number, text)
    if line.kind not in KNOWN_KINDS:
        return None, _("Line %(line)s: unknown record type '%(type)s'.") % {
            "line": number,
            "type": _kind_label(line.kind),
        }
    return line, None


@dataclass
class _Draft:
    """A movement being assembled from its 2.1, 2.2 and 2.3 records."""

    line: _Line
    top_level: bool  # detail number 0000; details of a globalised movement are not
    amount: Decimal | None
    value_date: datetime.date | None
    booking_date: datetime.date | None
    structured: str | None  # the 12 digits of a Belgian structured communication
    text: list[str]
    counterparty_name: str = ""
    counterparty_account: str = ""


class _Reader:
    """Walks the records once, in the order the standard prescribes."""

    def __init__(self, lines: list[_Line]):
        self.lines = lines
        self.problems = _Problems()

    # Field readers: each reports a problem (naming line and positions) and returns None.

    def _bad(self, line, layout, name, message, **params):
        """Report ``message`` (with ``%(value)s`` = the field's text) at the field."""
        start, end = layout[name]
        where = (
            _("Line %(line)s, position %(start)s")
            if start == end
            else _("Line %(line)s, positions %(start)s-%(end)s")
        ) % {"line": line.number, "start": start, "end": end}
        params["value"] = line.get(layout, name)
        if "label" in params:
            params["label"] = _(params["label"])  # marked with N_: translated only when used
        self.problems.add(f"{where}: {message % params}")

    def number(self, line, layout, name, label) -> int | None:
        value = line.get(layout, name)
        if _DIGITS.fullmatch(value):
            return int(value)
        self._bad(
            line,
            layout,
            name,
            _("the %(label)s should be digits, found '%(value)s'."),
            label=label,
        )
        return None

    def amount(self, line, layout, label, sign="sign", amount="amount") -> Decimal | None:
        """A signed amount: 15 digits with 3 implied decimals, sign 0 credit / 1 debit."""
        sign_value = line.get(layout, sign)
        if sign_value not in ("0", "1"):
            self._bad(
                line,
                layout,
                sign,
                _("the %(label)s sign should be 0 (credit) or 1 (debit), found '%(value)s'."),
                label=label,
            )
        units = self.number(line, layout, amount, label)
        if units is None or sign_value not in ("0", "1"):
            return None
        value = _money(units)
        return -value if sign_value == "1" else value

    def date(self, line, layout, name, label, *, optional=False) -> datetime.date | None:
        value = line.get(layout, name)
        if optional and value == "000000":
            return None
        parsed = _ddmmyy(value)
        if parsed is None:
            self._bad(
                line,
                layout,
                name,
                _("the %(label)s should be a date written DDMMYY, found '%(value)s'."),
                label=label,
            )
        return parsed

    # The walk.

    def read(self) -> ParsedStatement:
        lines = iter(self.lines)
        header = next(lines)
        if header.kind != "0":
            self.out_of_place(header, _("a CODA file starts with the header record (0)"))
        self.read_header(header)

        old = next(lines, None)
        if old is None:
            self.problems.add(
                _(
                    "The file ends after the header (line 1): the old balance (1), new "
                    "balance (8) and trailer (9) records are missing."
                )
            )
            self.problems.fail()
        if old.kind != "1":
            self.out_of_place(old, _("the old balance record (1) follows the header"))
        self.read_old_balance(old)

        drafts: list[_Draft] = []
        counted = 1
        new = trailer = None
        last = old
        for line in lines:
            last = line
            kind = line.kind
            counted += kind in COUNTED_KINDS
            if trailer is not None:
                self.out_of_place(line, _("nothing may follow the trailer (9)"))
            elif kind == "9":
                if new is None:
                    self.fail_at(
                        line,
                        _(
                            "the trailer (9) comes before any new balance record (8); the "
                            "new balance is missing."
                        ),
                    )
                trailer = line
            elif kind == "4":
                pass  # free communication: allowed before or after the new balance
            elif new is not None:
                self.out_of_place(
                    line,
                    _("only free communication (4) and the trailer (9) follow the new balance"),
                )
            elif kind == "8":
                new = line
            elif kind == "21":
                drafts.append(self.read_movement(line))
            elif kind in ("22", "23"):
                if not drafts:
                    self.out_of_place(
                        line,
                        _("it continues a movement record (2.1), and there is none before it"),
                    )
                self.read_continuation(drafts[-1], line)
            elif kind in ("31", "32", "33"):
                if not drafts:
                    self.out_of_place(
                        line,
                        _(
                            "information records follow a movement record (2.1), and there is "
                            "none before it"
                        ),
                    )
            else:  # a second 0 or 1
                self.out_of_place(
                    line,
                    _(
                        "expected movements (2.x, 3.x), free communication (4) or the new "
                        "balance (8)"
                    ),
                )

        if new is None:
            self.problems.add(
                _(
                    "The file ends at line %(line)s without a new balance record (8) and "
                    "trailer (9)."
                )
                % {"line": last.number}
            )
            self.problems.fail()
        if trailer is None:
            self.problems.add(
                _("The file ends at line %(line)s without a trailer record (9).")
                % {"line": last.number}
            )
            self.problems.fail()
        return self.finish(header, old, new, trailer, drafts, counted)

    def fail_at(self, line, message) -> NoReturn:
        self.problems.append(
            _("Line %(line)s: %(message)s") % {"line": line.number, "message": message}
        )
        self.problems.fail()

    def out_of_place(self, line, expected) -> NoReturn:
        self.fail_at(
            line,
            _("record %(type)s is out of place: %(expected)s.")
            % {"type": _kind_label(line.kind), "expected": expected},
        )

    def read_header(self, line):
        self.creation_date = self.date(line, HEADER, "creation_date", N_("creation date"))
        if line.get(HEADER, "version") != "2":
            self._bad(
                line,
                HEADER,
                "version",
                _("CODA version '%(value)s' is not supported; only version 2 is."),
            )

    def read_old_balance(self, line):
        structure = line.get(OLD_BALANCE, "structure")
        if structure not in ACCOUNT_ZONE:
            self._bad(
                line,
                OLD_BALANCE,
                "structure",
                _("the account structure should be 0, 1, 2 or 3, found '%(value)s'."),
            )
        self.structure = structure
        self.old_balance = self.amount(line, OLD_BALANCE, N_("old balance"))
        self.date(line, OLD_BALANCE, "date", N_("old balance date"), optional=True)

    def read_movement(self, line) -> _Draft:
        detail = line.get(MOVEMENT, "detail")
        self.number(line, MOVEMENT, "detail", N_("detail number"))
        structured = None
        if line.get(MOVEMENT, "communication_type") == "1":
            zone = line.get(MOVEMENT, "communication")
            if zone[:3] in BELGIAN_STRUCTURED and _DIGITS.fullmatch(zone[3:15]):
                structured = zone[3:15]
        return _Draft(
            line=line,
            top_level=detail == "0000",
            amount=self.amount(line, MOVEMENT, N_("movement amount")),
            value_date=self.date(line, MOVEMENT, "value_date", N_("value date"), optional=True),
            booking_date=self.date(line, MOVEMENT, "entry_date", N_("entry date"), optional=True),
            structured=structured,
            text=[line.get(MOVEMENT, "communication")],
        )

    def read_continuation(self, draft, line):
        if line.kind == "22":
            draft.text.append(line.get(MOVEMENT_2, "communication"))
        else:
            draft.text.append(line.get(MOVEMENT_3, "communication"))
            draft.counterparty_name = line.get(MOVEMENT_3, "counterparty_name").strip()
            draft.counterparty_account = line.get(MOVEMENT_3, "counterparty_account").strip()

    def finish(self, header, old, new, trailer, drafts, counted) -> ParsedStatement:
        new_balance = self.amount(new, NEW_BALANCE, N_("new balance"))
        new_date = self.date(new, NEW_BALANCE, "date", N_("new balance date"), optional=True)
        expected_count = self.number(trailer, TRAILER, "record_count", N_("record count"))
        expected_debit = self.number(trailer, TRAILER, "debit", N_("debit total"))
        expected_credit = self.number(trailer, TRAILER, "credit", N_("credit total"))
        if self.problems:
            self.problems.fail()  # the checks below need every figure

        movements = [_movement(d, new_date or self.creation_date) for d in drafts if d.top_level]
        debit = sum((-m.amount for m in movements if m.amount < 0), Decimal("0.00"))
        credit = sum((m.amount for m in movements if m.amount >= 0), Decimal("0.00"))
        at = {"line": trailer.number}
        if expected_count != counted:
            self.problems.add(
                _(
                    "Line %(line)s: the trailer says %(expected)s records, the file has "
                    "%(found)s (counting records 1, 2.x, 3.x and 8)."
                )
                % {**at, "expected": expected_count, "found": counted}
            )
        if _money(expected_debit) != debit:
            self.problems.add(
                _(
                    "Line %(line)s: the trailer says the debits total %(expected)s, the "
                    "movements add up to %(found)s."
                )
                % {**at, "expected": _money(expected_debit), "found": debit}
            )
        if _money(expected_credit) != credit:
            self.problems.add(
                _(
                    "Line %(line)s: the trailer says the credits total %(expected)s, the "
                    "movements add up to %(found)s."
                )
                % {**at, "expected": _money(expected_credit), "found": credit}
            )
        if self.old_balance + credit - debit != new_balance:
            self.problems.add(
                _(
                    "Line %(line)s: the new balance %(new)s is not the old balance %(old)s "
                    "plus the movements (%(credit)s in, %(debit)s out)."
                )
                % {
                    "line": new.number,
                    "new": new_balance,
                    "old": self.old_balance,
                    "credit": credit,
                    "debit": debit,
                }
            )
        if self.problems:
            self.problems.fail()

        account_zone = ACCOUNT_ZONE[self.structure]
        zone = old.get(OLD_BALANCE, "account")
        number_start, number_end = account_zone["number"]
        currency_start, currency_end = account_zone["currency"]
        return ParsedStatement(
            bank_id=_bank_id(header),
            holder_name=(
                old.get(OLD_BALANCE, "holder_name").strip()
                or header.get(HEADER, "addressee").strip()
            ),
            enterprise_number=_enterprise_number(header.get(HEADER, "holder_id")),
            account=zone[number_start - 1 : number_end].strip(),
            currency=zone[currency_start - 1 : currency_end].strip(),
            statement_date=new_date or self.creation_date,
            creation_date=self.creation_date,
            sequence_number=old.get(OLD_BALANCE, "paper_sequence").strip(),
            old_balance=self.old_balance,
            new_balance=new_balance,
            movement_count=len(movements),
            total_debit=debit,
            total_credit=credit,
            movements=tuple(movements),
        )


def _movement(draft: _Draft, fallback: datetime.date) -> Movement:
    """A finished movement; unknown dates (000000) fall back to the other date."""
    booking = draft.booking_date or draft.value_date or fallback
    if draft.structured:
        communication, structured = draft.structured, True
    else:
        raw = "".join(draft.text)
        if draft.line.get(MOVEMENT, "communication_type") == "1":
            raw = raw[3:]  # another structured type: keep its text, drop the type code
        communication, structured = raw.strip(), False
    return Movement(
        amount=draft.amount,
        value_date=draft.value_date or booking,
        booking_date=booking,
        counterparty_name=draft.counterparty_name,
        counterparty_account=draft.counterparty_account,
        communication=communication,
        structured=structured,
    )


def _bank_id(header: _Line) -> str:
    bic = header.get(HEADER, "bic").strip()
    number = header.get(HEADER, "bank_number").strip()
    return bic or ("" if number.strip("0") == "" else number)


def _enterprise_number(value: str) -> str:
    """The holder's enterprise number from positions 72-82, or "" when there is none.

    The standard writes "0" + the ten digits; real files also write a blank instead of
    that "0", or the ten digits alone on either side of a blank. A value that is not a
    valid enterprise number (blanks, zeros, another identifier) names no one.
    """
    value = value.strip()
    if not _DIGITS.fullmatch(value) or not 9 <= len(value) <= 11:
        return ""
    number = f"{int(value):010d}"
    return number if is_valid_enterprise_number(number) else ""


def _kind_label(kind: str) -> str:
    return f"{kind[0]}.{kind[1]}" if len(kind) == 2 else kind


def _ddmmyy(value: str) -> datetime.date | None:
    """CODA dates have two-digit years; every CODA 2 file is from this century."""
    if not (len(value) == 6 and _DIGITS.fullmatch(value)):
        return None
    try:
        return datetime.date(2000 + int(value[4:]), int(value[2:4]), int(value[:2]))
    except ValueError:
        return None


def _money(units: int) -> Decimal:
    """15 digits with 3 implied decimals; shown with 2 when the third is 0 (EUR is)."""
    value = Decimal(units).scaleb(-3)
    cents = value.quantize(_CENT)
    return cents if cents == value else value


# --- writing ---------------------------------------------------------------------------


def structured_communication(reference: int) -> str:
    """The 12 digits of a Belgian structured communication: 10 digits + mod-97 check."""
    if not 0 < reference < 10**10:
        raise ValueError("a structured communication reference has 1 to 10 digits")
    check = reference % 97 or 97
    return f"{reference:010d}{check:02d}"


def write(
    *,
    bank_id: str,
    holder_name: str,
    enterprise_number: str,
    iban: str,
    currency: str,
    creation_date: datetime.date,
    sequence_number: int,
    old_balance: Decimal,
    movements: list[Movement],
    statement_date: datetime.date | None = None,
    multiple_file: str = "2",
) -> bytes:
    """A one-statement CODA 2 file (CRLF, windows-1252) that ``parse`` accepts.

    ``bank_id`` is a BIC or a three-digit bank identification number. Names longer than
    their field are cut, as banks do; anything that would change meaning (a communication
    that does not fit, an invalid structured communication, a character windows-1252
    cannot hold, an amount with more than 3 decimals) raises ``ValueError``.
    ``statement_date`` (the new balance date) defaults to the last booking date.
    ``multiple_file`` is the trailer's code: "2" for a last (or only) statement, "1" when
    another follows, as the standard has it (banks often write "1" on every trailer).
    """
    iban = iban.replace(" ", "").upper()
    if not re.fullmatch(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}", iban):
        raise ValueError(f"not an IBAN: {iban!r}")
    if not re.fullmatch(r"[A-Z]{3}", currency):
        raise ValueError(f"not an ISO currency code: {currency!r}")
    if not 0 <= sequence_number <= 999:
        raise ValueError("sequence_number is 0 to 999")
    enterprise = normalize_enterprise_number(enterprise_number)
    if enterprise and not re.fullmatch(r"[0-9]{10}", enterprise):
        raise ValueError(f"not an enterprise number: {enterprise_number!r}")
    bank_id = bank_id.strip().upper()
    bank_number = bank_id if re.fullmatch(r"[0-9]{3}", bank_id) else "000"
    bic = "" if bank_number != "000" else bank_id
    if len(bic) > 11:
        raise ValueError(f"not a BIC: {bank_id!r}")

    bookings = [m.booking_date for m in movements]
    statement_date = statement_date or max(bookings, default=creation_date)
    old_date = min(bookings, default=statement_date) - datetime.timedelta(days=1)
    structure = "2" if iban.startswith("BE") and len(iban) == 16 else "3"
    account_zone = iban.ljust(34) + currency
    paper = f"{sequence_number:03d}"

    lines = [
        _record(
            "0",
            HEADER,
            {
                "creation_date": _date(creation_date),
                "bank_number": bank_number,
                "application_code": "05",
                "addressee": _text(holder_name, 26, "holder_name"),
                "bic": _text(bic, 11, "bank_id"),
                "holder_id": "0" + enterprise if enterprise else " " * 11,
                "separate_application": "00000",
                "version": "2",
            },
            prefix="0000",
        ),
        _record(
            "1",
            OLD_BALANCE,
            {
                "structure": structure,
                "paper_sequence": paper,
                "account": account_zone,
                **_signed(old_balance, "sign", "amount"),
                "date": _date(old_date),
                "holder_name": _text(holder_name, 26, "holder_name"),
                "description": " " * 35,
                "coda_sequence": paper,
            },
        ),
    ]
    new_balance = old_balance
    debit = credit = Decimal(0)
    for index, movement in enumerate(movements, start=1):
        lines += _movement_records(index % 10000, movement, paper)
        new_balance += movement.amount
        if movement.amount < 0:
            debit -= movement.amount
        else:
            credit += movement.amount
    lines.append(
        _record(
            "8",
            NEW_BALANCE,
            {
                "paper_sequence": paper,
                "account": account_zone,
                **_signed(new_balance, "sign", "amount"),
                "date": _date(statement_date),
                "link": "0",
            },
        )
    )
    counted = sum(_Line(0, line).kind in COUNTED_KINDS for line in lines)
    lines.append(
        _record(
            "9",
            TRAILER,
            {
                "record_count": f"{counted:06d}",
                "debit": _units(debit),
                "credit": _units(credit),
                "multiple_file": multiple_file,
            },
        )
    )
    return "".join(line + "\r\n" for line in lines).encode(ENCODING)


def _movement_records(sequence: int, movement: Movement, paper: str) -> list[str]:
    """Record 2.1, plus 2.2 when the communication needs it, plus 2.3 for the counterparty."""
    key = {"sequence": f"{sequence:04d}", "detail": "0000"}
    if movement.structured:
        digits = re.sub(r"[^0-9]", "", movement.communication)
        if not (len(digits) == 12 and structured_communication(int(digits[:10])) == digits):
            raise ValueError(f"not a Belgian structured communication: {movement.communication!r}")
        parts = ["101" + digits, "", ""]
    else:
        text = movement.communication.strip()
        _text(text, 139, "communication", cut=False)
        parts = [text[:53], text[53:106], text[106:]]
    name = _text(movement.counterparty_name, 35, "counterparty_name")
    account = movement.counterparty_account.replace(" ", "").upper()
    with_2 = bool(parts[1])
    with_3 = bool(parts[2] or name.strip() or account)

    credit_code, debit_code = "00150000", "00101000"  # transfer in your favour / order
    records = [
        _record(
            "21",
            MOVEMENT,
            {
                **key,
                "bank_reference": f"{movement.booking_date:%y%m%d}{paper}{sequence:04d}".ljust(21),
                **_signed(movement.amount, "sign", "amount"),
                "value_date": _date(movement.value_date),
                "transaction_code": debit_code if movement.amount < 0 else credit_code,
                "communication_type": "1" if movement.structured else "0",
                "communication": parts[0].ljust(53),
                "entry_date": _date(movement.booking_date),
                "paper_sequence": paper,
                "globalisation": "0",
                "next": "1" if with_2 or with_3 else "0",
                "link": "0",
            },
        )
    ]
    if with_2:
        records.append(
            _record(
                "22",
                MOVEMENT_2,
                {
                    **key,
                    "communication": parts[1].ljust(53),
                    "next": str(int(with_3)),
                    "link": "0",
                },
            )
        )
    if with_3:
        records.append(
            _record(
                "23",
                MOVEMENT_3,
                {
                    **key,
                    "counterparty_account": _text(account, 34, "counterparty_account", cut=False),
                    "counterparty_currency": "   ",
                    "counterparty_name": name,
                    "communication": parts[2].ljust(33),
                    "next": "0",
                    "link": "0",
                },
            )
        )
    return records


def _record(kind: str, layout: dict, values: dict, prefix: str = "") -> str:
    """One 128-character record: the kind (and prefix) in front, fields by the table."""
    chars = list((kind + prefix).ljust(RECORD_LENGTH))
    for name, value in values.items():
        start, end = layout[name]
        if len(value) != end - start + 1:
            raise AssertionError(f"{kind} {name}: {value!r} does not fill {start}-{end}")
        chars[start - 1 : end] = value
    return "".join(chars)


def _text(value: str, width: int, what: str, *, cut: bool = True) -> str:
    """Left-aligned text in a fixed field; cut to fit, or refuse when ``cut`` is False."""
    value = value.strip()
    if any(ord(c) < 32 for c in value):
        raise ValueError(f"{what} contains a control character: {value!r}")
    try:
        value.encode(ENCODING)
    except UnicodeEncodeError:
        raise ValueError(f"{what} has characters windows-1252 cannot hold: {value!r}") from None
    if len(value) > width and not cut:
        raise ValueError(f"{what} is longer than {width} characters: {value!r}")
    return value[:width].ljust(width)


def _units(amount: Decimal) -> str:
    """An unsigned amount as 15 digits with 3 implied decimals."""
    units = abs(amount) * 1000
    if units != units.to_integral_value():
        raise ValueError(f"{amount} has more than 3 decimals")
    if units >= 10**15:
        raise ValueError(f"{amount} is too large for CODA")
    return f"{int(units):015d}"


def _signed(amount: Decimal, sign: str, field_name: str) -> dict:
    return {sign: "1" if amount < 0 else "0", field_name: _units(amount)}


def _date(value: datetime.date) -> str:
    if not 2000 <= value.year <= 2099:
        raise ValueError(f"CODA dates are 20YY: {value}")
    return f"{value:%d%m%y}"
