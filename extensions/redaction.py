"""What a destination says, made safe to show: its stored secrets removed, HTML reduced.

A server's answer (an HTTP error body, an SMTP reply, an SSH or SFTP message) ends up in
``last_error``, on the Integrations tab and in the Manage page. A receiver may echo what it
was sent, so every form a secret travels in is removed, not only the plain one:

* the secret as is, percent-encoded (``quote``, ``quote_plus``, upper- or lower-case hex,
  ``+`` for a space), JSON-escaped (``\\u00e9``, ``\\"``, ``\\/``) or HTML-escaped, in any
  mix, since every character of the secret may appear in any of those forms;
* base64 (standard and URL-safe, padded or not) of the secret alone, of ``user:secret``
  (an HTTP ``Basic`` header) and of ``\\0user\\0secret`` (SASL ``PLAIN``, as in SMTP
  ``AUTH``). ``Bearer <token>`` is covered by the token itself.

A secret shorter than ``SHORT_SECRET`` characters is still removed, but only where it
stands alone (not flanked by a letter or digit): a one-letter password would otherwise
turn "Bad request" into "B***d r***qu***st", which is unreadable and tells the reader
where the letter stood. The same rule applies to each encoded form by its own length.
"""

from __future__ import annotations

import base64
import html
import json
import re
import unicodedata
from collections.abc import Iterable
from functools import cached_property
from html.parser import HTMLParser
from urllib.parse import quote

MASK = "***"
SHORT_SECRET = 6
DEFAULT_LIMIT = 200
# Never percent-encoded, JSON-escaped or HTML-escaped by anyone: matched literally.
_PLAIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.~")
_MARKUP_START = re.compile(r"\A[\s\ufeff]*<(?:!doctype\s+html|html|\?xml|head|body)\b", re.I)
_PADDING = r"(?:=|(?i:%3d|\\u003d))*"  # base64's, written as is, percent- or JSON-escaped
_SENTENCE_END = re.compile(r"(?<=[.!?])\s")
_BLOCKS = frozenset(
    {"address", "article", "aside", "blockquote", "body", "br", "center", "dd", "div", "dl"}
    | {"dt", "footer", "form", "h1", "h2", "h3", "h4", "h5", "h6", "header", "hr", "li"}
    | {"main", "nav", "ol", "p", "pre", "section", "table", "td", "th", "title", "tr", "ul"}
)
# Inside a word as often as not; any other tag (XML's too) separates words.
_INLINE = frozenset(
    {"a", "abbr", "b", "bdi", "bdo", "cite", "code", "data", "dfn", "em", "font", "i", "kbd"}
    | {"mark", "q", "s", "samp", "small", "span", "strong", "sub", "sup", "time", "u", "var"}
    | {"wbr"}
)
# Not "head": pages often leave it open, and its only text is the title, kept apart.
_HIDDEN = frozenset({"script", "style", "noscript", "template", "svg"})


def _char_pattern(char: str) -> str:
    """Every way one character of a secret may be written in an echoed text."""
    if char in _PLAIN:
        return re.escape(char)
    forms = {re.escape(char)}
    encoded = quote(char, safe="")
    forms.add("(?i:" + re.escape(encoded) + ")")  # %c3%a9 as well as %C3%A9
    if char == " ":
        forms.add(r"\+")
    escaped = json.dumps(char)[1:-1]
    if escaped != char:
        forms.add("(?i:" + re.escape(escaped) + ")")  # \u00e9 as well as \u00E9
    if char == "/":
        forms.add(r"\\/")
    entity = html.escape(char)
    if entity != char:
        forms.add(re.escape(entity))
    return forms.pop() if len(forms) == 1 else "(?:" + "|".join(sorted(forms)) + ")"


def _base64_forms(value: str) -> set[str]:
    encoded = base64.b64encode(value.encode()).decode().rstrip("=")
    return {encoded, encoded.replace("+", "-").replace("/", "_")}


