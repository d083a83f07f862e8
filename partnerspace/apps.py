from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class PartnerSpaceConfig(AppConfig):
    name = "partnerspace"
    verbose_name = _("Partner Space")

    def ready(self):
        from django.contrib.auth.signals import user_logged_in, user_logged_out

        from partnerspace import signin

        user_logged_in.connect(signin.remember_session, dispatch_uid="partnerspace.sessions")
        user_logged_out.connect(signin.end_all_sessions, dispatch_uid="partnerspace.sessions")
