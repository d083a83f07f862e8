"""Operators see installations and integrations here; they are set up through the portal.

Settings are entered on the portal, where the connector checks them (host key, sign-in,
folder); an edit here would skip those checks, so they are shown, not editable. Secrets are
never shown, not even encrypted.
"""

import json

from django.contrib import admin
from django.db import transaction
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from extensions import registry, signals
from extensions.models import Installation, Integration
from partnerspace.admin import EnterpriseNumberSearch


def extension_filter(path):
    """A list filter by extension, by name, on the connector key at ``path``."""

    class ExtensionFilter(admin.SimpleListFilter):
        title = _("extension")
        parameter_name = "extension"

        def lookups(self, request, model_admin):
            return [(key, c.name) for key, c in registry.connectors().items()]

        def queryset(self, request, queryset):
            if not self.value():
                return queryset
            # Through a subquery: a document with two jobs there is listed once.
            chosen = queryset.model.objects.filter(**{path: self.value()})
            return queryset.filter(pk__in=chosen.values("pk"))

    return ExtensionFilter


def _json(value):
    return format_html(
        "<pre>{}</pre>", json.dumps(value or {}, indent=2, sort_keys=True, ensure_ascii=False)
    )


def _all_but(fields, editable):
    return [name for name in fields if name not in editable]


@admin.register(Installation)
class InstallationAdmin(EnterpriseNumberSearch, admin.ModelAdmin):
    list_display = [
        "name",
        "partner",
        "connector",
        "active",
        "status",
        "installed_at",
        "removed_at",
    ]
    list_filter = [
        "status",
        extension_filter("connector"),
        ("partner", admin.RelatedOnlyFieldListFilter),
        "active",
        "installed_at",
    ]
    search_fields = ["name", "partner__name", "partner__enterprise_number"]
    list_select_related = ["partner"]
    fields = [
        "name",
        "partner",
        "connector",
        "active",
        "status",
        "connections",
        "settings_json",
        "last_error",
        "installed_by",
        "installed_at",
        "updated_at",
        "removed_at",
    ]
    readonly_fields = _all_but(fields, {"name", "active", "connections"})

    @admin.display(description=_("settings"))
    def settings_json(self, installation):
        return _json(installation.settings)

    def has_add_permission(self, request):
        # Installing runs the connector's checks: only the portal does it.
        return False

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if "active" in form.changed_data and obj.active:
            # As when a firm switches it on: what waited is sent now, not at the next sweep.
            transaction.on_commit(
                lambda: signals.installation_ready.send(sender=Installation, installation=obj)
            )


@admin.register(Integration)
class IntegrationAdmin(EnterpriseNumberSearch, admin.ModelAdmin):
    list_display = [
        "client",
        "installation",
        "active",
        "activated_at",
        "last_success_at",
        "consecutive_failures",
        "status",
        "removed_at",
    ]
    list_filter = [
        "status",
        extension_filter("installation__connector"),
        ("client__partner", admin.RelatedOnlyFieldListFilter),
        "active",
        "installation",
        "last_failure_at",
    ]
    search_fields = [
        "client__name",
        "client__enterprise_number",
        "client__vat_number",
        "installation__name",
    ]
    list_select_related = ["client", "installation"]
    fields = [
        "client",
        "installation",
        "active",
        "categories",
        "client_settings_json",
        "activated_at",
        "created_at",
        "last_success_at",
        "last_failure_at",
        "consecutive_failures",
        "status",
        "status_since",
        "last_error",
        "removed_at",
    ]
    readonly_fields = _all_but(fields, {"active", "categories"})

    @admin.display(description=_("client settings"))
    def client_settings_json(self, integration):
        return _json(integration.client_settings)

    def has_add_permission(self, request):
        # A client is connected on the portal, where the connector checks its settings.
        return False


class IntegrationInline(admin.TabularInline):
    """A client's integrations, read-only: they are set up on the portal."""

    model = Integration
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ["installation", "active", "categories", "status", "consecutive_failures"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False
