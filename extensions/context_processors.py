"""The firm's installed extensions, for the app launcher on every page."""

from django.utils.functional import SimpleLazyObject

from extensions.models import Installation


def installed_extensions(request):
    def load():
        partner = getattr(request, "partner", None)
        if not partner:
            return []
        return list(
            Installation.objects.for_partner(partner).installed().only("pk", "name", "connector")
        )

    # Lazy: only pages that render the launcher pay for the query.
    return {"installed_extensions": SimpleLazyObject(load)}
