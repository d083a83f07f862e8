"""Response headers the portal adds on top of Django's security middleware."""

from django.utils.cache import patch_cache_control


class PrivateNoStoreMiddleware:
    """Nothing shown to a signed-in user may be kept by a browser cache or a shared proxy.

    Firms' documents and clients would otherwise stay on disk (or in a proxy) after sign-out.
    Static files never get here (whitenoise answers them first), so they stay cacheable.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            patch_cache_control(response, private=True, no_store=True)
        return response
