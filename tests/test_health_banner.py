"""A banner on every page of the firm while something of its exports needs a person: a
changed SFTP host key, a reconnect or attention needed, an integration failing for more
than an hour. It links to the place to act, goes once things recover, and costs one
query per page however much is wrong."""

from datetime import timedelta
from functools import partial

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from clients.models import Document
from clients.release import release
from exports import engine, health
from exports.models import ExportAttempt, ExportJob
from extensions.models import Installation, Integration
from tests.peers.sftp import sftp_installation as shared_sftp_installation

pytestmark = pytest.mark.django_db

sftp_installation = partial(shared_sftp_installation, name="Dubois server", upload_path="in/")

BANNER = 'class="health-banner"'


def firm_pages(firm):
    company = firm["clients"][0]
    document = firm["documents"][0]
    return [
        reverse("dashboard"),
        reverse("clients:list"),
        reverse("clients:detail", args=[company.pk]),
        reverse("clients:documents", args=[company.pk]),
        reverse("integrations:list", args=[company.pk]),
        reverse("integrations:add", args=[company.pk]),
        reverse("store:index"),
        reverse("store:extension", args=["sftp"]),
        document.get_absolute_url(),
    ]


def banner_of(client, url) -> str:
    response = client.get(url)
    assert response.status_code == 200, url
    page = response.content.decode()
    if BANNER not in page:
        return ""
    return page.split(BANNER, 1)[1].split("</aside>", 1)[0]


def test_a_changed_host_key_shows_on_every_page_until_accepted(
    client, firm, sftp_server, tmp_path, make_document
):
    installation = sftp_installation(firm["partner"], sftp_server)
    company = firm["clients"][1]
    Integration.objects.create(client=company, installation=installation, categories=["purchase"])
    sftp_server.server.stop()
    sftp_server.server.host_key_path = tmp_path / "another-key"
    sftp_server.server.start()
    release(make_document(company, Document.Category.PURCHASE))
    assert engine.deliver(engine.Destination(installation.pk)).stopped == "reconnect"

    client.force_login(firm["owner"])
    manage = reverse("store:manage", args=[installation.pk])
    for url in firm_pages(firm):
        banner = banner_of(client, url)
        assert "Dubois server" in banner, url
        assert "Reconnect needed" in banner and "host key" in banner, url
        assert f'href="{manage}"' in banner, url
    client.force_login(firm["outsider"])  # another firm sees nothing of it
    assert banner_of(client, reverse("dashboard")) == ""

    client.force_login(firm["owner"])
    tested = client.post(reverse("store:test", args=[installation.pk])).content.decode()
    pin = tested.split('name="confirmation" value="', 1)[1].split('"', 1)[0]
    saved = client.post(manage, {"confirmation": pin, "confirm": "1"})
    assert saved.status_code == 302
    for url in firm_pages(firm):
        assert banner_of(client, url) == "", url


def test_an_integration_failing_for_more_than_an_hour_shows_until_it_delivers(
    client, firm, sftp_server, make_document
):
    installation = sftp_installation(firm["partner"], sftp_server)
    company = firm["clients"][1]
    integration = Integration.objects.create(
        client=company, installation=installation, categories=["purchase"]
    )
    release(make_document(company, Document.Category.PURCHASE))
    sftp_server.server.stop()
    assert engine.deliver(engine.Destination(installation.pk)).stopped == "transient"
    client.force_login(firm["member"])
    assert banner_of(client, reverse("dashboard")) == ""  # failing for a minute: not yet

    # An hour and more has passed since that failure.
    ExportAttempt.objects.filter(job__integration=integration).update(
        started_at=timezone.now() - timedelta(minutes=62),
        finished_at=timezone.now() - timedelta(minutes=61),
    )
    tab = reverse("integrations:list", args=[company.pk])
    for url in firm_pages(firm):
        banner = banner_of(client, url)
        assert f"Dubois server for {company.name}" in banner, url
        assert "Failing" in banner and f'href="{tab}"' in banner, url

    sftp_server.server.start()
    ExportJob.objects.filter(integration=integration).update(next_attempt_at=timezone.now())
    assert engine.deliver(engine.Destination(installation.pk)).delivered == 1
    for url in firm_pages(firm):
        assert banner_of(client, url) == "", url


def test_reconnect_and_attention_of_an_integration_show_with_their_reason(client, firm):
    integration = firm["integration"]
    Integration.objects.filter(pk=integration.pk).wait_for_a_person(
        Integration.Status.RECONNECT, "The client's own token was revoked."
    )
    client.force_login(firm["member"])
    banner = banner_of(client, reverse("clients:list"))
    assert "Lambert SFTP for Bakkerij Peeters BV" in banner
    assert "Reconnect needed" in banner and "The client&#x27;s own token was revoked." in banner
    Integration.objects.filter(pk=integration.pk).resume()
    assert banner_of(client, reverse("clients:list")) == ""


def test_the_banner_is_one_query_however_much_needs_a_person(
    client, firm, make_client, django_assert_max_num_queries, django_assert_num_queries
):
    client.force_login(firm["member"])
    url = reverse("clients:list")
    client.get(url)  # the session's first request does its own bookkeeping
    with CaptureQueriesContext(connection) as calm:
        assert banner_of(client, url) == ""

    partner = firm["partner"]
    for number in range(6):
        installation = Installation.objects.create(
            partner=partner,
            connector="sftp",
            name=f"Server {number}",
            status=Installation.Status.RECONNECT,
            last_error="The password was refused.",
        )
        Integration.objects.create(
            client=make_client(partner, f"Client {number}"),
            installation=installation,
            categories=["purchase"],
            status=Integration.Status.ATTENTION,
        )
    with django_assert_max_num_queries(len(calm.captured_queries)):
        banner = banner_of(client, url)
    assert banner.count("<li>") == 3
    assert "And more" in banner and f"{reverse('dashboard')}#health" in banner
    with django_assert_num_queries(1):
        assert len(health.banner_items(partner)) == 4
