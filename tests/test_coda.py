"""CODA 2.x: a hand-written bank file, write/parse round trips, and hostile input."""

import datetime
from decimal import Decimal

import pytest
from django.test import override_settings

from clients import coda
from clients.errors import IntakeError

D = Decimal
ACCOUNT_ZONE = "BE68539007547034".ljust(31) + "   " + "EUR"  # structure 2: IBAN, blanks, EUR
TEXT_2 = "Facture F2025-0318, commande 4471: acompte de 50 pour cent, merci!"


def rec(*parts: str) -> str:
    """One record from its fields, written out by hand; it must come to 128 characters."""
    line = "".join(parts)
    assert len(line) == 128, (len(line), line)
    return line


# A statement as KBC might send it: a direct debit with a structured communication and an
# information record, a credit with a communication running into record 2.2, a globalised
# debit with two details, a free communication, then new balance and trailer.
REAL = [
    rec(  # 0 header
        "0", "0000", "030425", "725", "05", " ", " " * 7, " " * 10,
        "DUPONT & FILS SRL".ljust(26), "KREDBEBB   ", "00403170701", " ", "00000",
        " " * 16, " " * 16, " " * 7, "2",
    ),
    rec(  # 1 old balance: +12,345.670 on 01/04/25
        "1", "2", "065", ACCOUNT_ZONE, "0", "000000012345670", "010425",
        "Dupont & Fils SRL".ljust(26), "KBC-Bedrijfsrekening".ljust(35), "065",
    ),
    rec(  # 2.1 debit 1,234.56, direct debit, structured +++090/9337/55493+++
        "2", "1", "0001", "0000", "0P8L01C2A DOMALGBEBE0", "1", "000000001234560", "020425",
        "00501000", "1", ("101" + "090933755493").ljust(53), "020425", "065", "0", "1", " ",
        "1",
    ),
    rec(  # 2.2 counterparty BIC, nothing more to say
        "2", "2", "0001", "0000", " " * 53, " " * 35, "GEBABEBB   ", "   ", " ", "    ",
        "    ", "    ", "1", " ", "1",
    ),
    rec(  # 2.3 counterparty account and name (accented, windows-1252)
        "2", "3", "0001", "0000", "BE43068999999501".ljust(34), "EUR",
        "Électricité Müller SA".ljust(35), " " * 33, " " * 10, "0", " ", "1",
    ),
    rec(  # 3.1 information about movement 0001
        "3", "1", "0001", "0000", "0P8L01C2A DOMALGBEBE0", "00501000", "0",
        "Mandat SEPA B2B 2023-117".ljust(73), " " * 12, "0", " ", "0",
    ),
    rec(  # 2.1 credit 2,500.00, free communication continued in 2.2
        "2", "1", "0002", "0000", "0P8L01C2B VIRSEPBEBE0", "0", "000000002500000", "020425",
        "00150000", "0", TEXT_2[:53], "030425", "065", "0", "1", " ", "0",
    ),
    rec(  # 2.2
        "2", "2", "0002", "0000", TEXT_2[53:].ljust(53), " " * 35, "DEUTDEFF   ", "   ", " ",
        "    ", "    ", "    ", "1", " ", "0",
    ),
    rec(  # 2.3
        "2", "3", "0002", "0000", "DE89370400440532013000".ljust(34), "   ",
        "Bäckerei Schütz GmbH".ljust(35), " " * 33, " " * 10, "0", " ", "0",
    ),
    rec(  # 2.1 globalised debit 300.00 (globalisation code 1)...
        "2", "1", "0003", "0000", "0P8L01C2C GLOBALBEBE0", "1", "000000000300000", "030425",
        "10107000", "0", "Collectieve overschrijving 2 opdrachten".ljust(53), "030425",
        "065", "1", "0", " ", "0",
    ),
    rec(  # ...and its two details, detail numbers 0001 and 0002: not in the totals
        "2", "1", "0003", "0001", "0P8L01C2C GLOBALBEBE0", "1", "000000000100000", "030425",
        "10101000", "0", "Loon maart".ljust(53), "030425", "065", "0", "0", " ", "0",
    ),
    rec(
        "2", "1", "0003", "0002", "0P8L01C2C GLOBALBEBE0", "1", "000000000200000", "030425",
        "10101000", "0", "Loon maart".ljust(53), "030425", "065", "1", "0", " ", "0",
    ),
    rec(  # 4 free communication: not counted by the trailer
        "4", " ", "0001", "0000", " " * 22, "Vanaf 1 mei nieuwe tarieven.".ljust(80), " " * 15,
        "0",
    ),
    rec(  # 8 new balance: 12,345.67 - 1,234.56 + 2,500.00 - 300.00 = 13,311.11 on 03/04/25
        "8", "065", ACCOUNT_ZONE, "0", "000000013311110", "030425", " " * 64, "0",
    ),
    rec(  # 9 trailer: 12 records of kind 1, 2.x, 3.x and 8; debit 1,534.56; credit 2,500.00
        "9", " " * 15, "000012", "000000001534560", "000000002500000", " " * 75, "2",
    ),
]  # fmt: skip
TRAILER = len(REAL)  # the trailer's line number


