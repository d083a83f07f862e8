"""A client's integration: "Also export documents released since …", then a confirmation.

Daily work, like a re-send: owners and members may. Nothing is planned until the person
has seen, per category, how many documents that is and how many were already exported.
"""

from django import forms
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, ngettext

from clients.models import Client
from exports import backfill
from extensions.models import Integration
from partnerspace.tenancy import partner_required

DATE_FORMATS = ["%Y-%m-%d", "%d/%m/%Y"]


class BackfillForm(forms.Form):
    since = forms.DateField(
        label=gettext_lazy("Also export documents released since"),
        input_formats=DATE_FORMATS,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )
    until = forms.DateField(
        label=gettext_lazy("Up to and including (optional)"),
        required=False,
        input_formats=DATE_FORMATS,
        widget=forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
    )

    def clean(self):
        cleaned = super().clean()
        since, until = cleaned.get("since"), cleaned.get("until")
        if since and until and until < since:
            self.add_error("until", _("This date is before the first date."))
        return cleaned


@partner_required
def backfill_integration(request, client_pk, integration_pk):
    client = get_object_or_404(Client.objects.for_partner(request.partner), pk=client_pk)
    integration = get_object_or_404(
        Integration.objects.current().filter(client=client).select_related("installation"),
        pk=integration_pk,
    )
    data = request.POST if request.method == "POST" else (request.GET or None)
    form = BackfillForm(data)
    if data is None or not form.is_valid():
        return render(
            request,
            "extensions/backfill.html",
            {"client": client, "integration": integration, "form": form, "tab": "integrations"},
            status=400 if data is not None else 200,
        )
    since, until = form.cleaned_data["since"], form.cleaned_data["until"]
    if request.method == "POST":
        counts = backfill.plan(integration, since, until)
        planned = sum(c.planned for c in counts)
        messages.success(
            request,
            ngettext(
                "%(count)d document will be exported to %(name)s.",
                "%(count)d documents will be exported to %(name)s.",
                planned,
            )
            % {"count": planned, "name": integration.installation.name},
        )
        return redirect("integrations:list", client_pk=client.pk)
    counts = backfill.survey(integration, since, until)
    return render(
        request,
        "extensions/backfill_confirm.html",
        {
            "client": client,
            "integration": integration,
            "form": form,
            "since": since,
            "until": until,
            "counts": counts,
            "missing": sum(c.missing for c in counts),
            "tab": "integrations",
        },
    )
