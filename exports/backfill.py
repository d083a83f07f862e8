"""Historic backfill: documents released before an integration existed, exported on request.

Counting and planning read the same documents, so the confirmation a person sees is what
confirming plans. A document with a job for the integration, whatever its status, counts
as already exported and is never planned twice.
"""

import datetime
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Count as Total
from django.utils import timezone

from clients.models import Document
from exports import engine, tasks
from exports.models import ExportJob

BATCH = 1000


@dataclass
class Count:
    category: str
    found: int = 0
    exported: int = 0
    planned: int = 0

    @property
    def missing(self) -> int:
        return self.found - self.exported

    @property
    def label(self):
        return Document.Category(self.category).label


def parse_date(value: str) -> datetime.date:
    """YYYY-MM-DD or DD/MM/YYYY, as accountants write it."""
    for pattern in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            return datetime.datetime.strptime(value.strip(), pattern).date()
        except ValueError:
            continue
    raise ValueError(value)


def categories(integration) -> list[str]:
    """The categories the integration takes, in the order of the document categories."""
    return [c for c in Document.Category.values if integration.takes(c)]


def documents(integration, since: datetime.date, until: datetime.date | None = None):
    """Released documents of the integration's client in its categories, by day."""
    start = timezone.make_aware(datetime.datetime.combine(since, datetime.time.min))
    found = Document.objects.filter(
        client_id=integration.client_id,
        released_at__gte=start,
        category__in=categories(integration),
    )
    if until is not None:
        end = datetime.datetime.combine(until + datetime.timedelta(days=1), datetime.time.min)
        found = found.filter(released_at__lt=timezone.make_aware(end))
    return found


def survey(integration, since, until=None) -> list[Count]:
    """Per category: documents found and those already exported to the integration."""
    found = documents(integration, since, until)
    done = found.filter(export_jobs__integration=integration)
    counts = {c: Count(c) for c in categories(integration)}
    for category, number in _per_category(found):
        counts[category].found = number
    for category, number in _per_category(done):
        counts[category].exported = number
    return list(counts.values())


def _per_category(documents):
    return documents.order_by().values_list("category").annotate(n=Total("pk", distinct=True))


def plan(integration, since, until=None, *, progress=None) -> list[Count]:
    """Plan the missing jobs in batches (a constant number of queries each) and wake the
    integration's destination once, after commit."""
    counts = {c.category: c for c in survey(integration, since, until)}
    missing = (
        documents(integration, since, until)
        .exclude(pk__in=ExportJob.objects.filter(integration=integration).values("document_id"))
        .only("pk", "category")
        .order_by("released_at", "pk")
    )
    ids = list(missing.values_list("pk", "category"))
    for start in range(0, len(ids), BATCH):
        chunk = ids[start : start + BATCH]
        with transaction.atomic():
            engine.plan_backfill(integration, [Document(pk=pk, category=c) for pk, c in chunk])
        for _pk, category in chunk:
            counts[category].planned += 1
        if progress is not None:
            progress.step(len(chunk))
    if ids:
        destination = engine.destination_of(integration)
        transaction.on_commit(lambda: tasks.enqueue([destination]))
    return list(counts.values())
