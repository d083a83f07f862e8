"""Template helpers every page shares: a form's error summary and amounts as a firm
reads them."""

from django import template
from django.conf import settings

from partnerspace import amounts

register = template.Library()


@register.inclusion_tag("includes/error_summary.html")
def error_summary(*forms, error=""):
    """The errors of ``forms`` (None skipped) and ``error`` at the top of a form."""
    forms = [form for form in forms if form is not None]
    has_errors = bool(error) or any(form.errors for form in forms)
    return {"forms": forms, "error": error, "has_errors": has_errors}


@register.filter
def amount(value, currency=""):
    """``16,523.09 EUR`` / ``16.523,09 EUR`` / ``16 523,09 EUR`` in the page's language."""
    return amounts.format_amount(value, currency)


@register.inclusion_tag("includes/egress.html")
def egress_notice(connector):
    """For a destination on the firm's own server: the addresses to let through."""
    return {
        "shown": getattr(connector, "connects_to_firm_server", False),
        "addresses": list(getattr(settings, "EXPORT_EGRESS_IPS", None) or []),
    }
