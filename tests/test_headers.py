"""Response headers: a strict Content-Security-Policy everywhere, no caching of private pages."""

import re
from pathlib import Path

import pytest
from django.contrib import admin
from django.templatetags.static import static
from django.test import Client, RequestFactory
from django.urls import reverse

ROOT = Path(__file__).resolve().parents[1]
POLICY = {
    "default-src": ["'self'"],
    "script-src": ["'self'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "object-src": ["'none'"],
    "base-uri": ["'none'"],
    "frame-ancestors": ["'none'"],
    "form-action": ["'self'"],
}
# What the policy would block: inline <script> (no src), <style>, style="" and on...="".
INLINE_SCRIPT = re.compile(r"<script\b(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
INLINE_STYLE = re.compile(r"<style\b|\sstyle\s*=", re.IGNORECASE)
HANDLER = re.compile(r"\son[a-z]+\s*=|javascript:", re.IGNORECASE)


def policy(response):
    header = response["Content-Security-Policy"]
    directives = [part.split() for part in header.split(";") if part.strip()]
    return {name: values for name, *values in directives}


def inline_code(html):
    return [m.group(0) for rx in (INLINE_SCRIPT, INLINE_STYLE, HANDLER) for m in rx.finditer(html)]


@pytest.mark.django_db
def test_every_kind_of_page_carries_the_policy(client, firm):
    pages = [client.get(reverse("login"))]
    client.force_login(firm["owner"])
    pages += [client.get(reverse("dashboard")), client.get("/no/such/page/")]
    assert [p.status_code for p in pages] == [200, 200, 404]
    for page in pages:
        assert policy(page) == POLICY
        assert "unsafe-inline" not in page["Content-Security-Policy"]


def test_no_template_holds_inline_script_style_or_handlers():
    templates = [
        path
        for path in ROOT.rglob("templates/**/*.html")
        if not {".venv", "node_modules", "var"} & set(path.relative_to(ROOT).parts)
    ]
    assert any(path.name == "base.html" for path in templates)
    found = {
        str(path.relative_to(ROOT)): inline_code(path.read_text())
        for path in templates
        if inline_code(path.read_text())
    }
    assert found == {}


@pytest.mark.django_db
def test_admin_pages_need_nothing_the_policy_blocks(client, django_user_model):
    root = django_user_model.objects.create_superuser("root", "root@example.com", "root-pass")
    client.force_login(root)
    urls = [reverse("admin:index")]
    for model in admin.site._registry:
        info = model._meta.app_label, model._meta.model_name
        urls.append(reverse("admin:{}_{}_changelist".format(*info)))
        if admin.site._registry[model].has_add_permission(_request(root)):
            urls.append(reverse("admin:{}_{}_add".format(*info)))
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        assert policy(response) == POLICY, url
        assert inline_code(response.content.decode()) == [], url


def _request(user):
    request = RequestFactory().get("/admin/")
    request.user = user
    return request


@pytest.mark.django_db
def test_signed_in_pages_and_originals_are_not_stored(client, firm):
    client.force_login(firm["owner"])
    document = firm["documents"][0]
    download = client.get(
        reverse("clients:document_download", args=[document.client_id, document.pk])
    )
    assert download.status_code == 200
    for response in (client.get(reverse("dashboard")), download):
        directives = {d.strip() for d in response["Cache-Control"].split(",")}
        assert {"private", "no-store"} <= directives


@pytest.mark.django_db
def test_static_files_stay_cacheable_for_signed_in_users(firm, settings):
    asset = Path(settings.STATIC_ROOT) / "css" / "portal.css"
    asset.parent.mkdir(parents=True, exist_ok=True)
    asset.write_bytes((ROOT / "static" / "css" / "portal.css").read_bytes())
    try:
        client = Client()  # whitenoise indexes STATIC_ROOT when the middleware starts
        client.force_login(firm["owner"])
        response = client.get(static("css/portal.css"))
        assert response.status_code == 200
        assert "no-store" not in response.get("Cache-Control", "")
        assert "private" not in response.get("Cache-Control", "")
    finally:
        asset.unlink()
