"""Every URL of the project, for an owner, a member, an outsider and an anonymous visitor.

URLs are found by walking the resolver, so pages added later join the sweep on their own.
A URL keyword ``<model>_pk`` is filled with an object of that model belonging to the
owner's firm (``Model.objects.for_partner``); nested objects are taken coherently (a
document's client is that document's client). ``connector_key`` takes each key of the
registry in turn, since the Store's pages are public to every firm.
"""

import pytest
from django.apps import apps
from django.urls import URLPattern, URLResolver, get_resolver, reverse

OWN_AUTH = {"admin"}  # namespaces with their own sign-in

# Who may use each URL, declared once: "public" (no sign-in), "firm" (owners and members),
# "owners" (members get 403 naming the owners). A URL added later must be declared here.
ACCESS = {
    "healthz": "public",
    "login": "public",
    "logout": "firm",
    "set_language": "firm",
    "dashboard": "firm",
    "switch_firm": "firm",
    "notifications": "owners",
    "clients:list": "firm",
    "clients:detail": "firm",
    "clients:documents": "firm",
    "clients:document_download": "firm",
    "clients:document_detail": "firm",
    "clients:document_attachment": "firm",
    "clients:document_release": "firm",
    "integrations:list": "firm",
    "integrations:add": "firm",
    "integrations:configure": "firm",
    "integrations:edit": "firm",
    "integrations:remove": "firm",
    "integrations:test": "firm",
    "integrations:backfill": "firm",
    "exports:resend": "firm",
    "exports:state": "firm",
    "store:index": "firm",
    "store:path_preview": "firm",
    "store:extension": "firm",
    "store:install": "owners",
    "store:configure": "owners",
    "store:manage": "owners",
    "store:test": "owners",
    "store:active": "owners",
    "store:uninstall": "owners",
    "store:reconnect": "owners",
    "store:signin_callback": "owners",
}
PUBLIC = {name for name, who in ACCESS.items() if who == "public"}


def _walk(patterns, namespace="", kwargs=()):
    for entry in patterns:
        names = tuple(_kwarg_names(entry.pattern))
        if isinstance(entry, URLResolver):
            if entry.namespace in OWN_AUTH:
                continue
            ns = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from _walk(entry.url_patterns, ns, kwargs + names)
        elif isinstance(entry, URLPattern) and entry.name:
            yield f"{namespace}{entry.name}", kwargs + names


def _kwarg_names(pattern):
    if hasattr(pattern, "converters"):
        return list(pattern.converters)
    return list(pattern.regex.groupindex)


def _registry_keys():
    from extensions import registry

    return list(registry.connectors())


NON_MODEL_KWARGS = {"connector_key": _registry_keys}


def _model_for(kwarg):
    assert kwarg.endswith("_pk"), f"URL keyword {kwarg!r} should be named <model>_pk"
    name = kwarg.removesuffix("_pk")
    matches = [m for m in apps.get_models() if m._meta.model_name == name]
    assert matches, f"no model named {name!r} for URL keyword {kwarg!r}"
    return matches[0]


def _kwargs_for(names, partner):
    """Pick the most specific object first, then take its parents from it."""
    names = [n for n in names if n not in NON_MODEL_KWARGS]
    models = {name: _model_for(name) for name in names}
    values = {}
    order = sorted(
        names,
        key=lambda n: -sum(1 for other in models.values() if _fk_to(models[n], other) is not None),
    )
    for name in order:
        if name in values:
            continue
        obj = models[name].objects.for_partner(partner).order_by("pk").first()
        assert obj is not None, f"the firm fixture has no {models[name].__name__}"
        values[name] = obj.pk
        for other_name, other_model in models.items():
            field = _fk_to(models[name], other_model)
            if field and other_name not in values:
                values[other_name] = getattr(obj, field.attname)
    return values


def _fk_to(model, target):
    for field in model._meta.concrete_fields:
        if field.is_relation and field.related_model is target:
            return field
    return None


def project_urls(partner):
    """(name, has firm objects, url) for every URL; non-model keywords take each value."""
    for name, names in _walk(get_resolver().url_patterns):
        kwargs = _kwargs_for(names, partner) if names else {}
        has_objects = bool(kwargs)
        extra = [n for n in names if n in NON_MODEL_KWARGS]
        if not extra:
            yield name, has_objects, reverse(name, kwargs=kwargs)
            continue
        (kwarg,) = extra
        for value in NON_MODEL_KWARGS[kwarg]():
            yield name, has_objects, reverse(name, kwargs={**kwargs, kwarg: value})


