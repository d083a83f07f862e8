"""The nl and fr catalogues: complete, compiled, in step with the code, used by the pages.

Nothing here needs GNU gettext: the .po files are read by the small reader below, the .mo
files by Python's own ``gettext`` module, and the strings of the code are found by a
deliberately simple extractor (plain literals only). It is a safety net against a
forgotten ``make messages`` or compile, not a replacement for them.
"""

import ast
import gettext
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOCALE = ROOT / "locale"
TRANSLATED = ("nl", "fr")  # English is the source language: its msgstr may stay empty
ALL_LANGUAGES = (*TRANSLATED, "en")
SOURCE_PACKAGES = ("partnerspace", "clients", "extensions", "exports")
SIGN_IN = {"nl": "Aanmelden", "fr": "Se connecter"}


# A small .po reader.


@dataclass
class Entry:
    msgid: str = ""
    msgid_plural: str | None = None
    msgctxt: str | None = None
    msgstr: dict[int, str] = field(default_factory=dict)  # plural index -> text; 0 if singular
    flags: set[str] = field(default_factory=set)
    line: int = 0

    @property
    def key(self) -> tuple[str | None, str]:
        return (self.msgctxt, self.msgid)

    @property
    def translations(self) -> list[str]:
        return [self.msgstr[i] for i in sorted(self.msgstr)]


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "a": "\a", "b": "\b"}
_KEYWORD = re.compile(r'^(msgctxt|msgid_plural|msgid|msgstr(?:\[(\d+)\])?)\s*(".*")\s*$')


def _unquote(quoted: str) -> str:
    body = quoted.strip()[1:-1]
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(1)), body)


def read_po(path: Path) -> tuple[Entry | None, list[Entry]]:
    """(header, entries) of a .po file; obsolete ``#~`` entries are left out."""
    entries: list[Entry] = []
    current = Entry()
    target: tuple[str, int | None] | None = None
    seen_msgid = False

    def flush():
        nonlocal current, target, seen_msgid
        if seen_msgid:
            entries.append(current)
        current, target, seen_msgid = Entry(), None, False

    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line:
            flush()
            continue
        if line.startswith("#"):
            if current.msgstr:  # a comment after a msgstr starts the next entry
                flush()
            if line.startswith("#,"):
                current.flags.update(f.strip() for f in line[2:].split(",") if f.strip())
            continue  # "#~" (obsolete), "#|" (previous), "#:" and "#." are not read
        match = _KEYWORD.match(line)
        if match:
            keyword, index, quoted = match.groups()
            if keyword in ("msgctxt", "msgid") and seen_msgid:
                flush()  # entries are normally separated by a blank line, but need not be
            text = _unquote(quoted)
            if keyword == "msgctxt":
                current.msgctxt = text
            elif keyword == "msgid":
                current.msgid, current.line, seen_msgid = text, number, True
            elif keyword == "msgid_plural":
                current.msgid_plural = text
            else:
                current.msgstr[int(index or 0)] = text
            target = (keyword, int(index or 0))
            continue
        if line.startswith('"') and target is not None:
            keyword, index = target
            text = _unquote(line)
            if keyword == "msgctxt":
                current.msgctxt += text
            elif keyword == "msgid":
                current.msgid += text
            elif keyword == "msgid_plural":
                current.msgid_plural += text
            else:
                current.msgstr[index] += text
            continue
        raise AssertionError(f"{path}:{number}: cannot read {raw!r}")
    flush()

    header = next((e for e in entries if e.msgid == "" and e.msgctxt is None), None)
    return header, [e for e in entries if e is not header]


def po_path(lang: str) -> Path:
    return LOCALE / lang / "LC_MESSAGES" / "django.po"


def catalogue(lang: str) -> list[Entry]:
    return read_po(po_path(lang))[1]


_PLACEHOLDER = re.compile(r"%(?:\([^)]*\))?[sd]")
_TAG = re.compile(r"</?[a-zA-Z][a-zA-Z0-9]*\b[^>]*>")


def placeholders(text: str) -> Counter:
    return Counter(_PLACEHOLDER.findall(text.replace("%%", "")))


def tags(text: str) -> Counter:
    return Counter(_TAG.findall(text))


