"""Client list, client detail and its Documents tab; every query scoped to the firm."""

from django.apps import apps
from django.contrib import messages
from django.core.paginator import Paginator
from django.db.models import Count, OuterRef, Prefetch, Q, Subquery
from django.db.models.functions import Coalesce
from django.http import FileResponse, Http404, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _

from clients import ubl
from clients.errors import IntakeError
from clients.models import Client, Document
from clients.release import release
from partnerspace.enterprise import normalize
from partnerspace.tenancy import partner_required

CLIENTS_PER_PAGE = 25
DOCUMENTS_PER_PAGE = 50


def _client(request, client_pk):
    return get_object_or_404(Client.objects.for_partner(request.partner), pk=client_pk)


def _document(request, client_pk, document_pk):
    return get_object_or_404(
        Document.objects.for_partner(request.partner).select_related("client"),
        client_id=client_pk,
        pk=document_pk,
    )


@partner_required
def client_list(request):
    query = request.GET.get("q", "").strip()
    # A correlated subquery, not a join with GROUP BY: the paginator's count stays a plain
    # count of clients and only the rows on the page have their documents counted, so the
    # page costs the same with 100 or 100,000 documents behind it.
    per_client = (
        Document.objects.filter(client=OuterRef("pk"))
        .order_by()
        .values("client")
        .annotate(total=Count("pk"))
        .values("total")
    )
    clients = Client.objects.for_partner(request.partner).annotate(
        document_count=Coalesce(Subquery(per_client), 0)
    )
    if query:
        match = Q(name__icontains=query) | Q(external_id__icontains=query)
        digits = normalize(query)
        if digits.isdigit():
            match |= Q(enterprise_number__contains=digits)
        clients = clients.filter(match)
    page = Paginator(clients.order_by("name", "pk"), CLIENTS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    return render(request, "clients/client_list.html", {"page": page, "query": query})


@partner_required
def client_detail(request, client_pk):
    client = _client(request, client_pk)
    rows = {
        row["category"]: row
        for row in client.documents.values("category").annotate(
            total=Count("pk"), waiting=Count("pk", filter=Q(released_at__isnull=True))
        )
    }
    summary = [
        {
            "label": label,
            "total": rows.get(value, {}).get("total", 0),
            "waiting": rows.get(value, {}).get("waiting", 0),
        }
        for value, label in Document.Category.choices
    ]
    return render(
        request,
        "clients/client_detail.html",
        {"client": client, "summary": summary, "tab": "overview"},
    )


@partner_required
def document_list(request, client_pk):
    client = _client(request, client_pk)
    documents = client.documents.order_by("-issue_date", "-pk")
    filters = {
        "category": request.GET.get("category", ""),
        "status": request.GET.get("status", ""),
        "q": request.GET.get("q", "").strip(),
    }
    if filters["category"] in Document.Category.values:
        documents = documents.filter(category=filters["category"])
    if filters["status"] in Document.Status.values:
        documents = documents.filter(status=filters["status"])
    if filters["q"]:
        documents = documents.filter(
            Q(number__icontains=filters["q"])
            | Q(supplier_name__icontains=filters["q"])
            | Q(customer_name__icontains=filters["q"])
        )
    # Export history rows come from the exports app through the reverse relation, named
    # here by string so that clients imports nothing built on it; destinations are loaded
    # without their (encrypted) secrets, which this page never shows.
    installations = apps.get_model("extensions", "Installation").objects.only("pk", "name")
    documents = documents.prefetch_related(
        "export_jobs", Prefetch("export_jobs__installation", queryset=installations)
    )
    page = Paginator(documents, DOCUMENTS_PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "clients/document_list.html",
        {
            "client": client,
            "page": page,
            "filters": filters,
            "categories": Document.Category.choices,
            "statuses": Document.Status.choices,
            "tab": "documents",
        },
    )


def _readable_invoice(document):
    """The UBL invoice or credit note for people, or None for a statement or unreadable file."""
    if document.kind == Document.Kind.STATEMENT:
        return None
    with document.file.open("rb") as handle:
        data = handle.read()
    try:
        return ubl.display(data)
    except IntakeError:
        return None


@partner_required
def document_detail(request, client_pk, document_pk):
    document = _document(request, client_pk, document_pk)
    return render(
        request,
        "clients/document_detail.html",
        {
            "client": document.client,
            "document": document,
            "invoice": _readable_invoice(document),
            "tab": "documents",
        },
    )


@partner_required
def document_attachment(request, client_pk, document_pk):
    """A file embedded in the UBL, always downloaded, never shown in the portal's origin."""
    document = _document(request, client_pk, document_pk)
    index = request.GET.get("n", "")
    if not index.isdigit():
        return redirect("clients:document_detail", client_pk=client_pk, document_pk=document_pk)
    if document.kind == Document.Kind.STATEMENT:
        raise Http404
    with document.file.open("rb") as handle:
        data = handle.read()
    try:
        found = ubl.attachment(data, int(index))
    except IntakeError:
        found = None
    if found is None:
        raise Http404
    filename, mime_type, content = found
    response = HttpResponse(content, content_type=mime_type)
    response["Content-Disposition"] = content_disposition_header(True, filename)
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "sandbox"
    return response


@partner_required
def document_download(request, client_pk, document_pk):
    document = _document(request, client_pk, document_pk)
    return FileResponse(
        document.file.open("rb"),
        as_attachment=True,
        filename=document.original_name,
        content_type=document.content_type,
    )


@partner_required
def document_release(request, client_pk, document_pk):
    document = _document(request, client_pk, document_pk)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    if release(document):
        messages.success(
            request,
            _("%(document)s is now %(status)s.")
            % {"document": document, "status": document.get_status_display().lower()},
        )
    else:
        messages.info(request, _("%(document)s was already released.") % {"document": document})
    return redirect(document.get_absolute_url())
