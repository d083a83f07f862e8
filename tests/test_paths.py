"""Upload path templates and export file names (exports/paths.py): no DB, no mocks."""

import hashlib
import ntpath
import posixpath
import random
import unicodedata
from datetime import UTC, date, datetime
from types import SimpleNamespace

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from extensions.paths import (
    DEFAULT_TEMPLATE,
    KNOWN_VARIABLES,
    file_name,
    join,
    preview,
    render,
    validate_template,
)

TODAY = date(2025, 3, 7)
ALL_VARIABLES = "".join(f"[{name}]/" for name in KNOWN_VARIABLES)
SHA = hashlib.sha256(b"invoice").hexdigest()


def make_client(**fields):
    values = {
        "external_id": "CL-0001",
        "enterprise_number": "0123456749",
        "vat_number": "BE0123456749",
        "name": "Bakkerij Peeters BV",
    }
    values.update(fields)
    return SimpleNamespace(**values)


def make_document(**fields):
    values = {
        "category": "purchase",
        "kind": "invoice",
        "number": "INV-2025-001",
        "issue_date": date(2025, 3, 1),
        "released_at": datetime(2025, 3, 7, 10, 0, tzinfo=UTC),
        "sha256": SHA,
        "pk": 1,
    }
    values.update(fields)
    return SimpleNamespace(**values)


def render_for(template, category="purchase", today=TODAY, **client_fields):
    return render(template, client=make_client(**client_fields), category=category, today=today)


def assert_safe(parts):
    """Every part is one harmless folder name and the whole stays under the base."""
    assert isinstance(parts, tuple)
    for part in parts:
        assert isinstance(part, str)
        assert part, parts
        assert ".." not in part, parts
        assert "/" not in part and "\\" not in part, parts
        assert not any(unicodedata.category(c)[0] == "C" for c in part), parts
        assert not any(unicodedata.category(c) in ("Zl", "Zp") for c in part), parts
        assert not set('<>:"|?*') & set(part), parts
        assert part == part.strip().strip("."), parts
        assert len(part.encode("utf-8")) <= 200, parts
    resolved = posixpath.normpath(posixpath.join("/base", *parts))
    assert resolved == "/base" or resolved.startswith("/base/"), resolved
    assert resolved.count("/") == len(parts) + 1, resolved  # one folder per part
    windows = ntpath.normpath(ntpath.join("C:\\base", *parts))
    assert windows == "C:\\base" or windows.startswith("C:\\base\\"), windows


PIECES = [
    "..", ".", "/", "\\", "//", "[", "]", "[year]", "[YEAR]", "[company_name]", "[external_id]",
    "[nope]", "\x00", "\n", "\r", "\t", "\x7f", "\x1b", "\u0085", "\u2028", "\u202e", "\ufeff",
    "\ud800", "\ue000", "é", "ß", "日本", "😀", "<", ">", ":", '"', "|", "?", "*", " ", "\u00a0",
    "%2e", "%2f", "C:", "~", "a", "Z", "0", "-", "_", "{0}", "%s",
]  # fmt: skip


# --- variables ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("[external_id]", "CL-0001"),
        ("[uen_number]", "0123456749"),
        ("[invoice_type]", "purchases"),
        ("[year]", "2025"),
        ("[month]", "03"),
        ("[company_name]", "Bakkerij Peeters BV"),
        ("[vat_number]", "BE0123456749"),
    ],
)
def test_each_variable(template, expected):
    assert render_for(template) == (expected,)


def test_known_variables_are_exactly_the_documented_ones():
    assert KNOWN_VARIABLES == (
        "external_id",
        "uen_number",
        "invoice_type",
        "year",
        "month",
        "company_name",
        "vat_number",
    )


@pytest.mark.parametrize(
    ("today", "expected"),
    [
        (date(2024, 12, 31), ("2024", "12")),
        (date(2025, 1, 1), ("2025", "01")),
        (date(2025, 10, 9), ("2025", "10")),
    ],
)
def test_year_and_month_come_from_today(today, expected):
    assert render_for("[year]/[month]", today=today) == expected


@pytest.mark.parametrize(
    ("category", "expected"),
    [("purchase", "purchases"), ("sales", "sales"), ("report", "cod")],
)
def test_invoice_type_per_category(category, expected):
    assert render_for("x/[invoice_type]/", category=category) == ("x", expected)


def test_unknown_category_is_a_programming_error():
    with pytest.raises(ValueError, match="category"):
        render_for("[invoice_type]", category="memo")


def test_documented_example():
    parts = render_for("Invoice_import/[uen_number]/[invoice_type]/[year]/")
    assert parts == ("Invoice_import", "0123456749", "purchases", "2025")
    assert join(parts) == "Invoice_import/0123456749/purchases/2025/"


