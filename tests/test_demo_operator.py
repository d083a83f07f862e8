"""``seed_demo`` gives the operators an admin account that reads the exports and cannot
change them, and the README names every demo account and the demo SFTP server's login."""

from io import StringIO
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command

from exports.demo_sftp import DEFAULT_PASSWORD as SFTP_PASSWORD
from exports.demo_sftp import DEMO_PORT, DEMO_USER

pytestmark = pytest.mark.django_db

PASSWORD = "operator-demo-pw"


@pytest.fixture
def seeded(settings):
    settings.DEMO_PASSWORD = PASSWORD
    out = StringIO()
    call_command("seed_demo", stdout=out)
    return out.getvalue()


def test_the_operator_signs_in_to_the_admin_and_sees_export_health(seeded, client):
    operator = get_user_model().objects.get(username="operator")
    assert operator.is_staff and not operator.is_superuser
    assert not operator.memberships.exists()

    assert client.login(username="operator", password=PASSWORD)
    index = client.get("/admin/")
    assert index.status_code == 200
    assert "Export health" in index.content.decode()
    for page in [
        "/admin/exports/exportjob/",
        "/admin/exports/exportattempt/",
        "/admin/extensions/installation/",
        "/admin/extensions/integration/",
        "/admin/clients/document/",
        "/admin/clients/client/",
        "/admin/django_q/failure/",
        "/admin/django_q/schedule/",
    ]:
        assert client.get(page).status_code == 200, page


def test_the_operator_only_views(seeded, client):
    client.login(username="operator", password=PASSWORD)
    assert client.get("/admin/auth/user/").status_code == 403
    assert client.get("/admin/clients/document/add/").status_code == 403
    jobs = client.get("/admin/exports/exportjob/").content.decode()
    assert 'value="retry_now"' not in jobs and 'value="resend"' not in jobs
    documents = client.get("/admin/clients/document/").content.decode()
    assert 'value="release_selected"' not in documents
    operator = get_user_model().objects.get(username="operator")
    assert not operator.has_perm("exports.change_exportjob")
    assert operator.has_perm("exports.view_exportjob")


def test_seeding_again_keeps_one_operator_with_the_current_password(seeded, settings):
    settings.DEMO_PASSWORD = "another-pw"
    call_command("seed_demo", stdout=StringIO())
    operators = get_user_model().objects.filter(username="operator")
    assert operators.count() == 1
    assert operators.get().check_password("another-pw")


def test_the_readme_opens_with_the_accounts_and_the_sftp_login():
    opening = "\n".join((Path(settings.BASE_DIR) / "README.md").read_text().splitlines()[:20])
    for name in ["**demo**", "**member**", "**operator**", "DEMO_PASSWORD", "demo-partner"]:
        assert name in opening
    assert f"**{DEMO_USER}**" in opening and f"`{SFTP_PASSWORD}`" in opening
    assert str(DEMO_PORT) in opening