@pytest.mark.django_db
def test_the_sweep_covers_the_pages_we_know(firm):
    names = {name for name, _, _ in project_urls(firm["partner"])}
    for expected in [
        "dashboard",
        "clients:list",
        "clients:detail",
        "clients:documents",
        "clients:document_download",
        "integrations:list",
        "store:index",
    ]:
        assert expected in names


@pytest.mark.django_db
def test_anonymous_is_sent_to_sign_in(client, firm):
    for name, _, url in project_urls(firm["partner"]):
        response = client.get(url)
        if name in PUBLIC:
            assert response.status_code == 200, url
        else:
            assert response.status_code == 302, url
            assert response["Location"].startswith(reverse("login") + "?next="), url


@pytest.mark.django_db
def test_every_url_declares_who_may_use_it(firm):
    names = {name for name, _, _ in project_urls(firm["partner"])}
    assert names == set(ACCESS), (names - set(ACCESS), set(ACCESS) - names)


def _allowed(response):
    return response.status_code in (200, 302, 405) and not response.get("Location", "").startswith(
        reverse("login")
    )


@pytest.mark.django_db
def test_owners_reach_every_page(client, firm):
    client.force_login(firm["owner"])
    for _name, _, url in project_urls(firm["partner"]):
        response = client.get(url)
        assert _allowed(response), (url, response.status_code)


@pytest.mark.django_db
def test_members_reach_the_daily_pages_and_get_403_naming_the_owners_elsewhere(client, firm):
    client.force_login(firm["member"])
    installation = firm["installation"]
    for name, _, url in project_urls(firm["partner"]):
        if ACCESS[name] == "owners":
            for method in (client.get, client.post):
                response = method(url)
                assert response.status_code == 403, (method.__name__, url, response.status_code)
                body = response.content.decode()
                assert "Only the firm's owners" in body, url
                assert firm["owner"].get_username() in body, url
        elif ACCESS[name] == "firm":
            response = client.get(url)
            assert _allowed(response), (url, response.status_code)
    installation.refresh_from_db()
    assert installation.active and installation.removed_at is None
    assert installation.secrets == {"password": "s3cret-password"}


@pytest.mark.django_db
def test_outsider_gets_404_on_every_object_of_the_firm(client, firm):
    client.force_login(firm["outsider"])
    for _name, has_objects, url in project_urls(firm["partner"]):
        if not has_objects:
            continue
        for method in (client.get, client.post):
            response = method(url)
            assert response.status_code == 404, (method.__name__, url, response.status_code)


@pytest.mark.django_db
def test_outsider_sees_nothing_of_the_firm_on_its_own_pages(client, firm):
    client.force_login(firm["outsider"])
    secrets = [c.name for c in firm["clients"]] + [firm["partner"].name]
    for name, has_objects, url in project_urls(firm["partner"]):
        if has_objects or name in PUBLIC:
            continue
        body = client.get(url).content.decode()
        for secret in secrets:
            assert secret not in body, (url, secret)


@pytest.mark.django_db
def test_admin_is_for_staff_only(client, firm):
    client.force_login(firm["owner"])
    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.django_db
def test_user_without_firm_gets_a_clear_page(client, make_user):
    client.force_login(make_user("lonely"))
    response = client.get(reverse("clients:list"))
    assert response.status_code == 403
    assert "not a member of any accounting firm" in response.content.decode()


@pytest.mark.django_db
def test_switching_firm_only_to_ones_own(client, firm, make_partner):
    second = make_partner("Second Firm", members=[firm["owner"]])
    client.force_login(firm["owner"])
    assert client.get("/").context["current_partner"] == firm["partner"]
    response = client.post(reverse("switch_firm"), {"partner": second.pk})
    assert response.status_code == 302
    assert client.get("/").context["current_partner"] == second
    response = client.post(reverse("switch_firm"), {"partner": firm["other"].pk})
    assert response.status_code == 404
    assert client.get("/").context["current_partner"] == second


@pytest.mark.django_db
def test_members_see_no_button_leading_to_owners_pages(client, firm):
    urls = list(project_urls(firm["partner"]))
    owners_only = {url for name, _, url in urls if ACCESS[name] == "owners"}
    client.force_login(firm["member"])
    for name, _, url in urls:
        if ACCESS[name] != "firm":
            continue
        response = client.get(url)
        if response.streaming or "html" not in response.get("Content-Type", ""):
            continue
        body = response.content.decode()
        for target in owners_only:
            assert f'"{target}"' not in body, (url, target)
    store_page = client.get(reverse("store:extension", args=["sftp"])).content.decode()
    assert firm["installation"].name in store_page  # the installed extension is listed
