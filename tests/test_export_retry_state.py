"""A waiting export says when it is tried next ("next attempt in 4 min"), and its row on
the Documents tab can ask the portal for its state without a reload: a firm-scoped
endpoint that answers the job's state and the row as the page draws it."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from exports.models import ExportJob
from exports.templatetags.retry import next_attempt_text

pytestmark = pytest.mark.django_db

NOW = timezone.now()


@pytest.mark.parametrize(
    ("later", "words"),
    [
        (timedelta(seconds=-30), "next attempt in a moment"),
        (timedelta(seconds=45), "next attempt in a moment"),
        (timedelta(minutes=1), "next attempt in 1 min"),
        (timedelta(minutes=3, seconds=20), "next attempt in 4 min"),
        (timedelta(minutes=4), "next attempt in 4 min"),
        (timedelta(minutes=59), "next attempt in 59 min"),
        (timedelta(hours=1), "next attempt in 1 h"),
        (timedelta(hours=2, minutes=5), "next attempt in 2 h 5 min"),
        (timedelta(hours=6), "next attempt in 6 h"),
    ],
)
def test_next_attempt_in_words(later, words):
    assert next_attempt_text(NOW + later, now=NOW) == words


def state_url(job):
    return reverse("exports:state", args=[job.document.client_id, job.document_id, job.pk])


@pytest.fixture
def waiting(firm):
    job = firm["job"]
    ExportJob.objects.filter(pk=job.pk).update(
        status=ExportJob.Status.FAILED,
        attempts=1,
        last_error="Connection refused by sftp.lambert.example",
        next_attempt_at=timezone.now() + timedelta(minutes=4),
    )
    job.refresh_from_db()
    return job


def test_the_documents_tab_says_when_a_waiting_export_is_tried_again(client, firm, waiting):
    client.force_login(firm["member"])
    page = client.get(reverse("clients:documents", args=[firm["clients"][0].pk])).content
    page = page.decode()
    assert "Will retry" in page
    assert "next attempt in 4 min" in page
    assert f'data-job-state="{state_url(waiting)}"' in page  # the script polls this row


def test_the_endpoint_answers_the_jobs_state_until_it_is_delivered(client, firm, waiting):
    client.force_login(firm["member"])
    answer = client.get(state_url(waiting)).json()
    assert answer["status"] == "failed" and answer["label"] == "Will retry"
    assert answer["waiting"] is True
    assert "next attempt in 4 min" in answer["html"]
    assert f'data-job-state="{state_url(waiting)}"' in answer["html"]

    ExportJob.objects.filter(pk=waiting.pk).update(
        status=ExportJob.Status.DELIVERED,
        delivered_at=timezone.now(),
        next_attempt_at=None,
        remote_reference="/in/20261201_INV-1_0123abcd.xml",
    )
    answer = client.get(state_url(waiting)).json()
    assert (answer["status"], answer["label"], answer["waiting"]) == (
        "delivered",
        "Delivered",
        False,
    )
    assert "data-job-state" not in answer["html"]  # nothing left to poll
    assert "/in/20261201_INV-1_0123abcd.xml" in answer["html"]
    assert "next attempt" not in answer["html"]


def test_another_firms_job_is_not_found(client, firm, waiting):
    client.force_login(firm["outsider"])
    assert client.get(state_url(waiting)).status_code == 404
    # Nor through the outsider's own client in the address.
    other_client = firm["other"].clients.get()
    url = reverse("exports:state", args=[other_client.pk, waiting.document_id, waiting.pk])
    assert client.get(url).status_code == 404


def test_the_endpoint_only_answers_reads(client, firm, waiting):
    client.force_login(firm["owner"])
    assert client.post(state_url(waiting)).status_code == 405