def test_literal_text_around_variables_in_one_folder():
    assert render_for("[company_name]_[vat_number]/AP") == (
        "Bakkerij Peeters BV_BE0123456749",
        "AP",
    )


def test_format_syntax_in_a_template_is_literal_text():
    assert render_for("{name}/%(name)s/%s/{0}") == ("{name}", "%(name)s", "%s", "{0}")


# --- validation -----------------------------------------------------------------------------


def test_default_template_is_valid_and_unchanged():
    assert DEFAULT_TEMPLATE == "Invoice_import/"
    assert validate_template(DEFAULT_TEMPLATE) == "Invoice_import/"
    assert render_for(DEFAULT_TEMPLATE) == ("Invoice_import",)


@pytest.mark.parametrize("template", ["", "   ", ".", "./", " . / ", "././/"])
def test_empty_template_is_the_base(template):
    assert validate_template(template) == ""
    assert render_for(template) == ()
    assert preview(template) == ""


@pytest.mark.parametrize(
    ("template", "normalized"),
    [
        ("  Invoice_import  ", "Invoice_import/"),
        ("a//b///", "a/b/"),
        ("./a/./b", "a/b/"),
        ("[YEAR]/[Month]", "[year]/[month]/"),
        ("[ Invoice_Type ]/x", "[invoice_type]/x/"),
        ("Invoice import / [year] /", "Invoice import/[year]/"),
    ],
)
def test_normalization(template, normalized):
    assert validate_template(template) == normalized
    assert validate_template(normalized) == normalized
    assert render_for(template) == render_for(normalized)


def test_variables_are_case_insensitive():
    assert render_for("[YEAR]/[Invoice_Type]/[UEN_NUMBER]") == ("2025", "purchases", "0123456749")


@pytest.mark.parametrize(
    ("template", "unknown"),
    [
        ("[client]", "client"),
        ("a/[years]/b", "years"),
        ("[year]/[uen]", "uen"),
        ("[]", ""),
        ("[a/b]", "a/b"),
    ],
)
def test_unknown_variable_lists_the_known_ones(template, unknown):
    with pytest.raises(ValidationError) as caught:
        validate_template(template)
    assert caught.value.code == "unknown_variable"
    message = caught.value.messages[0]
    assert f"[{unknown}]" in message
    for name in KNOWN_VARIABLES:
        assert f"[{name}]" in message


@pytest.mark.parametrize("template", ["[year", "year]", "a/[year]]", "[[year]]", "[ye[ar]", "]["])
def test_unbalanced_brackets(template):
    with pytest.raises(ValidationError) as caught:
        validate_template(template)
    assert caught.value.code == "brackets"
    assert "[" in caught.value.messages[0] and "]" in caught.value.messages[0]


@pytest.mark.parametrize(
    ("template", "code", "says"),
    [
        ("../x", "parent", ".."),
        ("a/../../b", "parent", ".."),
        ("a/..", "parent", ".."),
        ("a/ .. /b", "parent", ".."),
        ("a/.../b", "parent", ".."),
        ("[year]/../[year]", "parent", ".."),
        ("/etc", "absolute", "relative"),
        ("  /etc/passwd", "absolute", "relative"),
        ("//srv/share", "absolute", "relative"),
        ("C:\\x", "absolute", "C:"),
        ("c:x", "absolute", "c:"),
        ("C:/x", "absolute", "C:"),
        ("\\\\srv\\share", "absolute", "relative"),
        ("\\x", "absolute", "relative"),
        ("a\\b", "backslash", "/"),
        ("a\\..\\..\\b", "backslash", "/"),
        ("a\x00b", "control", "NUL"),
        ("a\nb", "control", "control"),
        ("a/\rb", "control", "control"),
        ("a\tb", "control", "control"),
        ("a\x7fb", "control", "control"),
        ("a\u202eb", "control", "control"),
        ("a\u2028b", "control", "control"),
    ],
)
def test_template_traversal_attempts_are_refused(template, code, says):
    with pytest.raises(ValidationError) as caught:
        validate_template(template)
    assert caught.value.code == code
    assert says in caught.value.messages[0]
    with pytest.raises(ValidationError):
        render_for(template)
    with pytest.raises(ValidationError):
        preview(template)


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("%2e%2e/", ("%2e%2e",)),
        ("%2e%2e%2f%2e%2e/x", ("%2e%2e%2f%2e%2e", "x")),
        ("a..b/c", ("a.b", "c")),
        ("..a/b..", ("a", "b")),
        ("~/x", ("~", "x")),
        ("x/a:b/<c>", ("x", "a_b", "_c_")),
    ],
)
def test_harmless_literals_render_inside_the_base(template, expected):
    validate_template(template)
    parts = render_for(template)
    assert parts == expected
    assert_safe(parts)


