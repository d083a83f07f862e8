"""What several browser tests share: an SFTP installation on a real server, the portal's
words in a language, the top bar's language menu."""

from functools import partial

from django.utils import translation
from playwright.sync_api import expect

from tests.peers.sftp import sftp_installation as shared_sftp_installation

UPLOAD_PATH = "Invoice_import/[external_id]/[invoice_type]"
sftp_installation = partial(
    shared_sftp_installation, name="Lambert server", upload_path=UPLOAD_PATH
)


def column(table, header: str) -> int:
    """The index of the column headed ``header`` in a table locator."""
    headers = [text.strip() for text in table.locator("thead th").all_inner_texts()]
    return headers.index(header)


def translated(language: str, text: str) -> str:
    """``text`` as the portal shows it in ``language``."""
    with translation.override(language):
        return translation.gettext(text)


def switch_language(page, code: str) -> None:
    """The language menu of the top bar, as a person uses it."""
    with page.expect_navigation():
        page.locator("#language").select_option(code)
    expect(page.locator("html")).to_have_attribute("lang", code)
