"""Client companies of a firm and their documents."""

import hashlib

from django.db import models
from django.urls import reverse
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from partnerspace.enterprise import EnterpriseNumberField, VatNumberField
from partnerspace.models import Partner
from partnerspace.tenancy import TenantQuerySet


class ClientQuerySet(TenantQuerySet):
    partner_path = "partner"


class Client(models.Model):
    partner = models.ForeignKey(
        Partner, on_delete=models.CASCADE, related_name="clients", verbose_name=_("firm")
    )
    name = models.CharField(_("name"), max_length=200)
    enterprise_number = EnterpriseNumberField(_("enterprise number"))
    vat_number = VatNumberField(_("VAT number"), blank=True)
    external_id = models.CharField(
        _("external id"),
        max_length=64,
        blank=True,
        help_text=_("The firm's own reference for this client, usable in upload paths."),
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    objects = ClientQuerySet.as_manager()

    class Meta:
        verbose_name = _("client")
        verbose_name_plural = _("clients")
        ordering = ["name", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["partner", "enterprise_number"], name="unique_client_enterprise_number"
            )
        ]
        indexes = [models.Index(fields=["partner", "name"])]

    def __str__(self):
        return self.name

    def get_absolute_url(self):
        return reverse("clients:detail", kwargs={"client_pk": self.pk})

    def identifiers(self) -> set[str]:
        """What an invoice may use to name this company: enterprise or VAT number."""
        ids = {self.enterprise_number, "BE" + self.enterprise_number}
        if self.vat_number:
            ids.add(self.vat_number)
        return ids


def document_path(document, filename):
    """Stored under the content hash: stable, unique per client, no user text in the path."""
    extension = ".cod" if document.category == Document.Category.REPORT else ".xml"
    client = document.client
    return f"documents/{client.partner_id}/{client.pk}/{document.sha256}{extension}"


class DocumentQuerySet(TenantQuerySet):
    partner_path = "client__partner"


class Document(models.Model):
    class Category(models.TextChoices):
        PURCHASE = "purchase", _("Purchase invoice")
        SALES = "sales", _("Sales invoice")
        REPORT = "report", _("Transaction report")

    class Kind(models.TextChoices):
        INVOICE = "invoice", _("Invoice")
        CREDIT_NOTE = "credit_note", _("Credit note")
        STATEMENT = "statement", _("Statement")

    class Status(models.TextChoices):
        # A context of their own, so each language can agree them with "document"
        # (French: « Approuvée », « Envoyée »).
        RECEIVED = "received", pgettext_lazy("document status", "Received")
        APPROVED = "approved", pgettext_lazy("document status", "Approved")
        DRAFT = "draft", pgettext_lazy("document status", "Draft")
        SENT = "sent", pgettext_lazy("document status", "Sent")
        PUBLISHED = "published", pgettext_lazy("document status", "Published")

    client = models.ForeignKey(
        Client, on_delete=models.CASCADE, related_name="documents", verbose_name=_("client")
    )
    category = models.CharField(_("category"), max_length=10, choices=Category)
    kind = models.CharField(_("kind"), max_length=12, choices=Kind)
    status = models.CharField(_("status"), max_length=10, choices=Status)
    number = models.CharField(_("number"), max_length=100, blank=True)
    issue_date = models.DateField(_("issue date"), null=True, blank=True)
    due_date = models.DateField(_("due date"), null=True, blank=True)
    supplier_name = models.CharField(_("supplier"), max_length=200, blank=True)
    supplier_id = models.CharField(_("supplier identifier"), max_length=50, blank=True)
    customer_name = models.CharField(_("customer"), max_length=200, blank=True)
    customer_id = models.CharField(_("customer identifier"), max_length=50, blank=True)
    currency = models.CharField(_("currency"), max_length=3, blank=True)
    total_without_tax = models.DecimalField(
        _("total without tax"), max_digits=15, decimal_places=2, null=True, blank=True
    )
    tax_total = models.DecimalField(
        _("tax"), max_digits=15, decimal_places=2, null=True, blank=True
    )
    payable_amount = models.DecimalField(
        _("amount payable"), max_digits=15, decimal_places=2, null=True, blank=True
    )
    details = models.JSONField(
        _("details"),
        default=dict,
        blank=True,
        help_text=_("Format-specific fields, such as a statement's account and balances."),
    )
    file = models.FileField(_("original file"), upload_to=document_path, max_length=255)
    original_name = models.CharField(_("file name"), max_length=255)
    content_type = models.CharField(_("content type"), max_length=100)
    size = models.PositiveIntegerField(_("size in bytes"))
    sha256 = models.CharField(_("SHA-256"), max_length=64)
    # What makes two files the same document whatever their bytes (see ``meaning_key``).
    meaning = models.CharField(_("same-document key"), max_length=64, blank=True)
    received_at = models.DateTimeField(_("received at"), auto_now_add=True, db_index=True)
    released_at = models.DateTimeField(_("released at"), null=True, blank=True, db_index=True)

    objects = DocumentQuerySet.as_manager()

    class Meta:
        verbose_name = _("document")
        verbose_name_plural = _("documents")
        ordering = ["-received_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["client", "sha256"], name="unique_document_per_client"
            ),
            models.UniqueConstraint(
                fields=["client", "meaning"],
                condition=~models.Q(meaning=""),
                name="unique_document_meaning_per_client",
            ),
        ]
        indexes = [
            models.Index(fields=["client", "category", "status"]),
            models.Index(fields=["client", "released_at"]),
            models.Index(fields=["client", "received_at"]),
        ]

    def __str__(self):
        return f"{self.get_category_display()} {self.number or self.pk}"

    def get_absolute_url(self):
        return reverse("clients:documents", kwargs={"client_pk": self.client_id})

    @property
    def is_released(self) -> bool:
        return self.released_at is not None

    def meaning_key(self) -> str:
        return meaning_of(self)


def meaning_of(document) -> str:
    """Two files are one document when this matches, whatever their bytes: a statement by
    account, sequence number and new-balance date; an invoice or credit note by supplier,
    kind, number and issue date. "" when a part is unknown."""
    if not document.number or document.issue_date is None:
        return ""
    if document.category == "report":
        account = "".join(str((document.details or {}).get("account", "")).split()).upper()
        if not account:
            return ""
        parts = ["statement", account]
    else:
        name = " ".join(document.supplier_name.split()).casefold()
        parts = [document.kind, document.supplier_id or "name:" + name]
    parts += [document.number.strip(), document.issue_date.isoformat()]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
