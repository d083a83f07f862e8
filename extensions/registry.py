"""The connectors the Store offers: an explicit list, imported when first needed.

Adding a destination is one module under ``connectors/`` and one line here.
"""

from contextlib import contextmanager
from functools import cache

from django.utils.module_loading import import_string

from extensions.connectors.base import Connector

CONNECTORS = [
    "extensions.connectors.sftp.SftpConnector",
    "extensions.connectors.email.EmailConnector",
    "extensions.connectors.http.HttpConnector",
    "extensions.connectors.gdrive.GoogleDriveConnector",
    "extensions.connectors.onedrive.OneDriveConnector",
    "extensions.connectors.dropbox.DropboxConnector",
    "extensions.connectors.exact.ExactConnector",
    "extensions.connectors.yuki.YukiConnector",
    "extensions.connectors.octopus.OctopusConnector",
    "extensions.connectors.onea.OneaConnector",
    "extensions.connectors.pingwin.PingWinConnector",
    "extensions.connectors.counte.CounteConnector",
    "extensions.connectors.wings.WingsConnector",
    "extensions.connectors.bocount.BocountConnector",
    "extensions.connectors.lyanthe.LyantheConnector",
    "extensions.connectors.zenvoices.ZenvoicesConnector",
]


@cache
def connectors() -> dict[str, type[Connector]]:
    loaded = {}
    for path in CONNECTORS:
        connector = import_string(path)
        if connector.key in loaded:
            raise ValueError(f"two connectors share the key {connector.key!r}")
        loaded[connector.key] = connector
    return loaded


def get(key: str) -> type[Connector] | None:
    return connectors().get(key)


@contextmanager
def registered(connector: type[Connector]):
    """Offer ``connector`` while the block runs (a test's own destination), then forget it."""
    loaded = connectors()
    if connector.key in loaded:
        raise ValueError(f"two connectors share the key {connector.key!r}")
    loaded[connector.key] = connector
    try:
        yield connector
    finally:
        del loaded[connector.key]
