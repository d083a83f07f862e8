from django.apps import AppConfig
from django.db.models.signals import post_migrate
from django.utils.translation import gettext_lazy as _


class ExportsConfig(AppConfig):
    name = "exports"
    verbose_name = _("Exports")

    def ready(self):
        from exports import digest, receivers, tasks  # noqa: F401 - connects the release hook

        post_migrate.connect(tasks.ensure_schedule, sender=self)
        post_migrate.connect(digest.ensure_schedule, sender=self)
