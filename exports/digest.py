"""The daily digest: each firm's owners get one list of the exports that failed since the
last one, and nothing on a day without failures.

``manage.py exports_digest`` sends it; the django-q2 schedule created on migrate runs that
command once a day (``EXPORT_DIGEST_TIME``).
"""

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django_q.models import Schedule

from exports.models import ExportJob, FailureDigest
from extensions import notices
from partnerspace.models import Partner

SCHEDULE = "exports: daily digest of failed exports"
# A first digest looks back this far: a firm that never had one gets yesterday's failures.
FIRST_LOOK_BACK = timedelta(days=1)


@dataclass
class FirmDigest:
    partner: Partner
    since: datetime
    until: datetime
    jobs: list


def failed_since(partner, since, until):
    """The firm's exports that ended dead in ``(since, until]``: their last attempt ended
    then, or (a worker that vanished) they were last claimed then."""
    return list(
        ExportJob.objects.for_partner(partner)
        .filter(status=ExportJob.Status.DEAD)
        .filter(
            Q(attempt_log__finished_at__gt=since, attempt_log__finished_at__lte=until)
            | Q(claimed_at__gt=since, claimed_at__lte=until)
        )
        .distinct()
        .select_related("document__client", "installation")
        .order_by("document__client__name", "pk")
    )


def collect(now=None) -> list[FirmDigest]:
    """Every firm with failed exports since its last digest."""
    until = now or timezone.now()
    sent = dict(FailureDigest.objects.values_list("partner_id", "sent_until"))
    firms = Partner.objects.filter(
        pk__in=ExportJob.objects.filter(status=ExportJob.Status.DEAD).values(
            "document__client__partner"
        )
    ).order_by("name", "pk")
    digests = []
    for partner in firms:
        since = sent.get(partner.pk) or until - FIRST_LOOK_BACK
        jobs = failed_since(partner, since, until)
        if jobs:
            digests.append(FirmDigest(partner, since, until, jobs))
    return digests


def send(digest: FirmDigest) -> int:
    """E-mail one firm's digest to its owners who want it, then record it as sent (even
    when none wants it), so no failure is listed twice."""
    count = len(digest.jobs)
    context = {
        "firm": digest.partner.name,
        "jobs": digest.jobs,
        "count": count,
        "since": digest.since,
        "link": notices.portal_link("/"),
    }

    def subject():
        return ngettext(
            "%(count)d export failed: %(firm)s",
            "%(count)d exports failed: %(firm)s",
            count,
        ) % {"count": count, "firm": digest.partner.name}

    owners = notices.owners_to_notify(digest.partner.pk, "notify_digest")
    sent = notices.send_to_owners(owners, subject, "notices/digest.txt", context)
    FailureDigest.objects.update_or_create(
        partner=digest.partner, defaults={"sent_until": digest.until}
    )
    return sent


def describe(digest: FirmDigest) -> str:
    """One line for the command's output."""
    return _("%(firm)s: %(count)d failed since %(since)s") % {
        "firm": digest.partner.name,
        "count": len(digest.jobs),
        "since": notices.when(digest.since),
    }


def _next_run(now=None) -> datetime:
    hour, minute = (int(part) for part in settings.EXPORT_DIGEST_TIME.split(":"))
    now = timezone.localtime(now)
    run = timezone.make_aware(datetime.combine(now.date(), time(hour, minute)))
    return run if run > now else run + timedelta(days=1)


def ensure_schedule(**kwargs) -> None:
    """Created on migrate, once: django-q2 runs ``manage.py exports_digest`` every day."""
    Schedule.objects.get_or_create(
        name=SCHEDULE,
        defaults={
            "func": "django.core.management.call_command",
            "args": "'exports_digest'",
            "schedule_type": Schedule.DAILY,
            "repeats": -1,
            "next_run": _next_run(),
        },
    )
