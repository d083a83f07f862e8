"""manage.py exports_status: how many export jobs per status, per installed extension."""

import json

from django.core.management.base import BaseCommand
from django.db.models import Count

from exports.models import ExportJob


class Command(BaseCommand):
    help = "Count export jobs per status for each installed extension."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="Machine-readable output.")

    def handle(self, *args, **options):
        rows = (
            ExportJob.objects.values(
                "installation_id",
                "installation__name",
                "installation__partner__name",
                "installation__connector",
                "status",
            )
            .annotate(n=Count("pk"))
            .order_by("installation__partner__name", "installation__name", "installation_id")
        )
        statuses = list(ExportJob.Status.values)
        table = {}
        for row in rows:
            entry = table.setdefault(
                row["installation_id"],
                {
                    "installation": row["installation_id"],
                    "name": row["installation__name"],
                    "firm": row["installation__partner__name"],
                    "connector": row["installation__connector"],
                    **dict.fromkeys(statuses, 0),
                },
            )
            entry[row["status"]] = row["n"]
        if options["json"]:
            self.stdout.write(json.dumps(list(table.values()), indent=2))
            return
        header = ["id", "firm", "installation", "connector", *statuses]
        lines = [header] + [
            [
                str(e["installation"]),
                e["firm"],
                e["name"],
                e["connector"],
                *(str(e[s]) for s in statuses),
            ]
            for e in table.values()
        ]
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        for line in lines:
            self.stdout.write(
                "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True))
            )
        if not table:
            self.stdout.write("No export jobs yet.")
