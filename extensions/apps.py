from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ExtensionsConfig(AppConfig):
    name = "extensions"
    verbose_name = _("Extensions")

    def ready(self):
        from django.core import checks

        from extensions.signin import check_app_credentials

        checks.register(check_app_credentials)
