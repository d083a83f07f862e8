"""The official Peppol BIS 3.0 example invoices, when the environment provides them.

They are not part of this repository. Point ``PEPPOL_EXAMPLES_DIR`` at a folder holding
them (``base-example.xml``, ``base-creditnote-correction.xml``, ``Allowance-example.xml``,
…) and the tests that read them run; without it those tests are skipped with the reason.
With ``REQUIRE_PEPPOL_EXAMPLES=1`` (CI sets it in ``.ci/run``) a missing folder fails them
instead, so a run cannot silently leave them out.

Every other test builds its invoices with ``clients.demo.invoice_xml``.

Loaded as a plugin from ``tests/conftest.py``: tests ask for the ``peppol_examples``
fixture (the folder, a ``Path``); parametrized tests take ``example_files()``.
"""

import os
from pathlib import Path

import pytest

ENV = "PEPPOL_EXAMPLES_DIR"
REQUIRE_ENV = "REQUIRE_PEPPOL_EXAMPLES"
PLACEHOLDER = "no-official-examples"  # the one parameter when there are no files


def folder() -> Path | None:
    """The folder named by ``PEPPOL_EXAMPLES_DIR`` when it holds XML files, else None."""
    value = os.environ.get(ENV, "").strip()
    if not value:
        return None
    path = Path(value)
    return path if path.is_dir() and any(path.glob("*.xml")) else None


def missing_reason() -> str:
    value = os.environ.get(ENV, "").strip()
    if not value:
        return (
            f"{ENV} is not set: the official Peppol BIS 3.0 examples are not part of "
            "this repository"
        )
    return f"{ENV}={value} holds no official Peppol BIS 3.0 examples (*.xml)"


def required() -> bool:
    return os.environ.get(REQUIRE_ENV, "").strip() not in ("", "0")


def example_files() -> list[Path | str]:
    """The example files, sorted, for ``parametrize``; one placeholder when there are none
    (the ``peppol_examples`` fixture then skips or fails the test before it is used)."""
    path = folder()
    return sorted(path.glob("*.xml")) if path else [PLACEHOLDER]


def file_id(value) -> str:
    return value.name if isinstance(value, Path) else str(value)


@pytest.fixture
def peppol_examples() -> Path:
    """The folder of official examples; skips the test without it, or fails it when
    ``REQUIRE_PEPPOL_EXAMPLES=1``."""
    path = folder()
    if path is None:
        reason = missing_reason()
        if required():
            pytest.fail(f"{REQUIRE_ENV}=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    return path