# --- values ---------------------------------------------------------------------------------

HOSTILE_VALUES = [
    "../../etc/passwd",
    "..",
    "...",
    ".",
    "/",
    "/etc/passwd",
    "A/B ../../etc",
    "a\\b\\..\\..\\c",
    "\\\\srv\\share",
    "C:\\Windows",
    "a\x00b",
    "line\nbreak\r\n",
    "tab\there",
    "\x1b[31mred",
    "\u202eevil",
    "a\u2028b",
    'a<b>c:d"e|f?g*h',
    " .hidden. ",
    "x" * 500,
    "é" * 500,
    "日本語" * 100,
    "%2e%2e%2f",
    "[year]",
    "{0}%(name)s%s",
]


@pytest.mark.parametrize("value", HOSTILE_VALUES)
@pytest.mark.parametrize("field", ["external_id", "name", "vat_number", "enterprise_number"])
def test_hostile_values_stay_inside_the_base(field, value):
    parts = render_for(ALL_VARIABLES + "end", **{field: value})
    assert_safe(parts)
    assert parts[-1] == "end"
    assert len(parts) <= len(KNOWN_VARIABLES) + 1
    variable = {"name": "company_name", "enterprise_number": "uen_number"}.get(field, field)
    alone = render_for(f"base/[{variable}]", **{field: value})
    assert_safe(alone)
    assert alone[0] == "base" and len(alone) <= 2


def test_company_name_with_separators_becomes_one_folder():
    parts = render_for("Invoice_import/[company_name]/", name="A/B ../../etc")
    assert_safe(parts)
    assert len(parts) == 2
    assert parts[0] == "Invoice_import"
    assert "A" in parts[1] and "B" in parts[1] and "etc" in parts[1]


def test_external_id_traversal_is_one_folder():
    parts = render_for("[external_id]/x", external_id="../../etc/passwd")
    assert_safe(parts)
    assert len(parts) == 2 and parts[1] == "x"


def test_windows_forbidden_and_control_characters_are_replaced():
    assert render_for("[company_name]", name='a<b>c:d"e|f?g*h') == ("a_b_c_d_e_f_g_h",)
    assert render_for("[company_name]", name="a\x00b\nc") == ("a_b_c",)


def test_leading_and_trailing_dots_and_spaces_are_stripped():
    assert render_for("[company_name]", name="  ..Peeters BV.  ") == ("Peeters BV",)


def test_segment_is_capped_at_200_utf8_bytes_on_a_character_boundary():
    (part,) = render_for("[company_name]", name="x" * 500)
    assert part == "x" * 200
    (part,) = render_for("[company_name]", name="é" * 500)
    assert part == "é" * 100
    (part,) = render_for("[company_name]", name="a" * 199 + "é")
    assert part == "a" * 199
    (part,) = render_for("[company_name]", name="a" * 198 + "😀")
    assert part == "a" * 198


def test_empty_variable_folder_is_dropped():
    assert render_for("x/[external_id]/y", external_id="") == ("x", "y")
    assert render_for("x/[external_id]/y", external_id=None) == ("x", "y")
    assert render_for("x/[external_id]/y", external_id=" .. ") == ("x", "y")


def test_template_of_only_empty_variables_is_the_base():
    parts = render_for("[external_id]/[vat_number]/", external_id="", vat_number="")
    assert parts == ()
    assert join(parts) == ""


def test_empty_variable_next_to_literal_keeps_the_literal():
    assert render_for("CL-[external_id]", external_id="") == ("CL-",)


# --- join and preview -------------------------------------------------------------------------


def test_join_is_posix_with_a_trailing_slash():
    assert join(("Invoice_import", "0123456749", "purchases")) == (
        "Invoice_import/0123456749/purchases/"
    )
    assert join(["a"]) == "a/"
    assert join(()) == ""


def test_preview_uses_a_sample_client():
    template = "Invoice_import/[external_id]/[uen_number]/[vat_number]/[company_name]/"
    assert preview(template) == (
        "Invoice_import/CL-0001/0123456749/BE0123456749/Bakkerij Peeters BV/"
    )


def test_preview_with_a_client_category_and_date():
    client = make_client(enterprise_number="0403170701", name="Other NV")
    assert (
        preview(
            "[uen_number]/[invoice_type]/[year]-[month]",
            client=client,
            category="report",
            today=date(2024, 2, 29),
        )
        == "0403170701/cod/2024-02/"
    )


def test_preview_defaults_to_today():
    today = timezone.localdate()
    assert preview("[year]/[month]") == f"{today.year}/{today.month:02d}/"


