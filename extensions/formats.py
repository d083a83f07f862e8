"""Output formats: what a document becomes on its way out, decided in one place.

A connector declares the format keys it offers (``Connector.formats``, the first is the
default); the installation's choice is ``settings["format"]``. The export engine asks
:func:`export` for a document's bytes, content type and file name, so the original kept in
the portal is never altered and no connector renders anything itself. Adding a format is
one :class:`Format` in ``FORMATS`` and its render function.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.utils.translation import gettext_lazy as _

from extensions import paths
from extensions.connectors.base import PEPPOL_BIS3, PURCHASE, SALES

SETTING = "format"
# Before formats were shared the SFTP form stored its own key; it only ever held PEPPOL_BIS3.
LEGACY_SETTING = "output_format"


@dataclass(frozen=True)
class Rendered:
    """A document as it travels: its bytes, their content type, the file name's extension."""

    content: bytes
    content_type: str
    extension: str


@dataclass(frozen=True)
class Format:
    """``render(content, document)`` applies to ``categories``; any other document (a CODA
    transaction report) travels as its original."""

    key: str
    label: Any  # lazy, so it is in the language of the page
    categories: frozenset[str]
    render: Callable[[bytes, Any], Rendered]


def _original_ubl(content: bytes, document) -> Rendered:
    """The Peppol BIS 3.0 UBL the portal received, byte for byte."""
    return Rendered(content, document.content_type, "xml")


FORMATS: dict[str, Format] = {
    format_.key: format_
    for format_ in (
        Format(
            PEPPOL_BIS3,
            _("Peppol BIS 3.0 UBL (original, unchanged)"),
            frozenset({PURCHASE, SALES}),
            _original_ubl,
        ),
    )
}


@dataclass(frozen=True)
class Output:
    """What ``exports.engine.build_file`` puts in the :class:`ExportFile`."""

    content: bytes
    content_type: str
    filename: str


def label(key: str):
    """What a person reads for the format ``key``."""
    format_ = FORMATS.get(key)
    return format_.label if format_ is not None else key


def chosen(connector, settings: Mapping[str, Any]) -> str:
    """The installation's format: the stored choice when the connector still offers it,
    else the connector's default."""
    key = (settings or {}).get(SETTING) or (settings or {}).get(LEGACY_SETTING)
    return key if key in connector.formats and key in FORMATS else connector.formats[0]


def store(connector, settings: Mapping[str, Any], key: str | None) -> dict:
    """``settings`` holding the format under the one generic key, the legacy key gone."""
    stored = {k: v for k, v in settings.items() if k != LEGACY_SETTING}
    stored[SETTING] = key if key in connector.formats else chosen(connector, settings)
    return stored


def export(key: str, content: bytes, document) -> Output:
    """The document in format ``key``; the file name keeps its stable stem
    (``paths.file_name``) and takes the format's extension."""
    name = paths.file_name(document)
    format_ = FORMATS.get(key)
    if format_ is None or document.category not in format_.categories:
        return Output(content, document.content_type, name)
    rendered = format_.render(content, document)
    stem = name.rpartition(".")[0]
    return Output(rendered.content, rendered.content_type, f"{stem}.{rendered.extension}")
