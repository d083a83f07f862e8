"""The Store, installing and managing extensions, and a client's Integrations tab.

Every view here is generic: what differs between destinations comes from the connector's
declarations and forms, never from a branch on its key.
"""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Count, Q
from django.http import Http404, HttpResponseNotAllowed, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from clients.models import Client
from extensions import (
    activity,
    formats,
    kept,
    notices,
    paths,
    pending,
    registry,
    signals,
    signin,
)
from extensions.connectors.base import CATEGORY_LABELS, ConfirmationNeeded, ConnectorError
from extensions.forms import CategoriesForm, InstallationForm, sign_update, unsign_update
from extensions.models import Installation, Integration
from partnerspace.tenancy import owner_required, partner_required, require_owner

WAITING_STATUSES = ("pending", "running", "failed")
# What the integration form changes on a saved integration.
INTEGRATION_FORM_FIELDS = (
    "categories",
    "client_settings",
    "client_secrets",
    "activated_at",
    "removed_at",
    "active",
)


def _connector_or_404(key):
    connector = registry.get(key)
    if connector is None:
        raise Http404
    return connector


def _installation(request, installation_pk, *, owners_only=False):
    """The firm's installation (another firm's is a 404), then the owner check if asked."""
    installation = get_object_or_404(
        Installation.objects.for_partner(request.partner)
        .installed()
        .select_related("installed_by"),
        pk=installation_pk,
    )
    if owners_only:
        require_owner(request)
    return installation


def _client(request, client_pk):
    return get_object_or_404(Client.objects.for_partner(request.partner), pk=client_pk)


def _settings_form(connector, data=None, *, installation=None):
    """The connector's form; for a saved installation, its values and stored secrets,
    which an edit pointing at another destination drops."""
    form_class = connector.settings_form
    if form_class is None:
        return None
    kwargs = {"prefix": "settings", "connector": connector, "installation": installation}
    if installation is not None:
        kwargs["initial"] = installation.settings
        if installation.pk is not None:
            kwargs["has_stored_secrets"] = {k for k, v in installation.secrets.items() if v}
            kwargs["rebound"] = lambda edited: (
                connector.binding(connector.merge_settings(installation.settings, edited))
                != installation.secrets_binding
            )
    return form_class(data, **kwargs)


def _meta_form(connector, data=None, *, installation=None, terms_url=""):
    """Name, connections and the output format, which the shared code offers for every
    connector; a saved or pending installation's values as initial."""
    initial = {"name": connector.name}
    if installation is not None:
        initial = {
            "name": installation.name,
            "connections": installation.connections,
            "format": formats.chosen(connector, installation.settings),
        }
    return InstallationForm(
        data, initial=initial, terms_url=terms_url, formats_offered=connector.formats
    )


def _form_id(installation) -> str:
    """Which form secrets typed in are kept for (``extensions.kept``)."""
    if installation.pk is None:
        return f"configure:{installation.connector}"
    return f"manage:{installation.pk}"


def _keep_typed(request, form_id, connector, settings_form) -> None:
    """The form goes back with errors: keep its secrets for the next try, say so."""
    if settings_form is not None and settings_form.is_bound:
        names = kept.keep(
            request, form_id, connector, type(settings_form), settings_form.data, "settings"
        )
        kept.mark(settings_form, names)


def _split(form, stored_secrets=None):
    """Settings in clear, secrets apart (see ``ConnectorForm.split``)."""
    if form is None:
        return {}, dict(stored_secrets or {})
    return form.split(stored_secrets)


# --- the Store ----------------------------------------------------------------------