def sources(entry: Entry) -> list[tuple[int, str]]:
    """Each msgstr index with the English it translates (plural forms take the plural)."""
    if entry.msgid_plural is None:
        return [(0, entry.msgid)]
    return [(i, entry.msgid if i == 0 else entry.msgid_plural) for i in sorted(entry.msgstr)]


# The reader itself: a tiny catalogue with every construct it must handle.


def test_po_reader_handles_multiline_context_plural_fuzzy_and_obsolete(tmp_path):
    po = tmp_path / "django.po"
    po.write_text(
        "\n".join(
            [
                'msgid ""',
                'msgstr ""',
                '"Language: nl\\n"',
                '"Plural-Forms: nplurals=2; plural=(n != 1);\\n"',
                "",
                "#: a.py:1",
                "#, python-format",
                'msgid ""',
                '"Hello %(name)s, "',
                '"welcome."',
                'msgstr ""',
                '"Hallo %(name)s, "',
                '"welkom."',
                "",
                'msgctxt "month"',
                'msgid "May"',
                'msgstr "mei"',
                "",
                "#, fuzzy",
                'msgid "%(count)d file"',
                'msgid_plural "%(count)d files"',
                'msgstr[0] "%(count)d bestand"',
                'msgstr[1] "%(count)d \\"bestanden\\""',
                "",
                '#~ msgid "Gone"',
                '#~ msgstr "Weg"',
                "",
            ]
        ),
        encoding="utf-8",
    )
    header, entries = read_po(po)
    assert "Language: nl\n" in header.msgstr[0]
    assert [e.key for e in entries] == [
        (None, "Hello %(name)s, welcome."),
        ("month", "May"),
        (None, "%(count)d file"),
    ]
    assert entries[0].translations == ["Hallo %(name)s, welkom."]
    assert entries[0].flags == {"python-format"}
    assert entries[2].msgid_plural == "%(count)d files"
    assert entries[2].translations == ["%(count)d bestand", '%(count)d "bestanden"']
    assert "fuzzy" in entries[2].flags


# Completeness and correctness of the .po files.


@pytest.mark.parametrize("lang", ALL_LANGUAGES)
def test_catalogue_header(lang):
    header, entries = read_po(po_path(lang))
    assert header is not None, f"{lang}: no header entry"
    assert "fuzzy" not in header.flags, f"{lang}: the header is still marked fuzzy"
    assert f"Language: {lang}\n" in header.msgstr[0]
    assert "Plural-Forms: nplurals=" in header.msgstr[0]
    assert len(entries) > 50, f"{lang}: suspiciously few entries ({len(entries)})"


@pytest.mark.parametrize("lang", TRANSLATED)
def test_every_entry_is_translated(lang):
    header, entries = read_po(po_path(lang))
    nplurals = int(re.search(r"nplurals=(\d+)", header.msgstr[0]).group(1))
    empty = [
        f"line {e.line}: {e.msgid!r}"
        for e in entries
        if not all(e.translations) or (e.msgid_plural is not None and len(e.msgstr) != nplurals)
    ]
    assert not empty, f"{lang}: untranslated entries:\n" + "\n".join(empty)


@pytest.mark.parametrize("lang", ALL_LANGUAGES)
def test_no_fuzzy_entries(lang):
    fuzzy = [f"line {e.line}: {e.msgid!r}" for e in catalogue(lang) if "fuzzy" in e.flags]
    assert not fuzzy, f"{lang}: fuzzy entries:\n" + "\n".join(fuzzy)


@pytest.mark.parametrize("lang", ALL_LANGUAGES)
def test_placeholders_and_tags_are_kept(lang):
    wrong = []
    for entry in catalogue(lang):
        for index, english in sources(entry):
            translated = entry.msgstr.get(index, "")
            if not translated:
                continue  # reported by test_every_entry_is_translated (or English)
            if placeholders(translated) != placeholders(english):
                wrong.append(f"line {entry.line}: placeholders differ in {translated!r}")
            if tags(translated) != tags(english):
                wrong.append(f"line {entry.line}: HTML tags differ in {translated!r}")
    assert not wrong, f"{lang}:\n" + "\n".join(wrong)


# The compiled catalogues say the same as the .po files.


