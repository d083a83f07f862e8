from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from clients.errors import IntakeError
from clients.intake import ingest_file
from clients.models import Client, Document
from clients.release import release
from exports.admin import ExportJobInline
from extensions.admin import IntegrationInline, extension_filter
from partnerspace.admin import EnterpriseNumberSearch


@admin.register(Client)
class ClientAdmin(EnterpriseNumberSearch, admin.ModelAdmin):
    list_display = ["name", "partner", "enterprise_number", "vat_number", "external_id"]
    list_filter = ["partner"]
    search_fields = ["name", "enterprise_number", "vat_number", "external_id"]
    autocomplete_fields = ["partner"]
    inlines = [IntegrationInline]


class DocumentUploadForm(forms.ModelForm):
    """Uploading goes through intake, so the admin refuses what import_documents refuses."""

    upload = forms.FileField(label=_("File (UBL invoice or CODA statement)"))
    category_choice = forms.ChoiceField(
        label=_("Category"),
        required=False,
        choices=[("", _("Infer from the file")), *Document.Category.choices],
    )

    class Meta:
        model = Document
        fields = ["client"]

    def clean(self):
        cleaned = super().clean()
        client, upload = cleaned.get("client"), cleaned.get("upload")
        if client and upload:
            try:
                self.results = ingest_file(
                    client,
                    upload.name,
                    upload,
                    size=upload.size,
                    category=cleaned.get("category_choice") or None,
                )
            except IntakeError as exc:
                raise ValidationError(exc.problems) from None
        return cleaned


@admin.register(Document)
class DocumentAdmin(EnterpriseNumberSearch, admin.ModelAdmin):
    list_display = [
        "number",
        "client",
        "category",
        "kind",
        "status",
        "issue_date",
        "payable_amount",
        "received_at",
        "released_at",
    ]
    list_filter = [
        "status",
        "category",
        "kind",
        extension_filter("export_jobs__installation__connector"),
        ("client__partner", admin.RelatedOnlyFieldListFilter),
        "received_at",
    ]
    search_fields = [
        "number",
        "supplier_name",
        "customer_name",
        "client__name",
        "client__enterprise_number",
        "client__vat_number",
        "sha256",
    ]
    list_select_related = ["client"]
    date_hierarchy = "received_at"
    actions = ["release_selected"]
    autocomplete_fields = ["client"]

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return []
        return [f.name for f in Document._meta.fields]

    def get_inlines(self, request, obj):
        return [] if obj is None else [ExportJobInline]

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = DocumentUploadForm
        return super().get_form(request, obj, **kwargs)

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["client", "upload", "category_choice"]
        return super().get_fields(request, obj)

    def save_form(self, request, form, change):
        if change:
            return super().save_form(request, form, change)
        created = [result.document for result in form.results if result.created]
        duplicates = len(form.results) - len(created)
        if len(form.results) > 1:
            messages.info(
                request,
                ngettext(
                    "The file held %(count)d statement.",
                    "The file held %(count)d statements.",
                    len(form.results),
                )
                % {"count": len(form.results)},
            )
        if duplicates:
            messages.warning(
                request,
                ngettext(
                    "%(count)d document was already stored for this client.",
                    "%(count)d documents were already stored for this client.",
                    duplicates,
                )
                % {"count": duplicates},
            )
        return (created or [form.results[0].document])[0]

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        if change:
            super().save_related(request, form, formsets, change)

    @admin.action(
        description=_("Approve, send or publish the selected documents"), permissions=["change"]
    )
    def release_selected(self, request, queryset):
        released = sum(release(document) for document in queryset)
        self.message_user(
            request,
            ngettext("%(count)d document released.", "%(count)d documents released.", released)
            % {"count": released},
            messages.SUCCESS,
        )
