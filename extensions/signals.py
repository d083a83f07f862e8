"""Signals the exports app listens to, so extensions never imports it."""

from django.dispatch import Signal

# Sent with ``installation`` when it, or one of its integrations, may send again
# (switched on, reconfigured, key accepted, a client's settings corrected): whatever
# waited for it should go out now.
installation_ready = Signal()
