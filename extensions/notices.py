"""Notices to a firm's owners when an integration or an installation stops or recovers.

Callers say only *that* something may have changed (``integrations_changed``,
``installation_changed``); the state is read back from the rows and compared with the
state the owners were last told about (``notified_state``). The conditional UPDATE that
records the new state decides who sends: of several workers recording the same change,
only the one whose UPDATE changed the row queues the e-mail, after its transaction
commits, as a django-q2 task, so a slow mail server never holds up a delivery.

An installation that needs a reconnect or attention affects all its clients: it is one
notice naming the extension, never one per client.
"""

import logging

from django.conf import settings
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.formats import date_format
from django.utils.translation import gettext as _

from extensions.models import Installation, Integration
from partnerspace.models import Membership

logger = logging.getLogger(__name__)

OK, FAILING = "ok", "failing"
RECONNECT, ATTENTION = Installation.Status.RECONNECT.value, Installation.Status.ATTENTION.value
TASK = "extensions.notices.send_notice"


def failures_before_notice() -> int:
    return getattr(settings, "EXPORT_NOTICE_FAILURES", 3)


def integration_state(status: str, consecutive_failures: int) -> str:
    """What the owners should know of one client's integration."""
    if status in Integration.WAITING_FOR_A_PERSON:
        return status
    return FAILING if consecutive_failures >= failures_before_notice() else OK


def installation_state(status: str) -> str:
    """Of the installation, only what stops every client: a reconnect or attention.
    Temporary failures are told per client, by their count."""
    return status if status in Installation.WAITING_FOR_A_PERSON else OK


# --- deciding -----------------------------------------------------------------------------


def integrations_changed(pks) -> int:
    """Record and notify the changes of these integrations' states; how many changed."""
    return record(changes_of_integrations(pks))


def installation_changed(pk) -> int:
    return record(changes_of_installation(pk))


def changes_of_integrations(pks) -> list[tuple[str, int, str]]:
    """(kind, pk, new state) of the integrations whose owners were told another state."""
    rows = Integration.objects.filter(pk__in=list(pks)).values_list(
        "pk", "status", "consecutive_failures", "notified_state"
    )
    return [
        ("integration", pk, state)
        for pk, status, failures, notified in rows
        if (state := integration_state(status, failures)) != notified
    ]


def changes_of_installation(pk) -> list[tuple[str, int, str]]:
    row = Installation.objects.filter(pk=pk).values_list("status", "notified_state").first()
    if row is None or installation_state(row[0]) == row[1]:
        return []
    return [("installation", pk, installation_state(row[0]))]


def record(changes) -> int:
    """Record each change; queue a notice for those this call recorded. Another worker
    that read the same change in the meantime records nothing and sends nothing."""
    models = {"integration": Integration, "installation": Installation}
    sent = 0
    for kind, pk, state in changes:
        if _record(models[kind].objects.filter(pk=pk), state):
            _queue(kind, pk, state)
            sent += 1
    return sent


def _record(rows, state: str) -> bool:
    """The one UPDATE that decides: only the caller that changed the row sends."""
    return rows.exclude(notified_state=state).update(notified_state=state) == 1


def _queue(kind: str, pk: int, state: str) -> None:
    from django_q.tasks import async_task

    transaction.on_commit(
        lambda: async_task(
            TASK, kind, pk, state, task_name=f"notice {kind} {pk} {state}", group="notices"
        )
    )


# --- sending ------------------------------------------------------------------------------


def owners_to_notify(partner_id, switch: str = "notify_problems"):
    """The firm's owners who kept this kind of e-mail on, with an address."""
    return (
        Membership.objects.filter(
            partner_id=partner_id,
            role=Membership.Role.OWNER,
            user__is_active=True,
            **{switch: True},
        )
        .exclude(user__email="")
        .select_related("user", "partner")
        .order_by("pk")
    )


def portal_link(path: str) -> str:
    return settings.PORTAL_URL.rstrip("/") + path


def when(moment) -> str:
    """A moment as the active language writes it (the project's formats: Belgian)."""
    return date_format(timezone.localtime(moment), "SHORT_DATETIME_FORMAT")


def send_to_owners(memberships, subject, template: str, context: dict) -> int:
    """One e-mail per language, each rendered with that language active; how many sent.

    ``subject`` is called with the language active, so it is in the reader's language."""
    by_language: dict[str, list] = {}
    for membership in memberships:
        by_language.setdefault(membership.language, []).append(membership.user.email)
    messages = []
    for language, addresses in by_language.items():
        with translation.override(language):
            messages.append(
                EmailMessage(
                    subject=subject(),
                    body=render_to_string(template, {**context, "language": language}),
                    to=addresses,
                    headers={"Content-Language": language},
                )
            )
    if messages:
        with get_connection(fail_silently=False) as connection:
            connection.send_messages(messages)
    return len(messages)


def send_notice(kind: str, pk: int, state: str) -> int:
    """The django-q2 task: tell the owners who want it about one change of state."""
    if kind == "installation":
        installation = Installation.objects.filter(pk=pk).first()
        if installation is None:
            return 0
        partner_id, extension, client = installation.partner_id, installation, None
        link = reverse("store:manage", kwargs={"installation_pk": pk})
        reason = installation.last_error
        affected = installation.integrations.current().filter(active=True).count()
    else:
        integration = (
            Integration.objects.filter(pk=pk).select_related("installation", "client").first()
        )
        if integration is None:
            return 0
        extension, client = integration.installation, integration.client
        partner_id = client.partner_id
        link = reverse("integrations:list", kwargs={"client_pk": client.pk})
        reason = integration.last_error
        affected = 1
    context = {
        "state": state,
        "recovered": state == OK,
        "extension": extension.name,
        "client": client.name if client else "",
        "affected": affected,
        "reason": reason,
        "link": portal_link(link),
        "now": timezone.now(),
    }

    def subject():
        if client is None:
            about = _("all clients of %(extension)s") % {"extension": extension.name}
        else:
            about = _("%(client)s on %(extension)s") % {
                "client": client.name,
                "extension": extension.name,
            }
        if state == OK:
            return _("Exports work again: %(about)s") % {"about": about}
        if state == FAILING:
            return _("Exports are failing: %(about)s") % {"about": about}
        if state == RECONNECT:
            return _("Reconnect needed: %(about)s") % {"about": about}
        return _("Needs attention: %(about)s") % {"about": about}

    return send_to_owners(owners_to_notify(partner_id), subject, "notices/notice.txt", context)
