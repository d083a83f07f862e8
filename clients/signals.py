"""Signals other apps hook into without clients importing them."""

from django.dispatch import Signal

# Sent inside the release transaction with ``document``: receivers that need the commit
# (enqueueing work) register ``transaction.on_commit`` themselves.
document_released = Signal()
