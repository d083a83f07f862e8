"""Upload path templates and export file names.

A firm types a folder template such as ``Invoice_import/[uen_number]/[invoice_type]/[year]/``
once per installation; it is rendered per document into folder *parts* that a connector
joins in its own way. Two promises:

* a rendered path never leaves the destination's base folder, whatever a template or a
  client's data contains: templates are parsed (never ``str.format`` or ``%``) and checked,
  and every rendered segment is cleaned, so a value can neither add a separator nor be
  ``..``;
* the file name of a document is the same on every attempt, so a retried delivery
  overwrites (or is recognised as) the first one instead of making a second file.

Choices:

* Variable names are matched case-insensitively and with surrounding spaces ignored
  (``[YEAR]``, ``[ Year ]``); the normalized template spells them in lower case.
* A segment that renders empty (``[external_id]`` of a client without one) is dropped
  rather than refused: the file still arrives, one folder higher. A template made only of
  empty variables renders to ``()``, the base folder.
* ``%2e%2e`` is an ordinary literal (SFTP does not decode it). Connectors that put the
  parts in a URL must percent-encode each part (``quote(part, safe="")``).
* A connector whose destination has a file system root (SFTP) may accept a leading ``/``
  (``rooted=True``): the path then starts at the server's root instead of the login
  folder, and the rendered parts start with ``ROOT``. Every other rule still applies.
* No imports of models, so forms on the ``extensions`` side can use this module.
"""

import posixpath
import re
import unicodedata
from datetime import date
from types import SimpleNamespace
from zoneinfo import ZoneInfo

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

DEFAULT_TEMPLATE = "Invoice_import/"
ROOT = "/"  # first rendered part of a rooted template: the server's root

KNOWN_VARIABLES = (
    "external_id",
    "uen_number",
    "invoice_type",
    "year",
    "month",
    "company_name",
    "vat_number",
)

# Document.category -> [invoice_type]; plain strings to keep this module free of models.
INVOICE_TYPES = {"purchase": "purchases", "sales": "sales", "report": "cod"}

MAX_SEGMENT_BYTES = 200
MAX_NUMBER_CHARS = 80
BRUSSELS = ZoneInfo("Europe/Brussels")

SAMPLE_CLIENT = SimpleNamespace(
    external_id="CL-0001",
    enterprise_number="0123456749",
    vat_number="BE0123456749",
    name="Bakkerij Peeters BV",
)

# Every character is one of: a [variable], a run of literal text, or a stray bracket.
_TOKEN = re.compile(r"\[(?P<var>[^\[\]]*)\]|(?P<lit>[^\[\]]+)|(?P<bad>[\[\]])")
_WINDOWS_FORBIDDEN = frozenset('<>:"|?*')
_DOT_RUNS = re.compile(r"\.{2,}")
_EDGES = re.compile(r"^[\s.]+|[\s.]+$")
_DRIVE = re.compile(r"^[A-Za-z]:")
_NUMBER_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _is_control(char: str) -> bool:
    """Unicode "other" (control, format, surrogate, private, unassigned) or line breaks."""
    category = unicodedata.category(char)
    return category[0] == "C" or category in ("Zl", "Zp")


def _error(message, code, **params):
    return ValidationError(message, code=code, params=params or None)


def is_rooted(template: str) -> bool:
    """A template starting at the server's root (one leading ``/``)."""
    template = (template or "").strip()
    return template.startswith("/") and not template.startswith("//")


def _parse(template: str, rooted: bool = False) -> list[list[tuple[str, str]]]:
    """Split a template into segments of ``("lit", text)`` / ``("var", name)`` tokens.

    Raises ValidationError saying what is wrong. Empty and ``.`` segments are left out.
    With ``rooted``, one leading ``/`` is allowed (the caller keeps track of it).
    """
    template = (template or "").strip()
    if rooted and is_rooted(template):
        template = template[1:]
    if any(_is_control(char) for char in template):
        raise _error(
            _("The path contains a control character (such as NUL or a line break)."),
            "control",
        )
    if template.startswith(("/", "\\")) or _DRIVE.match(template):
        raise _error(
            _(
                "The path must be relative to the destination folder: remove the "
                "leading %(start)s."
            ),
            "absolute",
            start=template[:2] if _DRIVE.match(template) else template[0],
        )
    if "\\" in template:
        raise _error(_("Use / to separate folders, not \\."), "backslash")

    segments, current = [], []
    for match in _TOKEN.finditer(template):
        if match["bad"]:
            raise _error(
                _("The brackets do not match: every [ needs a closing ] around a variable."),
                "brackets",
            )
        if match["var"] is not None:
            name = match["var"].strip().lower()
            if name not in KNOWN_VARIABLES:
                raise _error(
                    _("Unknown variable [%(variable)s]. Known variables: %(known)s."),
                    "unknown_variable",
                    variable=match["var"],
                    known=", ".join(f"[{known}]" for known in KNOWN_VARIABLES),
                )
            current.append(("var", name))
            continue
        pieces = match["lit"].split("/")
        for index, piece in enumerate(pieces):
            if index:
                segments.append(current)
                current = []
            if piece:
                current.append(("lit", piece))
    segments.append(current)

    kept = []
    for segment in segments:
        if all(kind == "lit" for kind, _text in segment):
            text = "".join(text for _kind, text in segment)
            if re.fullmatch(r"[\s.]*", text):
                if ".." in text:
                    raise _error(
                        _(
                            "The path cannot contain a folder made of dots such as “..”: "
                            "it would leave the base folder."
                        ),
                        "parent",
                    )
                continue  # "", "." or blanks: nothing to create
        kept.append(segment)
    return kept


