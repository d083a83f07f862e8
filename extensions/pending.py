"""A set-up that spans two requests (a server's key to accept, a sign-in at the provider),
kept in the session.

What is kept belongs to the firm, the user and the installation it was begun for (or
"a new installation of connector X"): taken anywhere else it is refused and thrown away,
so a configuration, and the secrets in it, never crosses into another firm or another
installation. Its secrets are kept encrypted; a firm switch discards it
(``partnerspace.tenancy.PENDING_PREFIX``).
"""

from extensions import crypto
from partnerspace.tenancy import PENDING_PREFIX

SESSION_KEY = PENDING_PREFIX + "extensions.setup"


def target(installation) -> str:
    """What a pending set-up is for: this installation, or a new one of its connector."""
    if installation.pk is None:
        return f"new:{installation.connector}"
    return f"installation:{installation.pk}"


def remember(request, installation, **extra) -> None:
    """Keep the set-up; ``extra`` (a sign-in's state) is kept beside it as given."""
    request.session[SESSION_KEY] = {
        **extra,
        "partner": request.partner.pk,
        "user": request.user.pk,
        "target": target(installation),
        "name": installation.name,
        "connections": installation.connections,
        "settings": installation.settings,
        "secrets": crypto.encrypt_json(installation.secrets),
    }


def take(request, installation) -> dict | None:
    """The pending set-up for ``installation`` (unsaved or not), popped; None if there is
    none, or if it was begun elsewhere (then it is discarded all the same)."""
    pending = request.session.pop(SESSION_KEY, None)
    if (
        not pending
        or pending.get("partner") != request.partner.pk
        or pending.get("user") != request.user.pk
        or pending.get("target") != target(installation)
    ):
        return None
    return {**pending, "secrets": crypto.decrypt_json(pending["secrets"])}


def take_own(request) -> dict | None:
    """The pending set-up whatever its target, popped; None if there is none or if another
    firm or user began it. For a step that learns its target from the set-up itself (a
    sign-in's callback): the caller looks the target up for this firm and checks it."""
    pending = request.session.pop(SESSION_KEY, None)
    if (
        not pending
        or pending.get("partner") != request.partner.pk
        or pending.get("user") != request.user.pk
    ):
        return None
    return {**pending, "secrets": crypto.decrypt_json(pending["secrets"])}
