"""Forms around the connectors' own: naming an installation, its output format, choosing
document types."""

from django import forms
from django.core import signing
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from clients.models import Document
from extensions import formats

CONFIRMATION_SALT = "extensions.confirmation"


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

    def __init__(self, *args, terms_url="", formats_offered=(), **kwargs):
        super().__init__(*args, **kwargs)
        # The format is the shared code's, not each connector's: a choice only when there is
        # one to make, else a fact the page states.
        self.format_fact = ""
        if len(formats_offered) > 1:
            self.fields["format"] = forms.ChoiceField(
                label=_("File format"),
                choices=[(key, formats.label(key)) for key in formats_offered],
                initial=formats_offered[0],
                help_text=_("Transaction reports (CODA) are always sent as they are."),
                error_messages={
                    "invalid_choice": _("Choose one of the formats this extension offers.")
                },
            )
        elif formats_offered:
            self.format_fact = _("Files are sent as %(format)s.") % {
                "format": formats.label(formats_offered[0])
            }
        if terms_url:
            self.fields["accept_terms"] = forms.BooleanField(
                label=_("I accept the terms of this extension"),
                required=True,
                help_text=format_html(
                    '<a href="{}" target="_blank" rel="noopener noreferrer">{}</a>',
                    terms_url,
                    _("Read the terms"),
                ),
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


def sign_update(update: dict) -> str:
    """What a person saw and accepted travels back signed, so it cannot be swapped."""
    return signing.dumps(update, salt=CONFIRMATION_SALT)


def unsign_update(token: str) -> dict | None:
    try:
        return signing.loads(token, salt=CONFIRMATION_SALT, max_age=3600)
    except signing.BadSignature:
        return None
