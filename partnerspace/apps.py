from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PartnerSpaceConfig(AppConfig):
    name = "partnerspace"
    verbose_name = _("Partner Space")
