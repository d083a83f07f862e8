"""The one error intake raises: a file refused, with every reason found."""

from decimal import Decimal

from django.conf import settings
from django.utils.translation import gettext as _


class IntakeError(Exception):
    """A refused file. ``problems`` holds one human-readable message per problem."""

    def __init__(self, problems):
        if isinstance(problems, str):
            problems = [problems]
        self.problems = [str(p) for p in problems] or ["invalid file"]
        super().__init__("; ".join(self.problems))


def refuse_oversized(data: bytes, max_bytes: int | None = None) -> None:
    """Checked before any parsing, so a huge upload costs no parser memory."""
    refuse_size(len(data), max_bytes)


def refuse_size(size: int, max_bytes: int | None = None) -> None:
    """The one size check of every intake path, for a size known before reading."""
    limit = settings.INTAKE_MAX_BYTES if max_bytes is None else max_bytes
    if size > limit:
        raise IntakeError(
            _("The file is %(size)s MB, larger than the %(limit)s MB limit.")
            % {"size": _megabytes(size), "limit": _megabytes(limit)}
        )


def _megabytes(size: int) -> str:
    return format(round(Decimal(size) / (1024 * 1024), 6).normalize(), "f")