@partner_required
def store(request):
    query = request.GET.get("q", "").strip().lower()
    offered = registry.connectors().values()
    categories = [
        (key, label)
        for key, label in CATEGORY_LABELS.items()
        if any(c.category == key for c in offered)
    ]
    category = request.GET.get("category", "")
    if category not in dict(categories):
        category = ""
    installed = set(
        Installation.objects.for_partner(request.partner)
        .installed()
        .values_list("connector", flat=True)
    )
    cards = []
    for connector in offered:
        text = (
            f"{connector.name} {connector.description} {connector.category} "
            f"{connector.get_category_display()}"
        ).lower()
        if (query and query not in text) or (category and connector.category != category):
            continue
        cards.append(
            {
                "connector": connector,
                "installed": connector.key in installed,
                "unavailable": connector.unavailable_reason(),
            }
        )
    return render(
        request,
        "extensions/store.html",
        {"cards": cards, "query": query, "categories": categories, "category": category},
    )


@partner_required
def extension(request, connector_key):
    connector = _connector_or_404(connector_key)
    installations = (
        Installation.objects.for_partner(request.partner)
        .installed()
        .filter(connector=connector.key)
        .defer("secrets")
        .annotate(
            clients_served=Count(
                "integrations",
                filter=Q(integrations__removed_at__isnull=True, integrations__active=True),
            )
        )
    )
    return render(
        request,
        "extensions/extension.html",
        {
            "connector": connector,
            "installations": installations,
            "is_owner": request.membership.is_owner,
            "unavailable": connector.unavailable_reason(),
        },
    )


@owner_required
def install(request, connector_key):
    """Step one: what the extension will read and write; confirming leads to the form."""
    connector = _connector_or_404(connector_key)
    return (
        signin.unavailable(request, connector)
        or _offer_existing(request, connector)
        or render(request, "extensions/install_confirm.html", {"connector": connector})
    )


def _offer_existing(request, connector):
    """For a connector installed once per firm (``one_per_firm``), the page offering the
    firm's installation instead of a second one; None when there is none yet."""
    if not connector.one_per_firm:
        return None
    existing = (
        Installation.objects.for_partner(request.partner)
        .installed()
        .filter(connector=connector.key)
        .first()
    )
    if existing is None:
        return None
    return render(
        request,
        "extensions/install_confirm.html",
        {
            "connector": connector,
            "existing": existing,
            "facts": existing.connector_class(existing).facts(),
        },
    )


@owner_required
def configure(request, connector_key):
    """Step two: the configuration form; saving runs the connector's check first."""
    connector = _connector_or_404(connector_key)
    if request.method != "POST":
        return redirect("store:install", connector_key=connector.key)
    refused = signin.unavailable(request, connector) or _offer_existing(request, connector)
    if refused is not None:
        return refused
    if "confirm" in request.POST:
        return _confirm(request, connector)
    if "confirmed" in request.POST and "name" not in request.POST:
        meta_form = _meta_form(connector, terms_url=connector.terms_url)
        return _render_configure(request, connector, meta_form, _settings_form(connector))
    form_id = f"configure:{connector.key}"
    data, _restored = kept.restore(
        request, form_id, connector, connector.settings_form, request.POST, "settings"
    )
    meta_form = _meta_form(connector, data, terms_url=connector.terms_url)
    settings_form = _settings_form(connector, data)
    if not meta_form.is_valid() or (settings_form is not None and not settings_form.is_valid()):
        _keep_typed(request, form_id, connector, settings_form)
        return _render_configure(request, connector, meta_form, settings_form)
    values, secrets = _split(settings_form)
    installation = Installation(
        partner=request.partner,
        connector=connector.key,
        name=meta_form.cleaned_data["name"],
        connections=meta_form.cleaned_data["connections"],
        settings=formats.store(connector, values, meta_form.cleaned_data.get("format")),
        installed_by=request.user,
    )
    installation.set_secrets(secrets)
    if connector.oauth is not None:  # the rest comes with the sign-in (extensions/signin.py)
        return signin.begin(request, installation)
    return _check_and_save(request, installation, meta_form, settings_form, created=True)


def _signin_allowed(response, connector):
    """A page whose form leads to a provider's sign-in lets the form go there (CSP)."""
    if connector is not None and connector.oauth is not None and connector.oauth.available:
        response._csp_update = {"form-action": connector.oauth.authorization_origins()}
    return response


