"""Credentials a connector can refresh and save, the same way from a worker or a request.

OAuth access tokens expire; several workers (and a person's *Test connection*) may find an
expired token at the same moment, and some providers rotate the refresh token on every
use, invalidating the old one. So a refresh happens under a lock on the row that owns the
secrets: the row is read again, the refresh runs only if it is still needed (another worker
may have done it), and only the secrets are written, so nothing else of the row, and no
secret the caller did not change, is overwritten.

The owner is an installation, or an integration for connectors whose credentials are per
client (``client_secrets``).
"""

from collections.abc import Callable, Iterable, Mapping
from contextlib import contextmanager

from django.db import transaction


class Credentials:
    """The secrets of one row, read and refreshed under that row's lock."""

    def __init__(self, owner, field: str = "secrets"):
        self.owner = owner
        self.field = field

    @property
    def secrets(self) -> dict:
        return dict(getattr(self.owner, self.field) or {})

    def refresh(
        self,
        needed: Callable[[Mapping], bool],
        renew: Callable[[Mapping], Mapping],
    ) -> dict:
        """The current secrets, renewed first when ``needed(secrets)`` still holds under
        the lock; ``renew(secrets)`` returns the secrets that change (e.g. the new access
        token, its expiry, the newest refresh token). An error from ``renew`` saves nothing."""
        return self._change(needed, lambda current: {**current, **renew(current)})

    def save(self, changed: Mapping, dropped: Iterable[str] = ()) -> dict:
        """Store ``changed`` secrets and forget ``dropped`` ones, over the row's current
        secrets (under its lock): what someone else renewed meanwhile stays."""
        dropped = set(dropped)

        def apply(current):
            kept = {name: value for name, value in current.items() if name not in dropped}
            return {**kept, **changed}

        return self._change(lambda secrets: True, apply)

    @contextmanager
    def locked(self):
        """Hold the owner row's lock while the block runs: a step that must happen once per
        destination (creating a folder another worker may be creating) looks again, then
        acts, inside it."""
        if self.owner.pk is None:  # a set-up being checked: no row yet, no one else
            yield
            return
        model = type(self.owner)
        with transaction.atomic():
            model.objects.select_for_update().only("pk").get(pk=self.owner.pk)
            yield

    def _change(self, needed, change) -> dict:
        if self.owner.pk is None:
            # A set-up being checked has no row yet: the change stays on the object and is
            # saved with it.
            current = self.secrets
            if needed(current):
                current = change(current)
                setattr(self.owner, self.field, current)
            return dict(current)
        model = type(self.owner)
        with transaction.atomic():
            row = model.objects.select_for_update().only("pk", self.field).get(pk=self.owner.pk)
            current = dict(getattr(row, self.field) or {})
            if needed(current):
                current = change(current)
                setattr(row, self.field, current)
                row.save(update_fields=[self.field])
        setattr(self.owner, self.field, current)
        return dict(current)