def encode(lines: list[str], newline: str = "\r\n", *, final: bool = True) -> bytes:
    text = newline.join(lines) + (newline if final else "")
    return text.encode("cp1252")


def refused(data: bytes, **kwargs) -> str:
    with pytest.raises(IntakeError) as caught:
        coda.parse(data, **kwargs)
    return "\n".join(caught.value.problems)


def replaced(lines: list[str], number: int, start: int, value: str) -> list[str]:
    """``lines`` with ``value`` written at 1-based ``start`` on line ``number``."""
    changed = list(lines)
    line = changed[number - 1]
    changed[number - 1] = line[: start - 1] + value + line[start - 1 + len(value) :]
    return changed


# --- the hand-written file ---------------------------------------------------------------


def test_real_file_parses_with_every_figure():
    parsed = coda.parse(encode(REAL))

    assert parsed.bank_id == "KREDBEBB"
    assert parsed.holder_name == "Dupont & Fils SRL"
    assert parsed.enterprise_number == "0403170701"
    assert parsed.account == "BE68539007547034"
    assert parsed.currency == "EUR"
    assert parsed.creation_date == datetime.date(2025, 4, 3)
    assert parsed.statement_date == datetime.date(2025, 4, 3)
    assert parsed.sequence_number == "065"
    assert parsed.old_balance == D("12345.67")
    assert parsed.new_balance == D("13311.11")
    assert parsed.movement_count == 3  # the globalised movement once, not its details
    assert parsed.total_debit == D("1534.56")
    assert parsed.total_credit == D("2500.00")
    assert str(parsed.old_balance) == "12345.67"  # 3 implied decimals, shown as cents


def test_real_file_movements():
    debit, credit, globalised = coda.parse(encode(REAL)).movements

    assert debit == coda.Movement(
        amount=D("-1234.56"),
        value_date=datetime.date(2025, 4, 2),
        booking_date=datetime.date(2025, 4, 2),
        counterparty_name="Électricité Müller SA",
        counterparty_account="BE43068999999501",
        communication="090933755493",
        structured=True,
    )
    assert credit.amount == D("2500.00")
    assert credit.booking_date == datetime.date(2025, 4, 3)
    assert credit.communication == TEXT_2
    assert credit.counterparty_name == "Bäckerei Schütz GmbH"
    assert globalised.amount == D("-300.00")
    assert globalised.communication == "Collectieve overschrijving 2 opdrachten"


def test_real_file_with_lf_and_without_final_newline():
    assert coda.parse(encode(REAL, "\n")).new_balance == D("13311.11")
    assert coda.parse(encode(REAL, "\n", final=False)).new_balance == D("13311.11")
    assert coda.parse(encode(REAL, final=False)).movement_count == 3


def test_free_communication_after_the_new_balance_is_accepted():
    lines = REAL[:12] + REAL[13:14] + REAL[12:13] + REAL[14:]
    assert [line[0] for line in lines[-3:]] == ["8", "4", "9"]
    assert coda.parse(encode(lines)).total_credit == D("2500.00")


def test_belgian_account_structure_and_negative_balance():
    zone = "539007547034" + " " + "EUR" + " " * 21  # structure 0: 12 digits, blank, currency
    lines = replaced(REAL, 2, 2, "0" + "065" + zone + "1" + "000000000045000")
    lines = replaced(lines, 14, 5, zone + "0" + "000000000920440")
    parsed = coda.parse(encode(lines))
    assert parsed.account == "539007547034"
    assert parsed.currency == "EUR"
    assert parsed.old_balance == D("-45.00")
    assert parsed.new_balance == D("920.44")