def _render_configure(
    request, connector, meta_form, settings_form, *, error="", installation=None
):
    response = render(
        request,
        "extensions/configure.html",
        {
            "connector": connector,
            "meta_form": meta_form,
            "settings_form": settings_form,
            "error": error,
            "installation": installation,
        },
        status=200 if not error else 400,
    )
    return _signin_allowed(response, connector)


def _ask_to_confirm(request, installation, exc):
    """The destination showed something a person must accept (a server's key): keep the
    set-up for this firm, user and installation, and show what is to be accepted."""
    pending.remember(request, installation)
    return render(
        request,
        "extensions/confirm.html",
        {
            "connector": installation.connector_class,
            "installation": installation,
            "exc": exc,
            "confirmation": sign_update(exc.update),
        },
    )


def _check_and_save(request, installation, meta_form, settings_form, *, created):
    connector = installation.connector_class
    try:
        result = installation.connector_instance().check()
    except ConfirmationNeeded as exc:
        return _ask_to_confirm(request, installation, exc)
    except ConnectorError as exc:
        _keep_typed(request, _form_id(installation), connector, settings_form)
        if installation.pk is None:
            # Back to the form, with what was typed (secrets must be typed again).
            meta_form = meta_form or _meta_form(
                connector, installation=installation, terms_url=connector.terms_url
            )
            if settings_form is None:
                settings_form = _settings_form(connector, installation=installation)
            return _render_configure(request, connector, meta_form, settings_form, error=str(exc))
        if meta_form is None:
            messages.error(request, str(exc))
            return redirect(installation)
        return _render_manage(request, installation, meta_form, settings_form, error=str(exc))
    kept.forget(request, _form_id(installation))
    installation.status = Installation.Status.OK
    installation.last_error = ""
    installation.save_configuration()
    notices.installation_changed(installation.pk)
    if created:
        messages.success(request, _("Installation succeeded. %(result)s") % {"result": result})
        return redirect("clients:list")
    messages.success(request, _("Configuration saved. %(result)s") % {"result": result})
    signals.installation_ready.send(sender=Installation, installation=installation)
    return redirect(installation)


def _confirm(request, connector, installation=None):
    """Accepted: finish the set-up kept for this firm, user and installation, with the
    accepted settings (signed when shown, so they cannot be swapped), and check again."""
    if installation is None:
        installation = Installation(
            partner=request.partner, connector=connector.key, installed_by=request.user
        )
    kept = pending.take(request, installation)
    update = unsign_update(request.POST.get("confirmation", ""))
    if kept is None or update is None:
        messages.error(request, _("This confirmation expired; please try again."))
        if installation.pk is not None:
            return redirect(installation)
        return redirect("store:install", connector_key=connector.key)
    installation.name = kept["name"]
    installation.connections = kept["connections"]
    installation.settings = {**kept["settings"], **update}
    installation.set_secrets(kept["secrets"])
    return _check_and_save(request, installation, None, None, created=installation.pk is None)


@partner_required
def path_preview(request):
    """What a path template resolves to, for the live preview next to path fields."""
    client = None
    if request.GET.get("client", "").isdigit():
        client = (
            Client.objects.for_partner(request.partner).filter(pk=request.GET["client"]).first()
        )
    category = request.GET.get("category", "purchase")
    if category not in paths.INVOICE_TYPES:
        category = "purchase"
    rooted = request.GET.get("rooted") == "1"
    template = request.GET.get("template", "")
    inherited = not template.strip() and "inherit" in request.GET
    if inherited:  # an empty client folder: the installation's is used
        template = request.GET["inherit"]
    try:
        resolved = paths.preview(template, client=client, category=category, rooted=rooted)
    except ValidationError as exc:
        return JsonResponse({"error": " ".join(exc.messages)})
    text = paths.where(resolved, rooted=rooted)
    if inherited:
        text = _("The installation's folder. %(where)s") % {"where": text}
    return JsonResponse({"path": resolved or "./", "text": text, "inherited": inherited})


