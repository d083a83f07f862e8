"""Forms around the connectors' own: naming an installation, choosing document types."""

from django import forms
from django.core import signing
from django.utils.translation import gettext_lazy as _

from clients.models import Document

PIN_SALT = "extensions.host-key-pin"


class InstallationForm(forms.Form):
    name = forms.CharField(
        label=_("Name"),
        max_length=100,
        help_text=_("Tells this installation apart, e.g. the server it sends to."),
    )
    connections = forms.IntegerField(
        label=_("Parallel connections"),
        min_value=1,
        max_value=16,
        initial=4,
        help_text=_(
            "How many connections exports may open to the destination at once. More is "
            "faster at month end, if the server allows it."
        ),
    )

    def __init__(self, *args, terms_url="", **kwargs):
        super().__init__(*args, **kwargs)
        if terms_url:
            self.fields["accept_terms"] = forms.BooleanField(
                label=_("I accept the terms of this extension"), required=True
            )


class CategoriesForm(forms.Form):
    categories = forms.MultipleChoiceField(
        label=_("Document types to export"),
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": _("Choose at least one document type.")},
    )

    def __init__(self, *args, accepts=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["categories"].choices = [
            (value, label) for value, label in Document.Category.choices if value in accepts
        ]


def sign_pin(pin: dict) -> str:
    """A host key the user saw and accepted travels back signed, so it cannot be swapped."""
    return signing.dumps(pin, salt=PIN_SALT)


def unsign_pin(token: str) -> dict | None:
    try:
        return signing.loads(token, salt=PIN_SALT, max_age=3600)
    except signing.BadSignature:
        return None
