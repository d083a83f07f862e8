"""Sign-in protection: failed sign-ins lock the account and the address; sign-out is global."""

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from axes.models import AccessAttempt
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[1]
HOME, OFFICE, CAFE = "192.0.2.10", "198.51.100.20", "203.0.113.30"
LOCKED = "Too many failed sign-ins for this account or address"


def sign_in(client, username, password, address=HOME, path=None, **extra):
    data = {"username": username, "password": password}
    return client.post(path or reverse("login"), data, REMOTE_ADDR=address, **extra)


def fail(client, username, times, address=HOME, path=None):
    return [sign_in(client, username, "wrong", address, path) for _ in range(times)]


def signed_in(client):
    return client.get(reverse("dashboard")).status_code == 200


def test_eleven_wrong_passwords_lock_the_account_even_for_the_right_one(client, firm):
    responses = fail(client, "owner", 11)
    assert [r.status_code for r in responses[:9]] == [200] * 9
    assert LOCKED not in responses[8].content.decode()
    assert {r.status_code for r in responses[9:]} == {429}

    response = sign_in(client, "owner", "pw-owner")
    body = response.content.decode()
    assert response.status_code == 429
    assert LOCKED in body
    assert "Try again in 15 minutes" in body
    assert "Sign in to your Partner Space" in body  # the site's own sign-in page
    assert 'name="password"' in body
    assert not signed_in(client)


def test_the_admin_sign_in_is_locked_the_same_way(client, django_user_model):
    django_user_model.objects.create_superuser("root", "root@example.com", "root-pass")
    admin_login = reverse("admin:login")
    fail(client, "root", 10, path=admin_login)

    response = sign_in(client, "root", "root-pass", path=admin_login)
    assert response.status_code == 429
    assert LOCKED in response.content.decode()
    assert client.get(reverse("admin:index")).status_code == 302

    # ... and the lock is shared with the portal's sign-in page.
    assert sign_in(client, "root", "root-pass").status_code == 429


def test_account_and_address_are_locked_separately(client, firm):
    fail(client, "owner", 10, address=HOME)

    # The account is locked wherever it signs in from ...
    assert sign_in(Client(), "owner", "pw-owner", address=OFFICE).status_code == 429
    # ... the address is locked for every account ...
    assert sign_in(Client(), "member", "pw-member", address=HOME).status_code == 429
    # ... but another account from another address is not.
    other = Client()
    assert sign_in(other, "member", "pw-member", address=OFFICE).status_code == 302
    assert signed_in(other)


def test_too_many_accounts_tried_from_one_address_lock_that_address(client, firm):
    for name in ["owner", "member", "outsider", "nobody", "admin"]:
        fail(client, name, 2, address=CAFE)
    assert sign_in(Client(), "member", "pw-member", address=CAFE).status_code == 429
    assert sign_in(Client(), "member", "pw-member", address=OFFICE).status_code == 302


def test_a_good_sign_in_does_not_wipe_failures_against_another_account(client, firm):
    fail(client, "owner", 9, address=HOME)
    assert sign_in(Client(), "member", "pw-member", address=HOME).status_code == 302
    sign_in(client, "owner", "wrong", address=OFFICE)
    assert sign_in(Client(), "owner", "pw-owner", address=OFFICE).status_code == 429


def test_the_lock_lasts_the_lockout_minutes(client, firm):
    fail(client, "owner", 10)
    attempts = AccessAttempt.objects.filter(username="owner")

    attempts.update(attempt_time=timezone.now() - timedelta(minutes=14))
    assert sign_in(client, "owner", "pw-owner").status_code == 429
    attempts.update(attempt_time=timezone.now() - timedelta(minutes=16))
    assert sign_in(client, "owner", "pw-owner").status_code == 302
    assert signed_in(client)


def test_an_administrator_unlocks_an_account(client, firm):
    fail(client, "owner", 10)
    assert sign_in(client, "owner", "pw-owner", address=OFFICE).status_code == 429

    call_command("axes_reset_username", "owner", stdout=open(os.devnull, "w"))  # noqa: SIM115
    assert sign_in(client, "owner", "pw-owner", address=OFFICE).status_code == 302
    assert signed_in(client)


def test_the_address_is_the_connection_unless_proxies_are_trusted(client, firm, settings):
    spoofed = {"HTTP_X_FORWARDED_FOR": f"{OFFICE}, {CAFE}"}
    sign_in(client, "owner", "wrong", address=HOME, **spoofed)
    assert AccessAttempt.objects.get().ip_address == HOME

    settings.TRUSTED_PROXY_COUNT = 1
    fail_behind_proxy = [
        sign_in(client, "nobody", "wrong", address=HOME, **spoofed) for _ in range(10)
    ]
    assert fail_behind_proxy[-1].status_code == 429
    assert AccessAttempt.objects.filter(username="nobody").get().ip_address == CAFE
    # Another client behind the same proxy is not locked out with the one that failed.
    other = {"HTTP_X_FORWARDED_FOR": OFFICE}
    assert sign_in(Client(), "member", "pw-member", address=HOME, **other).status_code == 302


def test_signing_out_ends_the_session_on_every_device(firm):
    laptop, phone, colleague = Client(), Client(), Client()
    for device in (laptop, phone):
        assert sign_in(device, "owner", "pw-owner").status_code == 302
    assert sign_in(colleague, "member", "pw-member").status_code == 302
    assert signed_in(laptop) and signed_in(phone)

    assert laptop.post(reverse("logout")).status_code == 302

    response = phone.get(reverse("dashboard"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))
    assert not signed_in(laptop)
    assert signed_in(colleague)
    assert Session.objects.count() == 1


def test_sign_out_is_a_post(client, firm):
    client.force_login(firm["owner"])
    assert client.get(reverse("logout")).status_code == 405
    assert signed_in(client)


def test_the_session_cookie_lasts_session_hours(client, firm, settings):
    sign_in(client, "owner", "pw-owner")
    assert settings.SESSION_COOKIE_AGE == 12 * 3600
    assert client.cookies[settings.SESSION_COOKIE_NAME]["max-age"] == 12 * 3600


def test_the_numbers_come_from_the_environment(tmp_path):
    environment = {**os.environ, "VAR_DIR": str(tmp_path), "SECRET_KEY": "k" * 50}
    environment.update(
        DJANGO_SETTINGS_MODULE="partnerspace.settings",
        SESSION_HOURS="2",
        LOGIN_FAILURE_LIMIT="5",
        LOGIN_LOCKOUT_MINUTES="30",
    )
    code = (
        "import django; from django.conf import settings; django.setup();"
        "print(settings.SESSION_COOKIE_AGE, settings.AXES_FAILURE_LIMIT,"
        " int(settings.AXES_COOLOFF_TIME.total_seconds()))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["7200", "5", "1800"]