# --- Manage -------------------------------------------------------------------------


@partner_required
def manage(request, installation_pk):
    installation = _installation(request, installation_pk, owners_only=True)
    connector = installation.connector_class
    if connector is None:
        raise Http404
    if request.method == "POST":
        if "confirm" in request.POST:
            return _confirm(request, connector, installation)
        data, _restored = kept.restore(
            request,
            _form_id(installation),
            connector,
            connector.settings_form,
            request.POST,
            "settings",
        )
        meta_form = _meta_form(connector, data)
        settings_form = _settings_form(connector, data, installation=installation)
        if meta_form.is_valid() and (settings_form is None or settings_form.is_valid()):
            values, secrets = _split(settings_form, installation.secrets)
            installation.name = meta_form.cleaned_data["name"]
            installation.connections = meta_form.cleaned_data["connections"]
            installation.settings = formats.store(
                connector,
                connector.merge_settings(installation.settings, values),
                meta_form.cleaned_data.get("format"),
            )
            installation.set_secrets(secrets)
            return _check_and_save(request, installation, meta_form, settings_form, created=False)
        _keep_typed(request, _form_id(installation), connector, settings_form)
    else:
        meta_form = _meta_form(connector, installation=installation)
        settings_form = _settings_form(connector, installation=installation)
    return _render_manage(request, installation, meta_form, settings_form)


def _render_manage(request, installation, meta_form, settings_form, *, error=""):
    response = render(
        request,
        "extensions/manage.html",
        {
            "installation": installation,
            "connector": installation.connector_class,
            "meta_form": meta_form,
            "settings_form": settings_form,
            "client_count": installation.integrations.current().filter(active=True).count(),
            "facts": installation.connector_class(installation).facts(),
            "error": error,
        },
        status=400 if error else 200,
    )
    return _signin_allowed(response, installation.connector_class)


@partner_required
def test_connection(request, installation_pk):
    """Tries the stored configuration and says how it went; it saves no setting."""
    installation = _installation(request, installation_pk, owners_only=True)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    try:
        result = installation.connector_instance().check()
    except ConfirmationNeeded as exc:
        return _ask_to_confirm(request, installation, exc)
    except ConnectorError as exc:
        messages.error(request, str(exc))
        return redirect(installation)
    messages.success(request, _("Connection works. %(result)s") % {"result": result})
    if installation.status != Installation.Status.OK:
        # Working again: only the status changes, so nothing a worker saved is overwritten.
        Installation.objects.filter(pk=installation.pk).update(
            status=Installation.Status.OK, last_error=""
        )
        notices.installation_changed(installation.pk)
        transaction.on_commit(
            lambda: signals.installation_ready.send(sender=Installation, installation=installation)
        )
    return redirect(installation)


@partner_required
def toggle_active(request, installation_pk):
    """The Active switch. It posts the state it asks for (``active``: on or off); without
    ``confirmed`` the confirmation page answers, so nothing changes unconfirmed (script
    asks in a dialog instead). A post naming no state switches, as the page's own form."""
    installation = _installation(request, installation_pk, owners_only=True)
    client_count = installation.integrations.current().filter(active=True).count()
    wanted = request.POST.get("active")
    if request.method == "POST" and wanted in ("on", "off") and "confirmed" not in request.POST:
        if (wanted == "on") == installation.active:
            return redirect(installation)  # already so: nothing to confirm
    elif request.method == "POST":
        if wanted in ("on", "off") and (wanted == "on") == installation.active:
            return redirect(installation)  # a second click of the same confirmation
        installation.active = not installation.active
        installation.save(update_fields=["active", "updated_at"])
        if installation.active:
            messages.success(
                request,
                _("%(name)s is active again: everything waiting is being sent.")
                % {"name": installation.name},
            )
            transaction.on_commit(
                lambda: signals.installation_ready.send(
                    sender=Installation, installation=installation
                )
            )
        else:
            messages.warning(
                request,
                _("%(name)s is switched off: nothing is sent until you switch it on again.")
                % {"name": installation.name},
            )
        return redirect(installation)
    return render(
        request,
        "extensions/toggle_active.html",
        {"installation": installation, "client_count": client_count},
    )