def _lookup(translations: gettext.GNUTranslations, entry: Entry, index: int) -> str:
    if entry.msgid_plural is None:
        if entry.msgctxt is not None:
            return translations.pgettext(entry.msgctxt, entry.msgid)
        return translations.gettext(entry.msgid)
    n = next(n for n in range(1000) if translations.plural(n) == index)
    if entry.msgctxt is not None:
        return translations.npgettext(entry.msgctxt, entry.msgid, entry.msgid_plural, n)
    return translations.ngettext(entry.msgid, entry.msgid_plural, n)


@pytest.mark.parametrize("lang", ALL_LANGUAGES)
def test_compiled_catalogue_is_up_to_date(lang):
    mo = po_path(lang).with_suffix(".mo")
    assert mo.exists(), f"{mo} is missing: run make messages"
    with mo.open("rb") as fp:
        translations = gettext.GNUTranslations(fp)
    stale = []
    for entry in catalogue(lang):
        for index, expected in sorted(entry.msgstr.items()):
            if expected and _lookup(translations, entry, index) != expected:
                stale.append(f"{entry.msgid!r} [{index}]")
    assert not stale, f"{mo} is older than its .po (compile it):\n" + "\n".join(stale)


# The strings of the code are in the catalogues.


@dataclass(frozen=True)
class Message:
    msgid: str
    where: str
    msgctxt: str | None = None
    msgid_plural: str | None = None

    @property
    def key(self) -> tuple[str | None, str]:
        return (self.msgctxt, self.msgid)


_TEMPLATE_TRANSLATE = re.compile(
    r"""\{%\s*trans(?:late)?\s+(?:"([^"\\]*)"|'([^'\\]*)')(?P<options>[^%]*)%\}"""
)
_TEMPLATE_BLOCK = re.compile(
    r"\{%\s*blocktrans(?:late)?(?P<options>[^%]*)%\}(?P<body>.*?)"
    r"\{%\s*endblocktrans(?:late)?\s*%\}",
    re.DOTALL,
)
_TEMPLATE_VARIABLE = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_TEMPLATE_PLURAL = re.compile(r"\{%\s*plural\s*%\}")


def _line_of(text: str, position: int) -> int:
    return text.count("\n", 0, position) + 1


def _block_text(body: str, trimmed: bool) -> str | None:
    """The msgid Django makes of a blocktranslate body, or None if it is not simple."""
    if "{%" in body or "{#" in body:
        return None
    text = _TEMPLATE_VARIABLE.sub(lambda m: f"%({m.group(1)})s", body.replace("%", "%%"))
    if "{{" in text:
        return None
    if trimmed:
        text = re.sub(r"\s*\n\s*", " ", text.strip())
    return text


def template_messages() -> list[Message]:
    found = []
    for path in sorted((ROOT / "templates").rglob("*.html")):
        text = path.read_text(encoding="utf-8")
        name = path.relative_to(ROOT)
        for match in _TEMPLATE_TRANSLATE.finditer(text):
            literal = match.group(1) if match.group(1) is not None else match.group(2)
            options = match.group("options").split()
            if "%" in literal or "context" in options or "noop" in options:
                continue
            found.append(Message(literal, f"{name}:{_line_of(text, match.start())}"))
        for match in _TEMPLATE_BLOCK.finditer(text):
            options = match.group("options").split()
            if "context" in options:
                continue
            trimmed = "trimmed" in options
            parts = _TEMPLATE_PLURAL.split(match.group("body"))
            if len(parts) > 2:
                continue
            singular = _block_text(parts[0], trimmed)
            plural = _block_text(parts[1], trimmed) if len(parts) == 2 else None
            if singular is None or (len(parts) == 2 and plural is None):
                continue
            where = f"{name}:{_line_of(text, match.start())}"
            found.append(Message(singular, where, msgid_plural=plural))
    return found


_SINGULAR = {"gettext", "gettext_lazy"}
_PLURAL = {"ngettext", "ngettext_lazy"}
_CONTEXT = {"pgettext", "pgettext_lazy"}
_NOOP = {"gettext_noop"}