def test_blank_identification_and_bic_fall_back():
    lines = replaced(REAL, 1, 61, " " * 11 + " " * 11)
    parsed = coda.parse(encode(lines))
    assert parsed.enterprise_number == ""
    assert parsed.bank_id == "725"


def test_looks_like_coda():
    assert coda.looks_like_coda(encode(REAL))
    assert coda.looks_like_coda(encode(REAL, "\n"))
    assert not coda.looks_like_coda(b"")
    assert not coda.looks_like_coda(b'<?xml version="1.0"?><Invoice/>')
    # Another version is CODA all the same: the parser refuses it by name.
    assert coda.looks_like_coda(encode([REAL[0][:-1] + "1", *REAL[1:]]))
    assert not coda.looks_like_coda(encode([REAL[0][:-1] + "X", *REAL[1:]]))
    assert not coda.looks_like_coda(encode([REAL[0] + " ", *REAL[1:]]))


# --- write, then parse ----------------------------------------------------------------------


def statement(movements, **overrides):
    arguments = {
        "bank_id": "GKCCBEBB",
        "holder_name": "Brasserie Dupré",
        "enterprise_number": "BE 0403.170.701",
        "iban": "BE68 5390 0754 7034",
        "currency": "EUR",
        "creation_date": datetime.date(2025, 3, 19),
        "sequence_number": 42,
        "old_balance": D("1000.00"),
        "movements": movements,
    }
    arguments.update(overrides)
    return coda.write(**arguments)


MOVEMENTS = [
    coda.Movement(
        amount=D("-120.50"),
        value_date=datetime.date(2025, 3, 17),
        booking_date=datetime.date(2025, 3, 17),
        counterparty_name="Zoë Müller-Lefèvre",
        counterparty_account="BE43 0689 9999 9501",
        communication="Facture 2025-0012 café crème",
    ),
    coda.Movement(
        amount=D("1500.00"),
        value_date=datetime.date(2025, 3, 17),
        booking_date=datetime.date(2025, 3, 18),
        counterparty_name="Société Générale Élan",
        counterparty_account="FR1420041010050500013M02606",
        communication=coda.structured_communication(909337554),
        structured=True,
    ),
    coda.Movement(
        amount=D("-0.015"),
        value_date=datetime.date(2025, 3, 18),
        booking_date=datetime.date(2025, 3, 18),
        communication="Frais de tenue de compte, mars 2025. " * 3,  # 111 chars: 2.1+2.2+2.3
    ),
    coda.Movement(
        amount=D("2000"),
        value_date=datetime.date(2025, 3, 18),
        booking_date=datetime.date(2025, 3, 18),
    ),
]


def test_write_makes_valid_128_character_crlf_records():
    data = statement(MOVEMENTS)
    assert coda.looks_like_coda(data)
    assert data.endswith(b"\r\n")
    lines = data.decode("cp1252").split("\r\n")[:-1]
    assert all(len(line) == 128 for line in lines)
    kinds = [line[:2] if line[0] in "23" else line[0] for line in lines]
    assert kinds == ["0", "1", "21", "23", "21", "23", "21", "22", "23", "21", "8", "9"]
    assert lines[-1][16:22] == "000010"  # 1, eight 2.x, 8
    assert "Müller".encode("cp1252") in data


def test_round_trip():
    parsed = coda.parse(statement(MOVEMENTS))

    assert parsed.bank_id == "GKCCBEBB"
    assert parsed.holder_name == "Brasserie Dupré"
    assert parsed.enterprise_number == "0403170701"
    assert parsed.account == "BE68539007547034"
    assert parsed.currency == "EUR"
    assert parsed.creation_date == datetime.date(2025, 3, 19)
    assert parsed.statement_date == datetime.date(2025, 3, 18)
    assert parsed.sequence_number == "042"
    assert parsed.old_balance == D("1000.00")
    assert parsed.new_balance == D("4379.485")
    assert parsed.movement_count == 4
    assert parsed.total_debit == D("120.515")
    assert parsed.total_credit == D("3500.00")

    expected = [
        coda.Movement(
            amount=m.amount,
            value_date=m.value_date,
            booking_date=m.booking_date,
            counterparty_name=m.counterparty_name,
            counterparty_account=m.counterparty_account.replace(" ", ""),
            communication=m.communication.strip(),
            structured=m.structured,
        )
        for m in MOVEMENTS
    ]
    assert list(parsed.movements) == expected
    assert parsed.movements[1].communication == "090933755493"


