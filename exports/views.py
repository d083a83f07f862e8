"""Re-sending one export of a document, from its Documents tab row."""

from django.contrib import messages
from django.db import transaction
from django.http import HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect
from django.utils.translation import gettext as _

from exports import engine, tasks
from exports.models import ExportJob
from partnerspace.tenancy import partner_required


@partner_required
def resend(request, client_pk, document_pk, exportjob_pk):
    job = get_object_or_404(
        ExportJob.objects.for_partner(request.partner).select_related(
            "integration__installation", "document"
        ),
        document__client_id=client_pk,
        document_id=document_pk,
        pk=exportjob_pk,
    )
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if not job.can_resend:
        messages.info(request, _("This export is already on its way."))
    else:
        destination = engine.resend(job)
        transaction.on_commit(lambda: tasks.enqueue([destination]))
        messages.success(
            request,
            _("%(document)s will be sent again to %(destination)s.")
            % {"document": job.document, "destination": job.integration.installation.name},
        )
    return redirect(job.document.get_absolute_url())
