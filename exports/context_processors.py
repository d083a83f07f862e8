"""The banner on every page of the firm while something of its exports needs a person."""

from django.utils.functional import SimpleLazyObject

from exports import health


def health_banner(request):
    def load():
        partner = getattr(request, "partner", None)
        if not partner:
            return []
        return health.banner_items(partner)

    # Lazy: one query, only on pages that render the banner (base.html does).
    return {"health_banner": SimpleLazyObject(load)}
