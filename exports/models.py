"""Export jobs (one document to one integration) and the attempts made for them."""

import uuid

from django.db import models
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from clients.models import Document
from extensions.models import Installation, Integration
from partnerspace.tenancy import TenantQuerySet


class ExportJobQuerySet(TenantQuerySet):
    partner_path = "document__client__partner"


class ExportJob(models.Model):
    class Status(models.TextChoices):
        # A context of their own, so each language can agree them with "export".
        PENDING = "pending", pgettext_lazy("export status", "Waiting")
        RUNNING = "running", pgettext_lazy("export status", "Sending")
        DELIVERED = "delivered", pgettext_lazy("export status", "Delivered")
        FAILED = "failed", pgettext_lazy("export status", "Will retry")
        DEAD = "dead", pgettext_lazy("export status", "Failed")

    document = models.ForeignKey(
        Document, on_delete=models.CASCADE, related_name="export_jobs", verbose_name=_("document")
    )
    integration = models.ForeignKey(
        Integration,
        on_delete=models.CASCADE,
        related_name="jobs",
        verbose_name=_("integration"),
    )
    # The destination a batch is claimed for: copied from the integration at planning so
    # that claiming a month-end backlog is one indexed range, not a join per client.
    installation = models.ForeignKey(
        Installation, on_delete=models.CASCADE, related_name="jobs", verbose_name=_("destination")
    )
    status = models.CharField(_("status"), max_length=10, choices=Status, default=Status.PENDING)
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    # Times a person sent it again: part of the idempotency key, so that a receiver that
    # de-duplicates takes a re-send, while automatic retries of one send keep one key.
    resends = models.PositiveIntegerField(_("re-sends"), default=0)
    next_attempt_at = models.DateTimeField(_("next attempt"), null=True, blank=True)
    # Planned by a historic backfill: claimed after the jobs of new releases, so today's
    # documents never wait behind a backlog (the claim orders on it, within one index).
    backfill = models.BooleanField(_("backfill"), default=False)
    claim_token = models.UUIDField(null=True, blank=True, editable=False)
    claimed_at = models.DateTimeField(_("claimed at"), null=True, blank=True)
    lease_until = models.DateTimeField(_("lease until"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    remote_reference = models.CharField(_("remote reference"), max_length=500, blank=True)
    delivered_at = models.DateTimeField(_("delivered at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    objects = ExportJobQuerySet.as_manager()

    class Meta:
        verbose_name = _("export")
        verbose_name_plural = _("exports")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["document", "integration"], name="unique_export_per_document"
            )
        ]
        indexes = [
            models.Index(fields=["installation", "status", "next_attempt_at"]),
            models.Index(
                fields=["installation", "status", "backfill", "next_attempt_at"],
                name="exportjob_claim_order",
            ),
            models.Index(fields=["integration", "status"]),
            models.Index(fields=["status", "lease_until"]),
        ]

    def __str__(self):
        return f"{self.document} → {self.integration.installation}"

    @property
    def can_resend(self) -> bool:
        return self.status in (self.Status.DELIVERED, self.Status.DEAD)

    @property
    def idempotency_key(self) -> str:
        """The same on every attempt of one send; new after each re-send."""
        return f"{self.pk}-{self.resends}" if self.resends else str(self.pk)


class ExportAttempt(models.Model):
    class Outcome(models.TextChoices):
        DELIVERED = "delivered", _("Delivered")
        TRANSIENT = "transient", _("Temporary failure")
        PERMANENT = "permanent", _("Refused")
        REAUTHORIZE = "reauthorize", _("Reconnect needed")

    job = models.ForeignKey(
        ExportJob, on_delete=models.CASCADE, related_name="attempt_log", verbose_name=_("export")
    )
    number = models.PositiveIntegerField(_("attempt"))
    started_at = models.DateTimeField(_("started at"))
    finished_at = models.DateTimeField(_("finished at"))
    outcome = models.CharField(_("outcome"), max_length=12, choices=Outcome)
    error = models.TextField(_("error"), blank=True)
    remote_reference = models.CharField(_("remote reference"), max_length=500, blank=True)
    worker = models.CharField(_("worker"), max_length=100, blank=True)
    batch = models.UUIDField(_("batch"), default=uuid.uuid4, editable=False)

    class Meta:
        verbose_name = _("export attempt")
        verbose_name_plural = _("export attempts")
        ordering = ["job", "number"]

    def __str__(self):
        return f"{self.job_id} #{self.number} {self.outcome}"


class DeliverySlot(models.Model):
    """One of the connections an installation allows at once, whichever of its clients
    it serves; a worker holds it while sending.

    ``scope`` is 0: the installation's connections are shared by all its clients, even
    when each has a connection of its own (per-client credentials).
    """

    installation = models.ForeignKey(Installation, on_delete=models.CASCADE, related_name="+")
    scope = models.PositiveBigIntegerField(default=0)
    number = models.PositiveSmallIntegerField()
    holder = models.UUIDField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["installation", "scope", "number"], name="unique_delivery_slot"
            )
        ]

    def __str__(self):
        return f"{self.installation_id}/{self.scope} #{self.number}"


class DeliveryWake(models.Model):
    """Whether a delivery task is already queued for a destination, so releases coalesce."""

    installation = models.ForeignKey(Installation, on_delete=models.CASCADE, related_name="+")
    scope = models.PositiveBigIntegerField(default=0)
    queued_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["installation", "scope"], name="unique_delivery_wake")
        ]

    def __str__(self):
        return f"{self.installation_id}/{self.scope}"


class FailureDigest(models.Model):
    """Up to when a firm's owners were sent the failed exports (``exports.digest``): the
    next digest lists only what failed since."""

    partner = models.OneToOneField(
        "partnerspace.Partner",
        on_delete=models.CASCADE,
        related_name="+",
        verbose_name=_("firm"),
    )
    sent_until = models.DateTimeField(_("failed exports sent until"))

    class Meta:
        verbose_name = _("failed exports digest")
        verbose_name_plural = _("failed exports digests")

    def __str__(self):
        return f"{self.partner_id} until {self.sent_until:%Y-%m-%d %H:%M}"
