"""The pages an accountant uses, on the demo firm."""

import re

import pytest
from django.core.management import call_command
from django.urls import reverse

from clients.models import Client, Document
from partnerspace.models import Partner

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo(settings, client):
    settings.DEMO_PASSWORD = "demo-pass-for-tests"
    call_command("seed_demo", stdout=open("/dev/null", "w"))  # noqa: SIM115
    partner = Partner.objects.get(name="Demo Accountancy")
    assert client.login(username="demo", password="demo-pass-for-tests")
    return partner


def test_sign_in_page_and_wrong_password(client):
    page = client.get(reverse("login"))
    assert page.status_code == 200
    response = client.post(reverse("login"), {"username": "demo", "password": "nope"})
    assert response.status_code == 200
    assert "correct username and password" in response.content.decode()


def test_dashboard_counts(demo, client):
    response = client.get("/")
    body = response.content.decode()
    assert response.context["client_count"] == Client.objects.for_partner(demo).count()
    waiting = Document.objects.for_partner(demo).filter(released_at__isnull=True).count()
    assert response.context["awaiting_release"] == waiting
    assert "Demo Accountancy" in body
    assert reverse("store:index") in body  # app launcher


def test_client_list_search_and_open(demo, client):
    first = Client.objects.for_partner(demo).order_by("name").first()
    body = client.get(reverse("clients:list")).content.decode()
    assert f'data-href="{first.get_absolute_url()}"' in body
    assert f'<a href="{first.get_absolute_url()}">' in body

    for query in [first.name[:6].lower(), first.external_id, first.enterprise_number[2:7]]:
        page = client.get(reverse("clients:list"), {"q": query}).context["page"]
        assert first in page.object_list, query
    dotted = f"{first.enterprise_number[:4]}.{first.enterprise_number[4:7]}"
    assert first in client.get(reverse("clients:list"), {"q": dotted}).context["page"].object_list
    empty = client.get(reverse("clients:list"), {"q": "zzz-nothing"})
    assert "No client matches" in empty.content.decode()


def test_client_list_paginates(demo, client, make_client):
    for i in range(30):
        make_client(demo, f"Extra client {i:02d}")
    first = client.get(reverse("clients:list")).context["page"]
    second = client.get(reverse("clients:list"), {"page": 2}).context["page"]
    assert len(first.object_list) == 25
    assert first.paginator.count == Client.objects.for_partner(demo).count()
    assert not set(first.object_list) & set(second.object_list)


def test_client_detail_and_documents_tab(demo, client):
    target = Client.objects.for_partner(demo).get(external_id="CL-0001")
    detail = client.get(target.get_absolute_url())
    assert detail.status_code == 200
    totals = {row["label"]: row["total"] for row in detail.context["summary"]}
    assert totals["Purchase invoice"] == target.documents.filter(category="purchase").count()

    tab = client.get(reverse("clients:documents", args=[target.pk]))
    assert tab.status_code == 200
    assert tab.context["page"].paginator.count == target.documents.count()
    purchases = client.get(
        reverse("clients:documents", args=[target.pk]), {"category": "purchase"}
    ).context["page"]
    assert {d.category for d in purchases.object_list} == {"purchase"}
    waiting = client.get(
        reverse("clients:documents", args=[target.pk]), {"status": "received"}
    ).context["page"]
    assert all(d.released_at is None for d in waiting.object_list)


def test_download_returns_the_original_bytes(demo, client):
    document = Document.objects.for_partner(demo).filter(category="report").first()
    response = client.get(
        reverse("clients:document_download", args=[document.client_id, document.pk])
    )
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == document.file.open("rb").read()
    assert "attachment" in response["Content-Disposition"]


def test_approve_from_the_documents_tab(demo, client):
    document = Document.objects.for_partner(demo).filter(status="received", category="purchase")[0]
    url = reverse("clients:document_release", args=[document.client_id, document.pk])
    assert client.get(url).status_code == 405
    response = client.post(url, follow=True)
    document.refresh_from_db()
    assert document.status == "approved"
    assert "is now approved" in response.content.decode()
    again = client.post(url, follow=True)
    assert "already released" in again.content.decode()


def test_admin_renders_with_demo_data(demo, client, django_user_model):
    django_user_model.objects.create_superuser("root", "root@example.com", "root-pass")
    client.login(username="root", password="root-pass")
    for url in [
        "/admin/",
        "/admin/partnerspace/partner/",
        "/admin/partnerspace/membership/",
        "/admin/clients/client/",
        "/admin/clients/client/?q=bakkerij",
        "/admin/clients/document/",
        "/admin/clients/document/?category__exact=report",
        "/admin/clients/document/add/",
        f"/admin/clients/document/{Document.objects.first().pk}/change/",
    ]:
        assert client.get(url).status_code == 200, url


def test_admin_upload_goes_through_intake(demo, client, django_user_model):
    django_user_model.objects.create_superuser("root", "root@example.com", "root-pass")
    client.login(username="root", password="root-pass")
    target = Client.objects.for_partner(demo).first()
    from io import BytesIO

    bad = BytesIO(b"<Invoice")
    bad.name = "bad.xml"
    response = client.post(
        "/admin/clients/document/add/", {"client": target.pk, "upload": bad, "category_choice": ""}
    )
    assert response.status_code == 200
    assert "not well-formed XML" in response.content.decode()

    document = target.documents.filter(category="purchase").first()
    data = document.file.open("rb").read()
    document.delete()
    good = BytesIO(data)
    good.name = "again.xml"
    before = Document.objects.count()
    response = client.post(
        "/admin/clients/document/add/",
        {"client": target.pk, "upload": good, "category_choice": ""},
    )
    assert response.status_code == 302
    assert Document.objects.count() == before + 1
    assert target.documents.get(sha256=document.sha256).category == "purchase"


def test_admin_release_action(demo, client, django_user_model):
    django_user_model.objects.create_superuser("root", "root@example.com", "root-pass")
    client.login(username="root", password="root-pass")
    waiting = list(Document.objects.filter(released_at__isnull=True).values_list("pk", flat=True))
    response = client.post(
        "/admin/clients/document/",
        {"action": "release_selected", "_selected_action": waiting[:3]},
        follow=True,
    )
    assert re.search(r"3 documents released", response.content.decode())
    assert Document.objects.filter(pk__in=waiting[:3], released_at__isnull=True).count() == 0
