from django.contrib import admin

from extensions.models import Installation, Integration


@admin.register(Installation)
class InstallationAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "partner",
        "connector",
        "active",
        "status",
        "installed_at",
        "removed_at",
    ]
    list_filter = ["connector", "active", "status", "partner"]
    search_fields = ["name", "partner__name"]
    # Secrets are never shown, not even encrypted.
    exclude = ["secrets"]
    readonly_fields = ["installed_at", "updated_at", "installed_by", "last_error"]


@admin.register(Integration)
class IntegrationAdmin(admin.ModelAdmin):
    list_display = [
        "client",
        "installation",
        "active",
        "activated_at",
        "last_success_at",
        "consecutive_failures",
        "removed_at",
    ]
    list_filter = ["active", "installation__connector", "installation"]
    search_fields = ["client__name", "client__enterprise_number", "installation__name"]
    list_select_related = ["client", "installation"]
    exclude = ["client_secrets"]
    readonly_fields = ["created_at", "last_success_at", "last_failure_at", "last_error"]
    autocomplete_fields = ["client"]
