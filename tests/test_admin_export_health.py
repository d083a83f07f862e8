"""The operators' admin opens on export health and finds a job, a document or a company
by what the operator has at hand: an invoice number, an enterprise number, a firm."""

import pytest
from django.utils import timezone

from exports.models import ExportAttempt, ExportJob
from extensions.models import Installation, Integration

pytestmark = pytest.mark.django_db

JOBS = "/admin/exports/exportjob/"


def listed(response):
    return list(response.context["cl"].result_list)


def test_index_counts_jobs_by_status_and_what_needs_a_person(admin_client, firm):
    ExportJob.objects.create(
        document=firm["documents"][1],
        integration=firm["integration"],
        installation=firm["installation"],
        status=ExportJob.Status.PENDING,
    )
    Installation.objects.filter(pk=firm["installation"].pk).update(
        status=Installation.Status.RECONNECT, last_error="The server's key has changed"
    )
    failing = Installation.objects.create(
        partner=firm["other"], connector="http", name="Elders webhook", status="failing"
    )
    Integration.objects.filter(pk=firm["integration"].pk).update(consecutive_failures=2)

    page = admin_client.get("/admin/")
    html = page.content.decode()

    assert "Export health" in html
    assert '<td class="job-count" data-status="dead">1</td>' in html
    assert '<td class="job-count" data-status="pending">1</td>' in html
    assert '<td class="job-count" data-status="delivered">0</td>' in html
    assert '<td id="failing-installations">1</td>' in html
    assert '<td id="reconnect-installations">1</td>' in html
    assert '<td id="failing-integrations">1</td>' in html
    assert f'/admin/extensions/installation/{failing.pk}/change/">Elders webhook</a>' in html
    assert "The server&#x27;s key has changed" in html
    assert f'href="{JOBS}?status__exact=dead"' in html


def test_index_links_to_the_workers_tasks_and_schedules(admin_client):
    html = admin_client.get("/admin/").content.decode()
    for url in [
        "/admin/django_q/success/",
        "/admin/django_q/failure/",
        "/admin/django_q/schedule/",
    ]:
        assert f'href="{url}"' in html
        assert admin_client.get(url).status_code == 200


def test_index_health_links_filter_the_lists(admin_client, firm):
    Installation.objects.filter(pk=firm["installation"].pk).update(status="failing")
    found = admin_client.get(
        "/admin/extensions/installation/", {"status__in": "failing,attention"}
    )
    assert listed(found) == [firm["installation"]]
    dead = admin_client.get(JOBS, {"status__exact": "dead"})
    assert listed(dead) == [firm["job"]]
    assert listed(admin_client.get(JOBS, {"status__exact": "delivered"})) == []


def test_jobs_filter_by_extension_firm_and_date(admin_client, firm, make_client, make_document):
    other_client = make_client(firm["other"], "Garage Noord NV")
    webhook = Installation.objects.create(partner=firm["other"], connector="http", name="Hook")
    other_job = ExportJob.objects.create(
        document=make_document(other_client),
        integration=Integration.objects.create(client=other_client, installation=webhook),
        installation=webhook,
    )

    assert listed(admin_client.get(JOBS, {"extension": "http"})) == [other_job]
    assert listed(admin_client.get(JOBS, {"extension": "sftp"})) == [firm["job"]]
    by_firm = {"document__client__partner__id__exact": firm["partner"].pk}
    assert listed(admin_client.get(JOBS, by_firm)) == [firm["job"]]
    html = admin_client.get(JOBS).content.decode()
    assert "By extension" in html and "HTTP (webhook)" in html

    midnight = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    ExportJob.objects.filter(pk=firm["job"].pk).update(
        created_at=timezone.now() - timezone.timedelta(days=40)
    )
    since_today = {"created_at__gte": midnight.isoformat()}
    assert listed(admin_client.get(JOBS, since_today)) == [other_job]


def test_search_finds_jobs_and_documents_by_invoice_and_enterprise_number(admin_client, firm):
    document = firm["documents"][0]
    client = document.client
    assert listed(admin_client.get(JOBS, {"q": document.number})) == [firm["job"]]
    n = client.enterprise_number
    written = f"BE {n[:4]}.{n[4:7]}.{n[7:]}"
    assert listed(admin_client.get(JOBS, {"q": written})) == [firm["job"]]
    documents = listed(admin_client.get("/admin/clients/document/", {"q": written}))
    assert set(documents) == set(client.documents.all())
    clients = listed(admin_client.get("/admin/clients/client/", {"q": written}))
    assert clients == [client]
    assert listed(admin_client.get(JOBS, {"q": "INV-does-not-exist"})) == []


def test_documents_filter_by_extension_once_each(admin_client, firm):
    document = firm["documents"][0]
    second = Installation.objects.create(partner=firm["partner"], connector="sftp", name="Copy")
    ExportJob.objects.create(
        document=document,
        integration=Integration.objects.create(client=document.client, installation=second),
        installation=second,
        status=ExportJob.Status.DELIVERED,
    )
    found = listed(admin_client.get("/admin/clients/document/", {"extension": "sftp"}))
    assert found == [document]


def test_client_shows_its_integrations_read_only(admin_client, firm):
    client = firm["clients"][0]
    page = admin_client.get(f"/admin/clients/client/{client.pk}/change/")
    inline = page.context["inline_admin_formsets"][0]
    assert inline.formset.model is Integration
    assert [form.original for form in inline] == [firm["integration"]]
    assert not inline.has_add_permission and not inline.has_change_permission
    assert "Lambert SFTP" in page.content.decode()


def test_document_shows_its_jobs_and_a_job_its_attempts(admin_client, firm):
    job = firm["job"]
    now = timezone.now()
    ExportAttempt.objects.create(
        job=job,
        number=1,
        started_at=now,
        finished_at=now,
        outcome="transient",
        error="connection refused",
    )
    page = admin_client.get(f"/admin/clients/document/{job.document.pk}/change/")
    inline = page.context["inline_admin_formsets"][0]
    assert [form.original for form in inline] == [job]
    assert not inline.has_change_permission
    assert f'href="/admin/exports/exportjob/{job.pk}/change/"' in page.content.decode()

    job_page = admin_client.get(f"{JOBS}{job.pk}/change/")
    attempts = job_page.context["inline_admin_formsets"][0]
    assert [form.original.number for form in attempts] == [1]
    assert "connection refused" in job_page.content.decode()


def test_the_upload_form_has_no_jobs_inline(admin_client):
    page = admin_client.get("/admin/clients/document/add/")
    assert page.status_code == 200
    assert page.context["inline_admin_formsets"] == []
