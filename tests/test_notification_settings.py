"""The Notifications page: each owner turns their own e-mails on or off and picks their
language; another owner's choice is untouched; members, who get no notices, cannot reach
it; the user menu links to it for owners only."""

import pytest
from django.urls import reverse

from partnerspace.models import Membership

URL = reverse("notifications")


@pytest.fixture
def second_owner(firm, make_user):
    user = make_user("second-owner")
    Membership.objects.create(user=user, partner=firm["partner"], role=Membership.Role.OWNER)
    return user


def membership(user, partner):
    return Membership.objects.get(user=user, partner=partner)


@pytest.mark.django_db
def test_an_owner_changes_their_own_switches_only(client, firm, second_owner):
    client.force_login(firm["owner"])
    page = client.get(URL)
    assert page.status_code == 200
    body = page.content.decode()
    assert 'name="notify_problems"' in body and 'name="notify_digest"' in body
    assert 'name="notice_language"' in body

    answer = client.post(URL, {"notify_digest": "on", "notice_language": "nl"})
    assert answer.status_code == 302 and answer["Location"] == URL
    mine = membership(firm["owner"], firm["partner"])
    assert (mine.notify_problems, mine.notify_digest, mine.language) == (False, True, "nl")
    theirs = membership(second_owner, firm["partner"])
    assert (theirs.notify_problems, theirs.notify_digest, theirs.notice_language) == (
        True,
        True,
        "",
    )
    # The outsider's own firm is not touched either.
    outsider = membership(firm["outsider"], firm["other"])
    assert (outsider.notify_problems, outsider.notify_digest) == (True, True)


@pytest.mark.django_db
def test_an_unknown_language_is_refused_and_nothing_changes(client, firm):
    client.force_login(firm["owner"])
    answer = client.post(URL, {"notify_problems": "on", "notice_language": "xx"})
    assert answer.status_code == 200
    assert membership(firm["owner"], firm["partner"]).notice_language == ""


@pytest.mark.django_db
def test_members_get_403_and_strangers_sign_in_first(client, firm):
    client.force_login(firm["member"])
    for method in (client.get, client.post):
        assert method(URL, {"notify_problems": ""}).status_code == 403
    assert membership(firm["member"], firm["partner"]).notify_problems is True
    client.logout()
    assert client.get(URL)["Location"].startswith(reverse("login"))


@pytest.mark.django_db
def test_the_user_menu_links_to_it_for_owners_only(client, firm):
    client.force_login(firm["owner"])
    assert f'href="{URL}"' in client.get(reverse("dashboard")).content.decode()
    client.force_login(firm["member"])
    assert f'href="{URL}"' not in client.get(reverse("dashboard")).content.decode()
