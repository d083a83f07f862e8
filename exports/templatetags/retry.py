"""When a waiting export is tried again, in words a person reads at a glance."""

from datetime import timedelta

from django import template
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

register = template.Library()


def next_attempt_text(when, now=None) -> str:
    """``next attempt in 4 min``, ``in 2 h 5 min``, or ``in a moment`` once it is due."""
    if when is None:
        return ""
    seconds = (when - (now or timezone.now())).total_seconds()
    if seconds < 60:
        return _("next attempt in a moment")
    minutes = -(-int(seconds) // 60)  # rounded up: "in 1 min" until it is due
    if minutes < 60:
        return ngettext(
            "next attempt in %(minutes)d min", "next attempt in %(minutes)d min", minutes
        ) % {"minutes": minutes}
    hours, minutes = divmod(minutes, 60)
    if not minutes:
        return ngettext("next attempt in %(hours)d h", "next attempt in %(hours)d h", hours) % {
            "hours": hours
        }
    return _("next attempt in %(hours)d h %(minutes)d min") % {"hours": hours, "minutes": minutes}


@register.filter
def next_attempt(job):
    """For a job that will be tried again (``Will retry``, or waiting behind another's
    failure): when; nothing for a job due now or not waiting."""
    if job.status == "failed" or (
        job.status == "pending"
        and job.next_attempt_at
        and job.next_attempt_at - timezone.now() >= timedelta(minutes=1)
    ):
        return next_attempt_text(job.next_attempt_at)
    return ""