def _literal(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def python_messages(*, noop: bool = False) -> list[Message]:
    """Plain-literal gettext calls in the project packages (``noop``: gettext_noop ones)."""
    found = []
    for package in SOURCE_PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            names = {"_": "gettext", **{name: name for name in _SINGULAR}}
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module == "django.utils.translation":
                    for alias in node.names:
                        names[alias.asname or alias.name] = alias.name
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                func = node.func
                called = (
                    names.get(func.id)
                    if isinstance(func, ast.Name)
                    else func.attr
                    if isinstance(func, ast.Attribute)
                    else None
                )
                args = [_literal(arg) for arg in node.args]
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                if noop != (called in _NOOP):
                    continue
                if called in _SINGULAR | _NOOP and len(args) == 1 and args[0] is not None:
                    found.append(Message(args[0], where))
                elif called in _PLURAL and len(args) in (2, 3) and None not in args[:2]:
                    found.append(Message(args[0], where, msgid_plural=args[1]))
                elif called in _CONTEXT and len(args) == 2 and None not in args:
                    found.append(Message(args[1], where, msgctxt=args[0]))
    return found


def code_messages() -> list[Message]:
    return template_messages() + python_messages()


def test_extractor_finds_the_code_strings():
    """Guards the extractor: if it silently found nothing, the next test would prove nothing."""
    found = {m.msgid for m in code_messages()}
    assert len(found) > 50
    assert {"Sign in", "Enter an enterprise number.", "Partner Space"} <= found


@pytest.mark.parametrize("lang", TRANSLATED)
def test_code_strings_are_in_the_catalogue(lang):
    entries = {e.key: e for e in catalogue(lang)}
    missing = []
    for message in code_messages():
        entry = entries.get(message.key)
        if entry is None:
            missing.append(f"{message.where}: {message.msgid!r}")
        elif message.msgid_plural is not None and entry.msgid_plural != message.msgid_plural:
            missing.append(f"{message.where}: plural {message.msgid_plural!r}")
    assert not missing, f"{lang}: not in the catalogue (run make messages):\n" + "\n".join(
        sorted(set(missing))
    )


def _shadowed(lang: str) -> set[str]:
    """Singular strings whose msgid is also the singular of a plural entry.

    xgettext merges them into that one plural entry; Python's gettext only finds it
    through ngettext, so the singular gettext() call stays untranslated at runtime.
    """
    plural_only = {e.msgid for e in catalogue(lang) if e.msgid_plural is not None}
    return {
        m.msgid
        for m in code_messages()
        if m.msgid_plural is None and m.msgctxt is None and m.msgid in plural_only
    }


# None left: "client" (clients/models.py verbose_name) was swallowed by the dashboard's
# blocktranslate count until the dashboard said "Clients". A clash that cannot be fixed at
# once may be parked here; the strict test below then fails until it is.
KNOWN_SHADOWED: set[str] = set()


@pytest.mark.parametrize("lang", TRANSLATED)
def test_no_new_singular_strings_shadowed_by_plurals(lang):
    assert _shadowed(lang) <= KNOWN_SHADOWED


@pytest.mark.parametrize("lang", TRANSLATED)
def test_no_singular_strings_shadowed_by_plurals(lang):
    assert not _shadowed(lang)


@pytest.mark.parametrize("lang", TRANSLATED)
def test_noop_strings_are_in_the_catalogue(lang):
    """clients/coda.py marks its field labels with ``gettext_noop as N_``: xgettext needs
    ``--keyword=N_`` to extract them, or they drop out of the catalogue."""
    keys = {e.key for e in catalogue(lang)}
    absent = [f"{m.where}: {m.msgid!r}" for m in python_messages(noop=True) if m.key not in keys]
    assert not absent, f"{lang}: gettext_noop strings not in the catalogue:\n" + "\n".join(absent)


# The pages speak the language the browser asks for.


@pytest.mark.django_db
@pytest.mark.parametrize("lang", TRANSLATED)
def test_login_page_is_translated(client, lang):
    response = client.get("/accounts/login/", HTTP_ACCEPT_LANGUAGE=lang)
    assert response.status_code == 200
    body = response.content.decode()
    assert SIGN_IN[lang] in body
    assert "Sign in" not in body
    assert response.headers["Content-Language"] == lang
