"""The one transition that lets a document leave the portal: approve, send or publish."""

from django.db import transaction
from django.utils import timezone

from clients.models import Document
from clients.signals import document_released

INITIAL_STATUS = {
    Document.Category.PURCHASE: Document.Status.RECEIVED,
    Document.Category.SALES: Document.Status.DRAFT,
    Document.Category.REPORT: Document.Status.RECEIVED,
}
RELEASED_STATUS = {
    Document.Category.PURCHASE: Document.Status.APPROVED,
    Document.Category.SALES: Document.Status.SENT,
    Document.Category.REPORT: Document.Status.PUBLISHED,
}


def release(document: Document, *, at=None) -> bool:
    """Approve a purchase, send a sale or publish a report; False when already released.

    The row is locked so that two clicks release once; ``document_released`` is sent in
    the same transaction, so whatever a receiver plans commits or rolls back with it.
    """
    with transaction.atomic():
        locked = Document.objects.select_for_update().get(pk=document.pk)
        if locked.released_at is not None:
            document.status, document.released_at = locked.status, locked.released_at
            return False
        locked.status = RELEASED_STATUS[locked.category]
        locked.released_at = at or timezone.now()
        locked.save(update_fields=["status", "released_at"])
        document_released.send(sender=Document, document=locked)
    document.status, document.released_at = locked.status, locked.released_at
    return True