@partner_required
def uninstall(request, installation_pk):
    installation = _installation(request, installation_pk, owners_only=True)
    client_count = installation.integrations.current().count()
    if request.method == "POST":
        installation.removed_at = timezone.now()
        installation.active = False
        installation.save(update_fields=["removed_at", "active", "updated_at"])
        messages.success(
            request,
            _("%(name)s was uninstalled. Its export history is kept.")
            % {"name": installation.name},
        )
        return redirect("store:index")
    return render(
        request,
        "extensions/uninstall.html",
        {"installation": installation, "client_count": client_count},
    )


# --- a client's Integrations tab ----------------------------------------------------


@partner_required
def client_integrations(request, client_pk):
    client = _client(request, client_pk)
    integrations = (
        Integration.objects.current()
        .filter(client=client)
        .select_related("installation")
        .defer("client_secrets", "installation__secrets")  # shown nowhere, not decrypted
        .annotate(
            waiting=Count("jobs", filter=Q(jobs__status__in=WAITING_STATUSES)),
            failed=Count("jobs", filter=Q(jobs__status="dead")),
            delivered=Count("jobs", filter=Q(jobs__status="delivered")),
        )
    )
    integrations = list(integrations)
    activity.attach_sparklines(integrations)
    has_installations = Installation.objects.for_partner(request.partner).installed().exists()
    return render(
        request,
        "extensions/client_integrations.html",
        {
            "client": client,
            "integrations": integrations,
            "has_installations": has_installations,
            "tab": "integrations",
        },
    )


@partner_required
def add_integration(request, client_pk):
    client = _client(request, client_pk)
    taken = set(
        Integration.objects.current().filter(client=client).values_list("installation", flat=True)
    )
    installations = [
        (installation, installation.pk in taken)
        for installation in Installation.objects.for_partner(request.partner).installed()
        if installation.connector_class is not None
    ]
    return render(
        request,
        "extensions/add_integration.html",
        {"client": client, "installations": installations, "tab": "integrations"},
    )


@partner_required
def configure_integration(request, client_pk, installation_pk):
    client = _client(request, client_pk)
    installation = _installation(request, installation_pk)
    integration = Integration.objects.filter(client=client, installation=installation).first()
    if integration is not None and integration.removed_at is None:
        return redirect("integrations:edit", client_pk=client.pk, integration_pk=integration.pk)
    return _integration_form(request, client, installation, integration, creating=True)


@partner_required
def edit_integration(request, client_pk, integration_pk):
    client = _client(request, client_pk)
    integration = get_object_or_404(
        Integration.objects.current().filter(client=client).select_related("installation"),
        pk=integration_pk,
    )
    return _integration_form(request, client, integration.installation, integration)


