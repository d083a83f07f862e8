"""Installed extensions (one firm, one connector) and their per-client integrations."""

from django.conf import settings as django_settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from clients.models import Client
from extensions import registry
from extensions.connectors.base import ReauthorizationRequired
from extensions.credentials import Credentials
from extensions.crypto import EncryptedJSONField
from partnerspace.models import Partner
from partnerspace.tenancy import TenantQuerySet


class InstallationQuerySet(TenantQuerySet):
    partner_path = "partner"

    def installed(self):
        return self.filter(removed_at__isnull=True)


# What the Manage page changes on an installation, besides its secrets.
CONFIGURATION_FIELDS = ("name", "connections", "settings", "status", "last_error")


class Installation(models.Model):
    class Status(models.TextChoices):
        OK = "ok", _("Working")
        FAILING = "failing", _("Failing")
        RECONNECT = "reconnect", _("Reconnect needed")
        ATTENTION = "attention", _("Needs attention")

    partner = models.ForeignKey(
        Partner, on_delete=models.CASCADE, related_name="installations", verbose_name=_("firm")
    )
    # No choices=: a new connector is one module and one registry line, no migration.
    connector = models.CharField(_("extension"), max_length=50)
    name = models.CharField(_("name"), max_length=100)
    settings = models.JSONField(_("settings"), default=dict, blank=True)
    secrets = EncryptedJSONField(_("secrets"), default=dict, blank=True)
    # The connector's binding of the settings the secrets were entered with.
    secrets_binding = models.JSONField(_("secrets entered for"), default=dict, blank=True)
    active = models.BooleanField(_("active"), default=True)
    connections = models.PositiveSmallIntegerField(
        _("parallel connections"),
        default=4,
        validators=[MinValueValidator(1), MaxValueValidator(16)],
        help_text=_("How many connections exports may open to this destination at once."),
    )
    status = models.CharField(_("status"), max_length=10, choices=Status, default=Status.OK)
    last_error = models.TextField(_("last error"), blank=True)
    # The state the owners were last told about (extensions.notices): one e-mail a change.
    notified_state = models.CharField(
        _("state the owners were told"), max_length=10, default="ok", editable=False
    )
    installed_by = models.ForeignKey(
        django_settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("installed by"),
    )
    installed_at = models.DateTimeField(_("installed at"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)
    removed_at = models.DateTimeField(_("uninstalled at"), null=True, blank=True)

    objects = InstallationQuerySet.as_manager()

    class Meta:
        verbose_name = _("installed extension")
        verbose_name_plural = _("installed extensions")
        ordering = ["name", "pk"]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        if self.secrets and not self.secrets_binding and self.connector_class is not None:
            # First secrets of this row (created in a shell or a fixture): entered for the
            # settings they arrive with.
            self.secrets_binding = self.connector_class.binding(self.settings)
            if kwargs.get("update_fields") is not None:
                kwargs["update_fields"] = {*kwargs["update_fields"], "secrets_binding"}
        super().save(*args, **kwargs)

    def get_absolute_url(self):
        return reverse("store:manage", kwargs={"installation_pk": self.pk})

    @property
    def connector_class(self):
        return registry.get(self.connector)

    def set_secrets(self, secrets: dict) -> None:
        """Store ``secrets`` as entered for the destination the settings name now."""
        before = {} if self.pk is None else self.secrets
        self.typed_secrets = {k: v for k, v in secrets.items() if before.get(k) != v}
        self.dropped_secrets = set(before) - set(secrets)
        self.secrets = secrets
        self.secrets_binding = self.connector_class.binding(self.settings)

    def save_configuration(self) -> None:
        """Save what a person configured. Of the secrets, only what they typed or dropped:
        a worker may have renewed others since this row was read (``credentials``)."""
        if self.pk is None:
            self.save()
            return
        self.save(update_fields=[*CONFIGURATION_FIELDS, "secrets_binding", "updated_at"])
        typed, dropped = getattr(self, "typed_secrets", {}), getattr(self, "dropped_secrets", ())
        if typed or dropped:
            self.credentials.save(typed, dropped)

    @property
    def secrets_fit_settings(self) -> bool:
        """False when the settings point elsewhere than where the secrets were entered."""
        return not self.secrets or self.secrets_binding == self.connector_class.binding(
            self.settings
        )

    @property
    def credentials(self):
        """The handle a connector refreshes and saves its secrets through."""
        return Credentials(self)

    def connector_instance(self):
        """The connector, refusing to hand it secrets entered for another destination."""
        if not self.secrets_fit_settings:
            raise ReauthorizationRequired(
                _(
                    "The destination changed since its credentials were entered: enter them "
                    "again on the extension's Manage page."
                )
            )
        return self.connector_class(self)

    @property
    def is_installed(self) -> bool:
        return self.removed_at is None

    # Waiting for a person (credentials, or the destination's own configuration): no
    # worker or sweeper tries until a successful check or a retry sets the status back.
    WAITING_FOR_A_PERSON = (Status.RECONNECT, Status.ATTENTION)

    @property
    def needs_a_person(self) -> bool:
        return self.status in self.WAITING_FOR_A_PERSON

    @property
    def can_export(self) -> bool:
        return self.active and self.is_installed and self.status not in self.WAITING_FOR_A_PERSON


class IntegrationQuerySet(TenantQuerySet):
    partner_path = "client__partner"

    def current(self):
        return self.filter(removed_at__isnull=True, installation__removed_at__isnull=True)

    def wait_for_a_person(self, status, reason: str) -> int:
        """Stop these integrations until a person acts; ``status_since`` moves only for
        those entering ``status``, so it keeps saying since when they wait."""
        self.exclude(status=status).update(status=status, status_since=timezone.now())
        return self.update(last_error=reason[:2000])

    def resume(self) -> int:
        """Those that waited for a person may send again (a check passed, settings edited)."""
        return self.filter(status__in=Integration.WAITING_FOR_A_PERSON).update(
            status=Integration.Status.OK, status_since=timezone.now(), last_error=""
        )


class Integration(models.Model):
    # Failing is not a status of its own: it is read from ``consecutive_failures``, which
    # every attempt already keeps and every delivery resets, so it cannot go stale.
    class Status(models.TextChoices):
        OK = "ok", _("Working")
        RECONNECT = "reconnect", _("Reconnect needed")
        ATTENTION = "attention", _("Needs attention")

    client = models.ForeignKey(
        Client, on_delete=models.CASCADE, related_name="integrations", verbose_name=_("client")
    )
    installation = models.ForeignKey(
        Installation,
        on_delete=models.CASCADE,
        related_name="integrations",
        verbose_name=_("installed extension"),
    )
    categories = models.JSONField(
        _("document types"), default=list, help_text=_("Document categories to export.")
    )
    client_settings = models.JSONField(_("client settings"), default=dict, blank=True)
    client_secrets = EncryptedJSONField(_("client secrets"), default=dict, blank=True)
    active = models.BooleanField(_("active"), default=True)
    activated_at = models.DateTimeField(_("activated at"), default=timezone.now)
    last_success_at = models.DateTimeField(_("last export"), null=True, blank=True)
    last_failure_at = models.DateTimeField(_("last failure"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    consecutive_failures = models.PositiveIntegerField(_("consecutive failures"), default=0)
    # Its own status, for what only this client's settings or credentials cause; the
    # installation's applies to every client on top of it.
    status = models.CharField(_("status"), max_length=10, choices=Status, default=Status.OK)
    status_since = models.DateTimeField(_("status since"), default=timezone.now)
    # The state the owners were last told about (extensions.notices): one e-mail a change.
    notified_state = models.CharField(
        _("state the owners were told"), max_length=10, default="ok", editable=False
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    removed_at = models.DateTimeField(_("removed at"), null=True, blank=True)

    objects = IntegrationQuerySet.as_manager()

    class Meta:
        verbose_name = _("integration")
        verbose_name_plural = _("integrations")
        ordering = ["installation__name", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["client", "installation"], name="unique_integration_per_client"
            )
        ]

    def __str__(self):
        return f"{self.client} → {self.installation}"

    def get_absolute_url(self):
        return reverse("integrations:list", kwargs={"client_pk": self.client_id})

    @property
    def is_current(self) -> bool:
        return self.removed_at is None and self.installation.removed_at is None

    # As for installations: no worker or sweeper tries until a person acts.
    WAITING_FOR_A_PERSON = (Status.RECONNECT, Status.ATTENTION)

    @property
    def needs_a_person(self) -> bool:
        return self.status in self.WAITING_FOR_A_PERSON

    def connector_destination(self) -> "IntegrationDestination":
        return IntegrationDestination(self.installation, self)

    def takes(self, category: str) -> bool:
        connector = self.installation.connector_class
        return (
            category in self.categories
            and connector is not None
            and (category in connector.accepted(self.installation.settings))
        )


class IntegrationDestination:
    """What a connector sees of one client: the installation's settings and secrets with
    the integration's over them, and the integration's secrets to refresh (per-client
    credentials)."""

    def __init__(self, installation, integration):
        self.pk = installation.pk
        self.settings = {**installation.settings, **integration.client_settings}
        self.secrets = {**installation.secrets, **integration.client_secrets}
        self.credentials = Credentials(integration, "client_secrets")
