from django.contrib import admin, messages
from django.db import transaction
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from exports import engine, tasks
from exports.models import ExportAttempt, ExportJob
from extensions.admin import extension_filter
from extensions.models import Integration
from partnerspace.admin import EnterpriseNumberSearch

# The index opens on export health (jobs by status, what needs a person).
admin.site.index_template = "admin/export_health_index.html"

FIRM = ("document__client__partner", admin.RelatedOnlyFieldListFilter)


class ExportAttemptInline(admin.TabularInline):
    model = ExportAttempt
    extra = 0
    can_delete = False
    fields = ["number", "outcome", "started_at", "finished_at", "error", "remote_reference"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


class ExportJobInline(admin.TabularInline):
    """A document's export jobs, read-only; each opens on its attempts."""

    model = ExportJob
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ["installation", "status", "attempts", "next_attempt_at", "delivered_at", "error"]
    readonly_fields = fields

    @admin.display(description=_("last error"))
    def error(self, job):
        return Truncator(job.last_error).chars(100)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ExportJob)
class ExportJobAdmin(EnterpriseNumberSearch, admin.ModelAdmin):
    """Jobs are history and evidence of what was sent: operators retry them, never delete."""

    list_display = [
        "pk",
        "document",
        "firm",
        "client",
        "installation",
        "status",
        "attempts",
        "next_attempt_at",
        "error",
    ]
    list_filter = [
        "status",
        extension_filter("installation__connector"),
        FIRM,
        "installation",
        "created_at",
        "delivered_at",
    ]
    search_fields = [
        "document__number",
        "document__client__name",
        "document__client__enterprise_number",
        "document__client__vat_number",
        "remote_reference",
    ]
    date_hierarchy = "created_at"
    # integration__installation: a row's label (its checkbox) names the destination.
    list_select_related = [
        "document__client__partner",
        "installation",
        "integration__installation",
    ]
    readonly_fields = [f.name for f in ExportJob._meta.fields]
    inlines = [ExportAttemptInline]
    actions = ["retry_now", "resend"]

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    @admin.display(description=_("firm"), ordering="document__client__partner__name")
    def firm(self, job):
        return job.document.client.partner

    @admin.display(description=_("client"), ordering="document__client__name")
    def client(self, job):
        return job.document.client

    @admin.display(description=_("last error"))
    def error(self, job):
        return Truncator(job.last_error).chars(100)

    @admin.action(description=_("Retry the selected failed jobs now"), permissions=["change"])
    def retry_now(self, request, queryset):
        self._resend(request, queryset, queryset.filter(status__in=["failed", "dead"]))

    @admin.action(
        description=_("Re-send the selected delivered or failed jobs"), permissions=["change"]
    )
    def resend(self, request, queryset):
        self._resend(
            request, queryset, queryset.filter(status__in=["delivered", "dead", "failed"])
        )

    def _resend(self, request, selected, queryset):
        """Revive ``queryset``; the destinations of every selected job that waited for a
        person to fix them (waiting jobs among the selection) are tried again too."""
        # Destinations first: once revived, the jobs no longer match the status filter.
        integrations = Integration.objects.filter(jobs__in=selected).select_related("installation")
        destinations = {engine.destination_of(i) for i in integrations.distinct()}
        resumed = engine.resume(
            {d.installation_id for d in destinations}, {i.pk for i in integrations}
        )
        count = engine.revive(queryset)
        transaction.on_commit(lambda: tasks.enqueue(destinations))
        self.message_user(
            request,
            ngettext("%(count)d job queued.", "%(count)d jobs queued.", count) % {"count": count},
            messages.SUCCESS,
        )
        if resumed:
            self.message_user(
                request,
                ngettext(
                    "%(count)d destination that needed attention is tried again.",
                    "%(count)d destinations that needed attention are tried again.",
                    resumed,
                )
                % {"count": resumed},
                messages.SUCCESS,
            )


@admin.register(ExportAttempt)
class ExportAttemptAdmin(EnterpriseNumberSearch, admin.ModelAdmin):
    list_display = ["job", "number", "outcome", "started_at", "finished_at", "worker"]
    list_filter = [
        "outcome",
        extension_filter("job__installation__connector"),
        ("job__document__client__partner", admin.RelatedOnlyFieldListFilter),
        "started_at",
    ]
    search_fields = ["job__document__number", "job__document__client__enterprise_number"]
    list_select_related = ["job__document"]
    readonly_fields = [f.name for f in ExportAttempt._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
