"""Signals the exports app listens to, so extensions never imports it."""

from django.dispatch import Signal

# Sent with ``installation`` when it may send again (switched on, reconfigured, key
# accepted): whatever waited for it should go out now.
installation_ready = Signal()