def test_round_trip_with_lf_line_ends():
    lf = statement(MOVEMENTS).replace(b"\r\n", b"\n")
    assert coda.parse(lf).new_balance == D("4379.485")


def test_round_trip_foreign_iban_negative_balances_and_no_movements():
    parsed = coda.parse(
        statement(
            [],
            iban="NL91ABNA0417164300",
            currency="USD",
            old_balance=D("-12.34"),
            bank_id="300",
            enterprise_number="",
            holder_name="Jürgen Ægir Ñúñez-Çelik und Söhne GmbH",
            statement_date=datetime.date(2025, 3, 31),
        )
    )
    assert parsed.account == "NL91ABNA0417164300"
    assert parsed.currency == "USD"
    assert parsed.bank_id == "300"
    assert parsed.enterprise_number == ""
    assert parsed.holder_name == "Jürgen Ægir Ñúñez-Çelik un"  # cut to 26, as banks do
    assert parsed.old_balance == parsed.new_balance == D("-12.34")
    assert parsed.statement_date == datetime.date(2025, 3, 31)
    assert parsed.movement_count == 0
    assert parsed.total_debit == parsed.total_credit == 0


def test_round_trip_many_movements():
    movements = [
        coda.Movement(
            amount=D(n * 7 % 1000) / 100 * (1 if n % 3 else -1),
            value_date=datetime.date(2025, 1, 1 + n % 28),
            booking_date=datetime.date(2025, 1, 1 + n % 28),
            counterparty_name=f"Client n°{n}",
            communication=f"Réf {n}",
        )
        for n in range(1, 251)
    ]
    parsed = coda.parse(statement(movements))
    assert parsed.movement_count == 250
    assert parsed.new_balance == D("1000.00") + sum(m.amount for m in movements)
    assert parsed.total_debit == -sum(m.amount for m in movements if m.amount < 0)
    assert [m.counterparty_name for m in parsed.movements][-1] == "Client n°250"


def test_write_refuses_what_it_cannot_represent():
    def one(**fields):
        base = {
            "amount": D("1"),
            "value_date": datetime.date(2025, 3, 1),
            "booking_date": datetime.date(2025, 3, 1),
        }
        return [coda.Movement(**(base | fields))]

    with pytest.raises(ValueError, match="windows-1252"):
        statement(one(counterparty_name="Łódź Sp. z o.o."))
    with pytest.raises(ValueError, match="structured"):
        statement(one(communication="090933755494", structured=True))  # bad check digits
    with pytest.raises(ValueError, match="139"):
        statement(one(communication="x" * 140))
    with pytest.raises(ValueError, match="3 decimals"):
        statement(one(amount=D("0.0001")))
    with pytest.raises(ValueError, match="IBAN"):
        statement([], iban="not an iban")


# --- hostile input ------------------------------------------------------------------------


def test_empty_file():
    assert "empty" in refused(b"")
    assert "empty" in refused(b"\r\n")


def test_short_line():
    lines = list(REAL)
    lines[2] = lines[2][:127]
    assert "Line 3 has 127 characters" in refused(encode(lines))


def test_long_line():
    lines = list(REAL)
    lines[6] += "X"
    assert "Line 7 has 129 characters" in refused(encode(lines))


def test_several_bad_lines_are_all_reported_up_to_a_cap():
    lines = list(REAL)
    lines[2] = lines[2][:100]
    lines[4] += "  "
    message = refused(encode(lines))
    assert "Line 3 has 100 characters" in message
    assert "Line 5 has 130 characters" in message

    problems = refused(encode(REAL[:2] + ["2" * 50] * 40 + REAL[2:])).split("\n")
    assert len(problems) == coda.MAX_PROBLEMS + 1
    assert problems[0] == "Line 3 has 50 characters; CODA records have exactly 128."
    assert "Stopped after 20 problems" in problems[-1]


def test_trailer_record_count_does_not_add_up():
    lines = replaced(REAL, TRAILER, 17, "000013")
    message = refused(encode(lines))
    assert f"Line {TRAILER}: the trailer says 13 records, the file has 12" in message


def test_trailer_count_ignores_free_communication():
    lines = REAL[:12] + [REAL[12]] * 3 + REAL[13:]
    assert coda.parse(encode(lines)).movement_count == 3
    lines = REAL[:5] + [REAL[5]] * 2 + REAL[6:]  # one more 3.1 is counted
    assert "says 12 records, the file has 13" in refused(encode(lines))