class Redactor:
    """Removes one destination's secrets from what the destination said.

    ``secrets`` are its stored secret values (blank ones are ignored); ``user`` is the
    user name sent together with them, for the forms that pack both.
    """

    def __init__(self, secrets: Iterable[object], *, user: str = ""):
        self.secrets = tuple(
            dict.fromkeys(value for value in secrets if isinstance(value, str) and value)
        )
        self.user = user or ""

    @cached_property
    def _pattern(self) -> re.Pattern | None:
        forms: dict[str, str] = {}  # value -> what may follow it (base64's padding)
        for secret in self.secrets:
            forms[secret] = ""
            for packed in (secret, f"{self.user}:{secret}", f"\0{self.user}\0{secret}"):
                forms.update(dict.fromkeys(_base64_forms(packed), _PADDING))
        forms.pop("", None)
        branches = []
        for value in sorted(forms, key=len, reverse=True):  # the longest form first
            pattern = "".join(_char_pattern(char) for char in value) + forms[value]
            if len(value) < SHORT_SECRET:
                pattern = rf"(?<![^\W_])(?:{pattern})(?![^\W_])"
            branches.append(pattern)
        return re.compile("|".join(branches)) if branches else None

    def redact(self, text: str) -> str:
        """``text`` with every form of every secret replaced by ``***``; nothing else."""
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(MASK, text)

    def one_line(
        self, said: bytes | str | None, *, content_type: str = "", limit: int = DEFAULT_LIMIT
    ) -> str:
        """What a server said as one line of plain text, at most ``limit`` characters.

        HTML (by its content type or its first tag) becomes the first sentence of its
        visible text: no tags, scripts or styles, entities decoded. Secrets are removed
        before and after that, so neither markup nor entities can hide one.
        """
        if isinstance(said, bytes):
            said = said.decode("utf-8", "replace")
        text = self.redact(str(said or ""))
        if _is_markup(text, content_type):
            text = self.redact(first_sentence(html_text(text), limit))
        text = "".join(" " if unicodedata.category(char)[0] == "C" else char for char in text)
        return re.sub(r"\s+", " ", text).strip()[:limit]


def _is_markup(text: str, content_type: str) -> bool:
    kind = (content_type or "").split(";")[0].strip().lower()
    return kind in ("text/html", "application/xhtml+xml") or bool(_MARKUP_START.match(text))


class _TextOf(HTMLParser):
    """Collects the visible text of a page, one entry per block (paragraph, heading…)."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.blocks: list[str] = [""]
        self.title = ""
        self._hidden: list[str] = []
        self._in_title = False

    def handle_starttag(self, tag, attrs):
        if tag in _HIDDEN:
            self._hidden.append(tag)
        if tag == "title" and not self._hidden:
            self._in_title = True
        self._separate(tag)

    def handle_startendtag(self, tag, attrs):
        self._separate(tag)

    def handle_endtag(self, tag):
        if tag in self._hidden:
            while self._hidden and self._hidden.pop() != tag:
                pass
        if tag == "title":
            self._in_title = False
        self._separate(tag)

    def _separate(self, tag):
        if tag in _BLOCKS:
            self.blocks.append("")
        elif tag not in _INLINE:
            self.blocks[-1] += " "

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        elif not self._hidden:
            self.blocks[-1] += data


def html_text(markup: str) -> list[str]:
    """The visible text blocks of a page; its title when the page shows nothing else."""
    parser = _TextOf()
    parser.feed(markup)
    parser.close()
    blocks = [" ".join(block.split()) for block in parser.blocks]
    blocks = [block for block in blocks if block]
    title = " ".join(parser.title.split())
    return blocks or ([title] if title else [])


def first_sentence(blocks: list[str], limit: int = DEFAULT_LIMIT) -> str:
    """The first block up to its first full stop, cut at a word within ``limit``."""
    if not blocks:
        return ""
    text = _SENTENCE_END.split(blocks[0], maxsplit=1)[0]
    if len(text) > limit:
        text = text[: limit - 1].rsplit(" ", 1)[0] + "…"
    return text
