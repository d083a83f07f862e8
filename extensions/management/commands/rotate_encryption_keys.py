"""``manage.py rotate_encryption_keys``: re-encrypt every secret under the first key.

Rotation: put the new key first in FIELD_ENCRYPTION_KEYS (keep the old ones after it), run
this command, then remove the old keys.
"""

from django.apps import apps
from django.core.management.base import BaseCommand, CommandError

from extensions import crypto


class Command(BaseCommand):
    help = (
        "Re-encrypt every EncryptedJSONField value of every installed model under the first "
        "key of FIELD_ENCRYPTION_KEYS, so that the other keys can be removed."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "labels",
            nargs="*",
            metavar="app_label[.ModelName]",
            help="Only these apps or models (default: every installed model).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Check that every value can be decrypted and count them; write nothing.",
        )
        parser.add_argument("--batch-size", type=int, default=500)
        parser.add_argument("--database", default="default")

    def handle(self, *args, labels=(), dry_run=False, batch_size=500, database="default", **kw):
        if batch_size < 1:
            raise CommandError("--batch-size must be at least 1.")
        verb = "would be re-encrypted" if dry_run else "re-encrypted"
        total = 0
        for model in self._models(labels):
            queryset = model._base_manager.using(database).all()
            try:
                count = crypto.rotate(queryset, batch_size=batch_size, dry_run=dry_run)
            except crypto.DecryptionError as error:
                raise CommandError(str(error)) from None
            total += count
            self.stdout.write(f"{model._meta.label}: {count} row(s) {verb}")
        self.stdout.write(self.style.SUCCESS(f"Total: {total} row(s) {verb}."))

    def _models(self, labels):
        if not labels:
            return crypto.encrypted_models()
        models = []
        for label in labels:
            try:
                if "." in label:
                    found = [apps.get_model(label)]
                else:
                    found = list(apps.get_app_config(label).get_models())
            except LookupError as error:
                raise CommandError(str(error)) from None
            encrypted = crypto.encrypted_models(found)
            if not encrypted:
                raise CommandError(f"{label} has no model with an EncryptedJSONField.")
            models += [model for model in encrypted if model not in models]
        return models