def test_trailer_debit_total_does_not_add_up():
    lines = replaced(REAL, TRAILER, 23, "000000001534570")
    message = refused(encode(lines))
    assert f"Line {TRAILER}: the trailer says the debits total 1534.57" in message
    assert "add up to 1534.56" in message


def test_trailer_credit_total_does_not_add_up():
    lines = replaced(REAL, TRAILER, 38, "000000002400000")
    message = refused(encode(lines))
    assert f"Line {TRAILER}: the trailer says the credits total 2400.00" in message
    assert "add up to 2500.00" in message


def test_movement_amount_changed_breaks_totals_and_balance():
    lines = replaced(REAL, 7, 33, "000000002600000")  # the credit: 2,500 -> 2,600
    message = refused(encode(lines))
    assert "credits total 2500.00, the movements add up to 2600.00" in message
    assert "Line 14: the new balance 13311.11 is not the old balance 12345.67" in message


def test_missing_trailer():
    message = refused(encode(REAL[:-1]))
    assert f"ends at line {TRAILER - 1} without a trailer record (9)" in message


def test_missing_new_balance():
    message = refused(encode(REAL[:-2] + REAL[-1:]))
    assert f"Line {TRAILER - 1}: the trailer (9) comes before any new balance" in message
    message = refused(encode(REAL[:-2]))
    assert "without a new balance record (8)" in message


def test_missing_header():
    message = refused(encode(REAL[1:]))
    assert "Line 1: record 1 is out of place" in message
    assert "header record (0)" in message


def test_missing_old_balance():
    message = refused(encode(REAL[:1] + REAL[2:]))
    assert "Line 2: record 2.1 is out of place" in message
    assert "old balance record (1)" in message
    assert "old balance" in refused(encode(REAL[:1]))


def test_old_balance_before_header():
    message = refused(encode([REAL[1], REAL[0], *REAL[2:]]))
    assert "Line 1: record 1 is out of place" in message


def test_continuation_without_movement():
    message = refused(encode(REAL[:2] + REAL[3:]))
    assert "Line 3: record 2.2 is out of place" in message


def test_two_statements_in_one_file_are_refused_where_one_is_expected():
    message = refused(encode(REAL + REAL))
    assert f"Line {TRAILER + 1}: a second statement starts after the trailer" in message


# --- a bank's export: several statements, several accounts ---------------------------------


def export(newline="\r\n"):
    """Three statements of two accounts and two holders, "1" on every trailer (as a real
    export writes it), accents in windows-1252 names."""
    parts = [
        statement(MOVEMENTS, sequence_number=41, multiple_file="1"),
        statement(
            MOVEMENTS[:2],
            holder_name="Boulangerie Hélène Dœuf",
            enterprise_number="0202.239.951",
            iban="BE71 0961 2345 6769",
            sequence_number=7,
            old_balance=D("-250.00"),
            creation_date=datetime.date(2025, 3, 20),
            multiple_file="1",
        ),
        statement(MOVEMENTS[3:], sequence_number=42, old_balance=D("4379.485"),
                  multiple_file="1"),
    ]  # fmt: skip
    data = b"".join(parts)
    return data.replace(b"\r\n", newline.encode()), parts


@pytest.mark.parametrize("newline", ["\r\n", "\n"])
def test_an_export_of_several_statements_gives_each_with_its_figures(newline):
    data, parts = export(newline)
    statements = coda.parse_statements(data)
    assert [(s.account, s.sequence_number) for s in statements] == [
        ("BE68539007547034", "041"),
        ("BE71096123456769", "007"),
        ("BE68539007547034", "042"),
    ]
    first, second, third = statements
    assert (first.holder_name, first.enterprise_number) == ("Brasserie Dupré", "0403170701")
    assert (second.holder_name, second.enterprise_number) == (
        "Boulangerie Hélène Dœuf",
        "0202239951",
    )
    assert (first.old_balance, first.new_balance) == (D("1000.00"), D("4379.485"))
    assert (second.old_balance, second.new_balance) == (D("-250.00"), D("1129.50"))
    assert (third.old_balance, third.new_balance) == (D("4379.485"), D("6379.485"))
    assert [s.movement_count for s in statements] == [4, 2, 1]
    assert [s.first_line for s in statements] == [1, 13, 21]
    # Each statement's own bytes, which together are the file.
    assert b"".join(s.data for s in statements) == data
    assert [s.data for s in statements] == [p.replace(b"\r\n", newline.encode()) for p in parts]
    assert coda.parse(second.data) == second