def _integration_form(request, client, installation, integration, *, creating=False):
    connector = installation.connector_class
    form_class = connector.client_form
    current = integration if integration and not creating else None
    offered = connector.accepted(installation.settings)  # reports only if switched on
    initial_categories = current.categories if current else sorted(offered)
    form_id = f"integration:{client.pk}:{installation.pk}"
    data, _restored = kept.restore(
        request,
        form_id,
        connector,
        form_class,
        request.POST if request.method == "POST" else None,
        "client",
    )
    categories_form = CategoriesForm(
        data, accepts=offered, initial={"categories": initial_categories}
    )
    client_form = None
    error = ""
    if form_class is not None:
        kwargs = {
            "prefix": "client",
            "initial": current.client_settings if current else None,
            "connector": connector,
            "installation": installation,
            "client": client,
        }
        if current:
            kwargs["has_stored_secrets"] = {k for k, v in current.client_secrets.items() if v}
        client_form = form_class(data, **kwargs)
    if (
        data is not None
        and categories_form.is_valid()
        and (client_form is None or client_form.is_valid())
    ):
        values, secrets = _split(client_form, current.client_secrets if current else None)
        if integration is None:
            integration = Integration(client=client, installation=installation)
        if creating:
            integration.activated_at = timezone.now()
            integration.removed_at = None
            integration.active = True
        integration.categories = categories_form.cleaned_data["categories"]
        integration.client_settings = values
        integration.client_secrets = secrets
        try:
            result = _check_integration(integration)
        except ConnectorError as exc:
            error = str(exc)
        else:
            if integration.pk is None:
                integration.save()
            else:  # only what the form changes: a worker may have recorded outcomes since
                integration.save(update_fields=INTEGRATION_FORM_FIELDS)
            _resume_integration(integration)  # a person corrected what was refused
            kept.forget(request, form_id)
            done = _("%(name)s is set up for %(client)s.") % {
                "name": installation.name,
                "client": client.name,
            }
            messages.success(request, f"{done} {result}".strip())
            return redirect("integrations:list", client_pk=client.pk)
    if data is not None:
        kept.mark(client_form, kept.keep(request, form_id, connector, form_class, data, "client"))
    return render(
        request,
        "extensions/integration_form.html",
        {
            "client": client,
            "installation": installation,
            "connector": connector,
            "categories_form": categories_form,
            "client_form": client_form,
            "integration": current,
            "error": error,
            "tab": "integrations",
        },
        status=400 if error else 200,
    )


def _check_integration(integration) -> str:
    """The connector's check of this client's own settings and credentials ("" when it
    has none to check), never with secrets entered for another destination."""
    installation = integration.installation
    connector = installation.connector_instance()
    return connector.check_integration(integration.connector_destination())


def _resume_integration(integration) -> None:
    """An integration that waited for a person sends again, and what waited is woken."""
    if Integration.objects.filter(pk=integration.pk).resume():
        notices.integrations_changed([integration.pk])
        installation = integration.installation
        transaction.on_commit(
            lambda: signals.installation_ready.send(sender=Installation, installation=installation)
        )


@partner_required
def test_integration(request, client_pk, integration_pk):
    """Checks one client's own settings and credentials; a pass sends what waited for a
    person. Members may: integrations are their daily work."""
    client = _client(request, client_pk)
    integration = get_object_or_404(
        Integration.objects.current().filter(client=client).select_related("installation"),
        pk=integration_pk,
    )
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    try:
        result = _check_integration(integration)
    except ConnectorError as exc:
        messages.error(request, str(exc))
        return redirect("integrations:list", client_pk=client.pk)
    if result:
        messages.success(request, _("Connection works. %(result)s") % {"result": result})
    else:
        messages.success(
            request,
            _("%(name)s has nothing to check for %(client)s.")
            % {"name": integration.installation.name, "client": client.name},
        )
    if integration.needs_a_person:
        messages.info(
            request,
            _("The exports waiting for %(client)s are being sent.") % {"client": client.name},
        )
    _resume_integration(integration)
    return redirect("integrations:list", client_pk=client.pk)


@partner_required
def remove_integration(request, client_pk, integration_pk):
    client = _client(request, client_pk)
    integration = get_object_or_404(
        Integration.objects.current().filter(client=client).select_related("installation"),
        pk=integration_pk,
    )
    if request.method == "POST":
        integration.removed_at = timezone.now()
        integration.active = False
        integration.save(update_fields=["removed_at", "active"])
        messages.success(
            request,
            _("%(name)s no longer exports for %(client)s.")
            % {"name": integration.installation.name, "client": client.name},
        )
        return redirect("integrations:list", client_pk=client.pk)
    return render(
        request,
        "extensions/remove_integration.html",
        {"client": client, "integration": integration, "tab": "integrations"},
    )


def clients_affected(count: int) -> str:
    return ngettext("%(count)d client", "%(count)d clients", count) % {"count": count}
