"""The accounting firm (Partner) and who works in it (Membership)."""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from partnerspace.enterprise import EnterpriseNumberField


class Partner(models.Model):
    name = models.CharField(_("name"), max_length=200)
    enterprise_number = EnterpriseNumberField(_("enterprise number"), unique=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="partners"
    )

    class Meta:
        verbose_name = _("accounting firm")
        verbose_name_plural = _("accounting firms")
        ordering = ["name"]

    def __str__(self):
        return self.name


class Membership(models.Model):
    class Role(models.TextChoices):
        OWNER = "owner", _("Owner")
        MEMBER = "member", _("Member")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="memberships",
        verbose_name=_("user"),
    )
    partner = models.ForeignKey(
        Partner, on_delete=models.CASCADE, related_name="memberships", verbose_name=_("firm")
    )
    role = models.CharField(_("role"), max_length=10, choices=Role, default=Role.MEMBER)
    # What an owner receives by e-mail, and in which language (blank: the portal's).
    notice_language = models.CharField(
        _("language of e-mails"), max_length=10, choices=settings.LANGUAGES, blank=True
    )
    notify_problems = models.BooleanField(
        _("e-mail me when an export stops or recovers"), default=True
    )
    notify_digest = models.BooleanField(
        _("e-mail me a daily list of failed exports"), default=True
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("membership")
        verbose_name_plural = _("memberships")
        constraints = [
            models.UniqueConstraint(fields=["user", "partner"], name="unique_membership")
        ]
        ordering = ["partner__name"]

    def __str__(self):
        return f"{self.user} @ {self.partner} ({self.get_role_display()})"

    @property
    def is_owner(self) -> bool:
        return self.role == self.Role.OWNER

    @property
    def language(self) -> str:
        """The language e-mails to this person are written in."""
        return self.notice_language or settings.LANGUAGE_CODE


class SignedInSession(models.Model):
    """A session a user signed in with: signing out ends all of them, on every device."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="signed_in_sessions",
        verbose_name=_("user"),
    )
    session_key = models.CharField(_("session key"), max_length=40, unique=True)
    created_at = models.DateTimeField(_("signed in at"), auto_now_add=True)

    class Meta:
        verbose_name = _("signed-in session")
        verbose_name_plural = _("signed-in sessions")

    def __str__(self):
        return f"{self.user} ({self.created_at:%Y-%m-%d %H:%M})"