def test_a_statement_of_an_export_that_does_not_add_up_is_refused_with_its_line():
    data, _parts = export()
    lines = data.decode("cp1252").split("\r\n")
    trailer = 20  # the second statement's trailer (line 20)
    assert lines[trailer - 1].startswith("9")
    lines[trailer - 1] = lines[trailer - 1][:16] + "000099" + lines[trailer - 1][22:]
    with pytest.raises(IntakeError) as caught:
        coda.parse_statements("\r\n".join(lines).encode("cp1252"))
    assert "Line 20: the trailer says 99 records" in "\n".join(caught.value.problems)


def test_a_record_after_the_last_trailer_is_still_refused():
    data, _parts = export()
    with pytest.raises(IntakeError) as caught:
        coda.parse_statements(data + REAL[1].encode("cp1252") + b"\r\n")
    assert "Line 26: record 1 is out of place: nothing may follow the trailer (9)." in (
        caught.value.problems
    )


@pytest.mark.parametrize(
    "written",
    ["00403170701", " 0403170701", "0403170701 ", "  403170701"],
    ids=["standard", "leading-blank", "no-leading-zero", "nine-digits"],
)
def test_the_holders_enterprise_number_in_every_layout_of_real_files(written):
    lines = replaced(REAL, 1, 72, written)
    assert coda.parse(encode(lines)).enterprise_number == "0403170701"


@pytest.mark.parametrize("written", ["00000000000", " " * 11, "00403170702", "ABCDEFGHIJK"])
def test_no_enterprise_number_where_none_is_written(written):
    assert coda.parse(encode(replaced(REAL, 1, 72, written))).enterprise_number == ""


def test_unknown_record_type():
    lines = [*REAL[:6], "7" + "0" * 127, *REAL[6:]]
    assert "Line 7: unknown record type '7'" in refused(encode(lines))
    lines = replaced(REAL, 4, 1, "25")
    assert "Line 4: unknown record type '2.5'" in refused(encode(lines))


def test_wrong_version():
    lines = replaced(REAL, 1, 128, "1")
    assert "Line 1, position 128: CODA version '1' is not supported" in refused(encode(lines))


def test_non_numeric_amount():
    lines = replaced(REAL, 3, 33, "00000000123A560")
    message = refused(encode(lines))
    assert "Line 3, positions 33-47: the movement amount should be digits" in message
    assert "00000000123A560" in message


def test_superscript_digits_are_not_digits():
    lines = replaced(REAL, 2, 44, "00000001234567²")
    assert "Line 2, positions 44-58: the old balance should be digits" in refused(encode(lines))


def test_bad_sign_and_dates():
    lines = replaced(REAL, 2, 43, "5")
    assert "Line 2, position 43: the old balance sign should be 0" in refused(encode(lines))
    lines = replaced(REAL, 3, 116, "310225")  # 31 February
    assert "Line 3, positions 116-121: the entry date should be a date" in refused(encode(lines))
    lines = replaced(REAL, 1, 6, "03AP25")
    assert "Line 1, positions 6-11: the creation date should be a date" in refused(encode(lines))


def test_non_numeric_trailer_count():
    lines = replaced(REAL, TRAILER, 17, "00001 ")
    assert f"Line {TRAILER}, positions 17-22: the record count" in refused(encode(lines))


def test_file_over_the_limit():
    data = encode(REAL)
    message = refused(data, max_bytes=len(data) - 1)
    assert f"larger than the {round((len(data) - 1) / 1048576, 6)} MB limit" in message
    assert coda.parse(data, max_bytes=len(data)).movement_count == 3

    with override_settings(INTAKE_MAX_BYTES=1024 * 1024):
        assert "larger than the 1 MB limit" in refused(data * 600)


def test_undecodable_bytes():
    data = encode(REAL)
    position = data.index(b"Dupont")
    data = data[:position] + b"\x81" + data[position + 1 :]
    assert "Line 2: byte 0x81 at position 65 is not windows-1252 text" in refused(data)


def test_ubl_invoice_given_to_the_coda_parser():
    xml = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n'
        b'<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2">\n'
        b"  <cbc:ID>F2025-0012</cbc:ID>\n"
        b"</Invoice>\n"
    )
    problems = refused(xml).split("\n")
    assert problems == [
        "Line 1 has 38 characters; CODA records have exactly 128.",
        "This does not look like a CODA bank statement.",
    ]


def test_binary_garbage():
    assert "Line 1" in refused(bytes(range(256)) * 4)
