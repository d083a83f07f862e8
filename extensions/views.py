"""The Store and the Integrations tab."""

from django.shortcuts import get_object_or_404, render

from clients.models import Client
from partnerspace.tenancy import partner_required


@partner_required
def store(request):
    return render(request, "extensions/store.html")


@partner_required
def client_integrations(request, client_pk):
    client = get_object_or_404(Client.objects.for_partner(request.partner), pk=client_pk)
    return render(
        request, "extensions/client_integrations.html", {"client": client, "tab": "integrations"}
    )