def test_preview_raises_the_validation_error():
    with pytest.raises(ValidationError) as caught:
        preview("[client]")
    assert caught.value.code == "unknown_variable"


# --- file names --------------------------------------------------------------------------------


def test_file_name_shape():
    assert file_name(make_document()) == f"20250307_INV-2025-001_{SHA[:8]}.xml"


@pytest.mark.parametrize(
    ("category", "ext"), [("purchase", "xml"), ("sales", "xml"), ("report", "cod")]
)
def test_file_name_extension(category, ext):
    assert file_name(make_document(category=category)).endswith(f".{ext}")


def test_file_name_is_deterministic():
    document = make_document()
    first = file_name(document)
    assert file_name(document) == first
    assert file_name(make_document()) == first
    other = hashlib.sha256(b"other").hexdigest()
    assert file_name(make_document(sha256=other)) != first
    assert file_name(make_document(sha256=other)).endswith(f"_{other[:8]}.xml")


def test_file_name_ignores_the_active_time_zone():
    document = make_document(released_at=datetime(2024, 12, 31, 23, 30, tzinfo=UTC))
    with timezone.override("UTC"):
        in_utc = file_name(document)
    with timezone.override("America/New_York"):
        in_new_york = file_name(document)
    assert in_utc == in_new_york == file_name(document)


@pytest.mark.parametrize(
    ("released_at", "day"),
    [
        (datetime(2024, 12, 31, 23, 30, tzinfo=UTC), "20250101"),  # UTC+1 in winter
        (datetime(2024, 12, 31, 22, 59, tzinfo=UTC), "20241231"),
        (datetime(2025, 6, 30, 22, 30, tzinfo=UTC), "20250701"),  # UTC+2 in summer
        (datetime(2025, 6, 30, 21, 59, tzinfo=UTC), "20250630"),
    ],
)
def test_file_name_uses_the_brussels_release_date(released_at, day):
    assert file_name(make_document(released_at=released_at)).startswith(f"{day}_")


@pytest.mark.parametrize(
    ("number", "cleaned"),
    [
        ("INV 2025/001", "INV-2025-001"),
        ("F-2025--0042", "F-2025-0042"),
        ("Factuur № 5", "Factuur-5"),
        ("..hidden", "hidden"),
        ("a..b", "a.b"),
        ("../../etc/passwd", "-.-etc-passwd"),
        ("a\x00b\nc", "a-b-c"),
        ("", "document"),
        ("...", "document"),
        ("x" * 100, "x" * 80),
    ],
)
def test_file_name_number_is_cleaned(number, cleaned):
    assert file_name(make_document(number=number)) == f"20250307_{cleaned}_{SHA[:8]}.xml"


def test_file_name_is_a_safe_single_segment():
    rng = random.Random(7)
    for _ in range(200):
        number = "".join(rng.choice(PIECES) for _ in range(rng.randint(0, 20)))
        name = file_name(make_document(number=number))
        assert_safe((name,))
        assert name.startswith("20250307_") and name.endswith(f"_{SHA[:8]}.xml")


def test_unreleased_or_unhashed_document_has_no_file_name():
    with pytest.raises(ValueError, match="released"):
        file_name(make_document(released_at=None))
    with pytest.raises(ValueError, match="SHA-256"):
        file_name(make_document(sha256=""))


# --- property-style: random hostile input --------------------------------------------------------


def random_string(rng, pieces=PIECES, longest=12):
    return "".join(rng.choice(pieces) for _ in range(rng.randint(0, longest)))


def test_random_template_literals():
    rng = random.Random(20250307)
    accepted = refused = 0
    for _ in range(600):
        template = random_string(rng)
        try:
            normalized = validate_template(template)
        except ValidationError as error:
            refused += 1
            assert error.code in {"control", "absolute", "backslash", "brackets", "parent",
                                  "unknown_variable"}  # fmt: skip
            continue
        accepted += 1
        assert validate_template(normalized) == normalized
        for category in ("purchase", "sales", "report"):
            parts = render_for(template, category=category)
            assert_safe(parts)
            assert parts == render_for(normalized, category=category)
        assert_safe(render_for(template, external_id="", name="", vat_number=""))
    assert accepted >= 100 and refused >= 100, (accepted, refused)


def test_random_values():
    rng = random.Random(4242)
    for _ in range(400):
        fields = {
            "external_id": random_string(rng, longest=20),
            "name": random_string(rng, longest=80),
            "vat_number": random_string(rng, longest=6),
            "enterprise_number": random_string(rng, longest=6),
        }
        parts = render_for(ALL_VARIABLES, **fields)
        assert_safe(parts)
        assert len(parts) <= len(KNOWN_VARIABLES)
        single = render_for("[company_name]", name=fields["name"])
        assert_safe(single)
        assert len(single) <= 1
