"""What the cloud drives (Google Drive, Dropbox, OneDrive) share, as the product's guides
describe them: files land in ``Invoice_import/<Company name>_<VAT>/AP|AR/`` (approved
purchase invoices, sent sales invoices), transaction reports (CODA) only when the
installation enables them, in ``…/CODA/``; a client's integration asks nothing more; the
signed-in account is shown on Manage.
"""

from django import forms
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from extensions.connectors.base import PURCHASE, REPORT, SALES, Connector, ConnectorForm

ROOT_FOLDER = "Invoice_import"
SUBFOLDERS = {PURCHASE: "AP", SALES: "AR", REPORT: "CODA"}
# A drive's rate limit is waited out on the connection up to this many seconds a request
# (``extensions.api.ApiClient(rate_limit_wait=...)``); longer ones go to the engine.
RATE_LIMIT_WAIT_SECONDS = 10.0


class CloudDriveSettingsForm(ConnectorForm):
    include_reports = forms.BooleanField(
        label=gettext_lazy("Also export transaction reports (CODA)"),
        required=False,
        help_text=gettext_lazy("They go to the CODA folder of each client."),
    )


class CloudDrive(Connector):
    """Base of the cloud drives: their folders, the reports switch, the account shown."""

    category = "storage"
    settings_form = CloudDriveSettingsForm

    @classmethod
    def accepted(cls, settings):
        if settings.get("include_reports"):
            return cls.accepts
        return cls.accepts - {REPORT}

    def folder_template(self, client_settings, category):
        return f"{ROOT_FOLDER}/[company_name]_[vat_number]/{SUBFOLDERS[category]}/"

    def facts(self):
        account = self.destination.settings.get("account")
        return [(_("Connected as"), account)] if account else []