def validate_template(template: str, *, rooted: bool = False) -> str:
    """Return the normalized template (``a/[year]/``; ``""`` is the base; ``/a/`` from
    the root when ``rooted`` allows it) or raise."""
    segments = _parse(template, rooted)
    parts = [
        "".join(text if kind == "lit" else f"[{text}]" for kind, text in segment).strip()
        for segment in segments
    ]
    start = ROOT if rooted and is_rooted(template) else ""
    return start + "".join(f"{part}/" for part in parts)


def clean_segment(text: str) -> str:
    """One safe folder name: no separator, control or Windows-forbidden character, no ``..``.

    Dot runs collapse to one dot, leading/trailing dots and blanks go, and the result fits
    in MAX_SEGMENT_BYTES of UTF-8. May return ``""``.
    """
    text = "".join(
        "_" if char in "/\\" or char in _WINDOWS_FORBIDDEN or _is_control(char) else char
        for char in text
    )
    text = _EDGES.sub("", _DOT_RUNS.sub(".", text))
    encoded = text.encode("utf-8")
    if len(encoded) > MAX_SEGMENT_BYTES:
        text = _EDGES.sub("", encoded[:MAX_SEGMENT_BYTES].decode("utf-8", "ignore"))
    return text


def _values(client, category: str, today: date) -> dict[str, str]:
    try:
        invoice_type = INVOICE_TYPES[category]
    except KeyError:
        raise ValueError(f"unknown document category {category!r}") from None
    return {
        "external_id": client.external_id or "",
        "uen_number": client.enterprise_number or "",
        "invoice_type": invoice_type,
        "year": f"{today.year:04d}",
        "month": f"{today.month:02d}",
        "company_name": client.name or "",
        "vat_number": client.vat_number or "",
    }


def render(
    template: str, *, client, category: str, today: date, rooted: bool = False
) -> tuple[str, ...]:
    """The folder parts for one client's document, relative to the destination's base
    (or starting with ``ROOT`` for a rooted template, when ``rooted`` allows one).

    ``today`` is the export date (``[year]``/``[month]``). Raises ValidationError for a bad
    template. Segments that clean to nothing are dropped.
    """
    values = _values(client, category, today)
    parts = [ROOT] if rooted and is_rooted(template) else []
    for segment in _parse(template, rooted):
        part = clean_segment(
            "".join(text if kind == "lit" else values[text] for kind, text in segment)
        )
        if part:
            parts.append(part)
    return tuple(parts)


def join(parts) -> str:
    """POSIX path for display, with a trailing slash; ``""`` for the base itself, ``/``
    for the root."""
    return posixpath.join(*parts, "") if parts else ""


def file_name(document) -> str:
    """``<released YYYYMMDD>_<number>_<sha256[:8]>.<ext>``: the same on every attempt.

    The date is the release date in Brussels, not the attempt time.
    """
    if document.released_at is None:
        raise ValueError("only a released document has an export file name")
    digest = (document.sha256 or "").lower()[:8]
    if not re.fullmatch(r"[0-9a-f]{8}", digest):
        raise ValueError("the document has no SHA-256")
    released = timezone.localtime(document.released_at, BRUSSELS).strftime("%Y%m%d")
    number = _NUMBER_UNSAFE.sub("-", document.number or "")
    number = re.sub(r"-{2,}", "-", _DOT_RUNS.sub(".", number))
    number = number.lstrip(".")[:MAX_NUMBER_CHARS] or "document"
    extension = "cod" if document.category == "report" else "xml"
    return f"{released}_{number}_{digest}.{extension}"


def preview(template: str, *, client=None, category="purchase", today=None, rooted=False) -> str:
    """The resolved path shown next to the template field (a sample client if none)."""
    return join(
        render(
            template,
            client=client or SAMPLE_CLIENT,
            category=category,
            today=today or timezone.localdate(),
            rooted=rooted,
        )
    )


def where(resolved: str, *, rooted: bool = False) -> str:
    """The preview as a sentence saying where the path starts."""
    if rooted and resolved.startswith(ROOT):
        return _("From the server's root: %(path)s") % {"path": resolved}
    return _("In the login folder: %(path)s") % {"path": "./" + resolved}


class PathTemplateInput(forms.TextInput):
    """A path template field; pages with JavaScript show the resolved path as one types.

    ``rooted``: a leading ``/`` means the server's root. ``inherit``: the template used
    when the field is left empty, previewed instead of an empty path.
    """

    def __init__(self, category: str = "purchase", attrs=None, *, rooted=False):
        extra = {"data-path-rooted": "1"} if rooted else {}
        super().__init__(
            {"data-path-preview": category, "spellcheck": "false", **extra, **(attrs or {})}
        )
