"""One export of a document, from its Documents tab row: re-sending it, and its state for
the row that waits for delivery to update itself."""

from django.contrib import messages
from django.db import transaction
from django.http import HttpResponseNotAllowed, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.loader import render_to_string
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache

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


WAITING = (ExportJob.Status.PENDING, ExportJob.Status.RUNNING, ExportJob.Status.FAILED)


@partner_required
@never_cache
def state(request, client_pk, document_pk, exportjob_pk):
    """The job's state and its row as the Documents tab draws it, polled while it waits."""
    job = get_object_or_404(
        ExportJob.objects.for_partner(request.partner)
        .select_related("installation", "document__client")
        .defer("installation__secrets"),
        document__client_id=client_pk,
        document_id=document_pk,
        pk=exportjob_pk,
    )
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET"])
    row = render_to_string(
        "exports/_job_row.html", {"job": job, "client": job.document.client}, request=request
    )
    return JsonResponse(
        {
            "status": job.status,
            "label": job.get_status_display(),
            "waiting": job.status in WAITING,
            "html": row,
        }
    )
