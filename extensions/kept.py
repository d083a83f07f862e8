"""Secrets typed into a form that was sent back with errors, kept for the next try.

A password field is never rendered with a value, so a form refused for another field would
make a person type every secret again. What they typed is kept instead, encrypted
(``extensions.crypto``) in the session, bound like a pending set-up (``extensions.pending``)
to the firm, the user and the form it was typed into, and to the destination it was typed
for (the connector's ``binding_fields`` as posted; one left blank then may be filled in):
a blank secret on the next submit of that same form uses it. It never goes back into the
HTML; the field only says it is kept.
A firm switch discards it (``partnerspace.tenancy.PENDING_PREFIX``).
"""

from django.utils.translation import gettext_lazy as _

from extensions import crypto
from partnerspace.tenancy import PENDING_PREFIX

SESSION_KEY = PENDING_PREFIX + "extensions.kept"
KEPT_HELP = _("Kept from your last try. Leave empty to use it, or type a new one.")


def _names(connector, form_class):
    return connector.secret_fields(form_class)


def _binding(connector, data, prefix):
    """The destination as posted; a field left blank was not yet part of it."""
    posted = {name: data.get(f"{prefix}-{name}", "") for name in connector.binding_fields}
    return {name: value for name, value in posted.items() if value}


def _same_destination(kept_for, data, connector, prefix) -> bool:
    posted = {name: data.get(f"{prefix}-{name}", "") for name in connector.binding_fields}
    return all(posted.get(name) == value for name, value in (kept_for or {}).items())


def _entries(request) -> dict:
    return request.session.get(SESSION_KEY) or {}


def _entry(request, form_id, connector, data, prefix) -> dict:
    """The secrets kept for this firm, user, form and destination, decrypted; else {}."""
    entry = _entries(request).get(form_id)
    if (
        not entry
        or entry.get("partner") != request.partner.pk
        or entry.get("user") != request.user.pk
        or not _same_destination(entry.get("binding"), data, connector, prefix)
    ):
        return {}
    try:
        return crypto.decrypt_json(entry["secrets"])
    except crypto.DecryptionError:
        return {}


def restore(request, form_id, connector, form_class, data, prefix):
    """``data`` with each blank secret filled from what this form kept (a copy when it
    changes), and the names of the secrets so filled."""
    if data is None or form_class is None:
        return data, set()
    secrets = _entry(request, form_id, connector, data, prefix)
    filled = set()
    for name in _names(connector, form_class):
        key = f"{prefix}-{name}"
        if secrets.get(name) and not data.get(key):
            if not filled:
                data = data.copy()
            data[key] = secrets[name]
            filled.add(name)
    return data, filled


def keep(request, form_id, connector, form_class, data, prefix) -> set:
    """Keep the secrets typed (or restored) in ``data`` for the next try of this form;
    the names kept, which the form marks with ``mark``."""
    if data is None or form_class is None:
        return set()
    secrets = {
        name: data[f"{prefix}-{name}"]
        for name in _names(connector, form_class)
        if data.get(f"{prefix}-{name}")
    }
    entries = dict(_entries(request))
    entries.pop(form_id, None)
    if secrets:
        entries[form_id] = {
            "partner": request.partner.pk,
            "user": request.user.pk,
            "binding": _binding(connector, data, prefix),
            "secrets": crypto.encrypt_json(secrets),
        }
    request.session[SESSION_KEY] = entries
    return set(secrets)


def forget(request, form_id) -> None:
    """The form was saved: nothing of it is kept any longer."""
    entries = dict(_entries(request))
    if entries.pop(form_id, None) is not None:
        request.session[SESSION_KEY] = entries


def mark(form, names) -> None:
    """Say on each kept secret's field that a blank submit uses what was kept."""
    if form is None:
        return
    for name in names:
        if name in form.fields:
            form.fields[name].help_text = KEPT_HELP
            form[name].help_text = KEPT_HELP  # a bound field copies it when first made
