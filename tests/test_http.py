"""HTTP (webhook) connector against a real local HTTP server; no mocks.

What every API client does (status mapping, redirects, timeouts, bounded answers) is in
tests/test_api.py; here is what the webhook adds.
"""

import base64
import hashlib
import hmac
import json
import time
from datetime import date
from types import SimpleNamespace
from urllib.parse import quote, quote_plus, unquote

import pytest
import requests
from django.utils import translation

from extensions import paths, registry
from extensions.connectors.base import (
    ConnectorError,
    ExportFile,
    PermanentError,
    ReauthorizationRequired,
    TransientError,
)
from extensions.connectors.http import (
    TEST_FILENAME,
    HttpClientForm,
    HttpConnector,
    HttpSettingsForm,
    sign,
)

XML = b'<?xml version="1.0" encoding="UTF-8"?>\r\n<Invoice>\xc3\xa9\x00\xff</Invoice>\n'
SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
FILENAME = "20250307_INV-001_abcdef12.xml"
CLIENT = SimpleNamespace(
    external_id="CL-0001",
    enterprise_number="0123456749",
    vat_number="BE0123456749",
    name="Bakkerij Peeters BV",
)


@pytest.fixture(autouse=True)
def _english():
    """The assertions read English messages, whatever another test left active."""
    with translation.override("en"):
        yield


def install(url, **data):
    """An installation as the views store it: the real form, secrets split off."""
    form = HttpSettingsForm({"url": url, "method": "POST", "auth": "none", **data})
    assert form.is_valid(), form.errors
    secret_names = HttpConnector.secret_fields(HttpSettingsForm)
    values = {k: v for k, v in form.cleaned_data.items() if k not in secret_names}
    secrets = {k: v for k, v in form.cleaned_data.items() if k in secret_names and v}
    return HttpConnector(SimpleNamespace(pk=1, settings=values, secrets=secrets))


def export_file(key="41", **overrides):
    values = {
        "content": XML,
        "filename": FILENAME,
        "folder": (),
        "content_type": "application/xml",
        "metadata": {
            "document_id": "7",
            "category": "purchase",
            "kind": "invoice",
            "number": "INV-001",
            "client_number": "0123456749",
            "client_name": "Bakkerij Peeters BV",
            "external_id": "CL-0001",
            "job_id": key,
        },
        "idempotency_key": key,
    }
    values.update(overrides)
    return ExportFile(**values)


def send(connector, *files):
    with connector.open() as session:
        return [session.send(file) for file in files or [export_file()]]


def verify_standard_webhook(secret, headers, body):
    """Written from the specification, not from the connector's code."""
    key = base64.b64decode(secret[len("whsec_") :])
    content = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    return any(
        version == "v1" and hmac.compare_digest(signature, expected)
        for version, _comma, signature in (
            entry.partition(",") for entry in headers["webhook-signature"].split()
        )
    )


# --- sending ------------------------------------------------------------------------


def test_registered_with_its_secret_fields():
    assert registry.get("http") is HttpConnector
    assert HttpConnector.secret_fields(HttpSettingsForm) == ("password", "token", "signing_secret")


def test_post_carries_the_original_bytes_and_the_metadata(http_peer):
    http_peer.strict = True
    [receipt] = send(install(http_peer.url + "/in"))

    [request] = http_peer.requests
    assert (request.method, request.path) == ("POST", "/in")
    assert request.body == XML
    assert request.headers["content-type"] == "application/xml"
    assert request.headers["idempotency-key"] == "41"
    assert request.headers["x-document-id"] == "7"
    assert request.headers["x-document-category"] == "purchase"
    assert request.headers["x-client-number"] == "0123456749"
    assert request.headers["x-file-name"] == FILENAME
    assert request.headers["content-disposition"] == f'attachment; filename="{FILENAME}"'
    assert request.headers["x-partnerspace-event"] == "export"
    assert "authorization" not in request.headers
    assert receipt.reference == "HTTP 200"


def test_post_goes_to_the_folder_and_put_to_the_file(http_peer):
    template_connector = install(http_peer.url + "/in/", path_template="[invoice_type]/[year]")
    template = template_connector.folder_template({}, "purchase")
    folder = paths.render(template, client=CLIENT, category="purchase", today=date(2025, 3, 7))
    assert folder == ("purchases", "2025")
    send(template_connector, export_file(folder=folder))
    send(install(http_peer.url + "/in/", method="PUT"), export_file(folder=folder))
    send(install(http_peer.url + "/in?x=1", method="PUT"), export_file())

    assert [(r.method, r.path) for r in http_peer.requests] == [
        ("POST", "/in/purchases/2025"),
        ("PUT", f"/in/purchases/2025/{FILENAME}"),
        ("PUT", f"/in/{FILENAME}?x=1"),
    ]


def test_folder_parts_and_file_name_are_percent_encoded(http_peer):
    odd = export_file(folder=("Peeters & Zn BV", "a?b#c", "50%"), filename="Factuur café.xml")
    send(install(http_peer.url + "/in", method="PUT"), odd)

    [request] = http_peer.requests
    assert request.path == "/in/Peeters%20%26%20Zn%20BV/a%3Fb%23c/50%25/Factuur%20caf%C3%A9.xml"
    assert unquote(request.headers["x-file-name"]) == "Factuur café.xml"
    disposition = request.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="Factuur caf_.xml"')
    assert disposition.endswith("filename*=UTF-8''Factuur%20caf%C3%A9.xml")


def test_the_client_path_overrides_the_installation_path(http_peer):
    connector = install(http_peer.url, path_template="[invoice_type]/")
    client = HttpClientForm({"path": "[external_id]/"})
    assert client.is_valid(), client.errors
    assert connector.folder_template(client.cleaned_data, "sales") == "[external_id]/"
    assert connector.folder_template({"path": ""}, "sales") == "[invoice_type]/"


def test_a_missing_content_type_is_sent_as_octet_stream(http_peer):
    http_peer.strict = True
    send(install(http_peer.url), export_file(content_type=""))
    assert http_peer.requests[0].headers["content-type"] == "application/octet-stream"


def test_a_batch_reuses_one_connection(http_peer):
    send(install(http_peer.url), *[export_file(key=str(key)) for key in range(10)])

    assert len(http_peer.requests) == 10
    assert [r.headers["idempotency-key"] for r in http_peer.requests] == [
        str(key) for key in range(10)
    ]
    assert http_peer.connections == 1
    assert len({r.connection for r in http_peer.requests}) == 1


def test_a_new_batch_opens_a_new_connection(http_peer):
    connector = install(http_peer.url)
    send(connector)
    send(connector)
    assert http_peer.connections == 2


# --- authentication -----------------------------------------------------------------


def test_standard_webhooks_signature_verifies_independently(http_peer):
    before = int(time.time())
    send(install(http_peer.url, auth="signing", signing_secret=SECRET), export_file(key="99"))

    [request] = http_peer.requests
    headers = request.headers
    assert headers["webhook-id"] == headers["idempotency-key"] == "99"
    assert before <= int(headers["webhook-timestamp"]) <= time.time() + 1
    assert verify_standard_webhook(SECRET, headers, request.body)
    assert not verify_standard_webhook(SECRET, headers, request.body + b" ")
    assert not verify_standard_webhook(SECRET, {**headers, "webhook-id": "100"}, request.body)
    other = "whsec_" + base64.b64encode(b"x" * 32).decode()
    assert not verify_standard_webhook(other, headers, request.body)


def test_signing_matches_the_specification_test_vector():
    # Published with Standard Webhooks (and Svix): secret, id, timestamp, body, signature.
    assert (
        sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            b'{"test": 2432232314}',
        )
        == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_basic_authentication(http_peer):
    http_peer.strict = True
    password = "pa:ss wörd"
    http_peer.expected_authorization = (
        "Basic " + base64.b64encode(f"intake:{password}".encode()).decode()
    )
    send(install(http_peer.url, auth="basic", username="intake", password=password))
    assert len(http_peer.requests) == 1

    wrong = install(http_peer.url, auth="basic", username="intake", password="old-password")
    with pytest.raises(ReauthorizationRequired, match="HTTP 401") as refused:
        send(wrong)
    assert "old-password" not in str(refused.value)


def test_bearer_authentication(http_peer):
    http_peer.strict = True
    http_peer.expected_authorization = "Bearer tok-123.abc"
    send(install(http_peer.url, auth="bearer", token="tok-123.abc"))

    with pytest.raises(ReauthorizationRequired) as refused:
        send(install(http_peer.url, auth="bearer", token="rotated-away"))
    assert "rotated-away" not in str(refused.value)


def test_a_server_echoing_the_token_does_not_leak_it(http_peer):
    http_peer.respond(400, {}, b"bad token tok-secret-1 for this endpoint")
    with pytest.raises(PermanentError) as refused:
        send(install(http_peer.url, auth="bearer", token="tok-secret-1"))
    assert "tok-secret-1" not in str(refused.value)
    assert str(refused.value) == "HTTP 400: bad token *** for this endpoint"


# --- what a receiver says -------------------------------------------------------------

PASSWORD = 'pä:ss wörd/+&"1'
TOKEN = "tok-9f8e7d.c6b5a4~rotate-me"
NGINX_PAGE = b"""<!DOCTYPE html>
<html><head><title>502 Bad Gateway</title>
<style>body { color: red; }</style>
<script>var leaked = "script text"; alert(leaked);</script></head>
<body><h1>Bad&nbsp;Gateway &amp; friends. The upstream is down.</h1>
<p>Try again later.</p><hr><center>nginx</center></body></html>"""


def careless_echoes(request) -> list[str]:
    """What receivers have been seen to answer: the credentials they got, in one form each."""
    authorization = request.headers.get("authorization", "")
    scheme, _space, credential = authorization.partition(" ")
    if scheme == "Basic":
        credential = base64.b64decode(credential).decode().partition(":")[2]
    return [
        f"Authorization: {authorization} is not valid here",
        f"bad credential {authorization.partition(' ')[2]} for this endpoint",
        f"bad credential {credential} for this endpoint",
        f"GET /login?password={quote_plus(credential)}&next=/ failed",
        f"GET /login/{quote(credential, safe='')} failed",
        json.dumps({"error": "refused", "authorization": authorization}),
        json.dumps({"error": "refused", "credential": credential}),
        json.dumps({"error": "refused", "credential": credential}, ensure_ascii=False),
    ]


def leaks(auth: str) -> list[str]:
    """Every form of the credentials that must not reach the Integrations tab."""
    if auth == "basic":
        pair = base64.b64encode(f"intake:{PASSWORD}".encode()).decode()
        escaped = [json.dumps(PASSWORD, ensure_ascii=ascii)[1:-1] for ascii in (True, False)]
        return [PASSWORD, quote(PASSWORD, safe=""), quote_plus(PASSWORD), pair, *escaped]
    return [TOKEN, f"Bearer {TOKEN}", quote(TOKEN, safe="")]


@pytest.mark.parametrize("auth", ["basic", "bearer"])
@pytest.mark.parametrize("status", [400, 401, 500])
def test_an_answer_echoing_the_credentials_shows_none_of_their_forms(http_peer, auth, status):
    connector = install(
        http_peer.url, auth=auth, username="intake", password=PASSWORD, token=TOKEN
    )
    for form in range(len(careless_echoes(SimpleNamespace(headers={})))):
        http_peer.respond(
            status,
            {"Content-Type": "text/plain"},
            lambda request, form=form: careless_echoes(request)[form].encode(),
        )
        with pytest.raises(ConnectorError) as refused:
            send(connector)
        message = str(refused.value)
        assert "***" in message, message
        for leak in leaks(auth):
            assert leak not in message, (form, message)


def test_the_signing_secret_is_hidden_with_or_without_its_prefix(http_peer):
    bare = SECRET.removeprefix("whsec_")
    http_peer.respond(400, {}, f"expected {SECRET} or {bare}".encode())
    with pytest.raises(PermanentError) as refused:
        send(install(http_peer.url, auth="signing", signing_secret=SECRET))
    assert str(refused.value) == "HTTP 400: expected *** or ***"


# --- answers ------------------------------------------------------------------------


def test_receipt_from_location_then_json_id_then_status(http_peer):
    http_peer.respond(201, {"Location": "/in/documents/abc-1"}, b"created")
    http_peer.respond(200, {"Content-Type": "application/json"}, b'{"id": "doc_42", "ok": true}')
    http_peer.respond(202, {"Content-Type": "application/json"}, b'{"status": "queued"}')
    http_peer.respond(204)
    receipts = send(install(http_peer.url), *[export_file(key=str(k)) for k in range(4)])
    assert [r.reference for r in receipts] == [
        "/in/documents/abc-1",
        "doc_42",
        "HTTP 202",
        "HTTP 204",
    ]


def test_the_batch_goes_on_after_a_refused_document(http_peer):
    http_peer.respond(422, {}, b"no")
    with install(http_peer.url).open() as session:
        with pytest.raises(PermanentError):
            session.send(export_file(key="1"))
        assert session.send(export_file(key="2")).reference == "HTTP 200"
    assert http_peer.connections == 1


# --- the network --------------------------------------------------------------------


def test_a_private_host_is_blocked_before_any_document(settings, http_peer):
    connector = install(http_peer.url)
    settings.EXPORT_ALLOW_PRIVATE_HOSTS = False
    with pytest.raises(PermanentError, match="EXPORT_ALLOW_PRIVATE_HOSTS"):
        send(connector)
    with pytest.raises(PermanentError, match="loopback"):
        connector.check()
    assert http_peer.requests == []


# --- test connection ----------------------------------------------------------------


def test_check_sends_a_test_event_that_a_post_only_receiver_accepts(http_peer):
    http_peer.strict = True
    http_peer.methods = {"POST"}
    http_peer.expected_authorization = "Bearer tok-1"
    http_peer.respond(200, {"Content-Type": "text/plain"}, b"ok")
    assert requests.options(http_peer.url + "/in", timeout=5).status_code == 405
    http_peer.requests.clear()

    sentence = install(http_peer.url + "/in", auth="bearer", token="tok-1").check()

    assert sentence == (
        "127.0.0.1 answered the test event (HTTP 200: ok); documents will be sent with POST."
    )
    [request] = http_peer.requests
    assert (request.method, request.path) == ("POST", "/in")
    assert request.headers["x-partnerspace-event"] == "test"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-file-name"] == TEST_FILENAME
    event = json.loads(request.body)
    assert event["type"] == "test"
    assert request.headers["idempotency-key"] == event["id"]


def test_check_with_put_writes_the_test_file_under_the_url(http_peer):
    http_peer.methods = {"PUT"}
    http_peer.respond(201)
    sentence = install(http_peer.url + "/in/", method="PUT").check()
    assert "(HTTP 201)" in sentence and "PUT" in sentence
    [request] = http_peer.requests
    assert (request.method, request.path) == ("PUT", f"/in/{TEST_FILENAME}")
    assert request.headers["x-partnerspace-event"] == "test"


def test_check_uses_basic_authentication_as_an_export_does(http_peer):
    http_peer.strict = True
    http_peer.expected_authorization = (
        "Basic " + base64.b64encode(f"intake:{PASSWORD}".encode()).decode()
    )
    install(http_peer.url, auth="basic", username="intake", password=PASSWORD).check()
    with pytest.raises(ReauthorizationRequired, match="HTTP 401: Unauthorized"):
        install(http_peer.url, auth="basic", username="intake", password="old").check()


def test_check_signs_its_test_event(http_peer):
    install(http_peer.url, auth="signing", signing_secret=SECRET).check()
    [request] = http_peer.requests
    assert request.headers["webhook-id"] == request.headers["idempotency-key"]
    assert request.headers["webhook-id"].startswith("test_")
    assert verify_standard_webhook(SECRET, request.headers, request.body)
    assert not verify_standard_webhook(SECRET, request.headers, b"")


def test_every_test_event_has_its_own_key(http_peer):
    connector = install(http_peer.url)
    connector.check()
    connector.check()
    first, second = (r.headers["idempotency-key"] for r in http_peer.requests)
    assert first != second


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, ReauthorizationRequired),
        (403, ReauthorizationRequired),
        (404, PermanentError),
        (405, PermanentError),
        (408, TransientError),
        (429, TransientError),
        (500, TransientError),
        (503, TransientError),
    ],
)
def test_check_fails_on_any_answer_but_2xx_with_the_receivers_words(http_peer, status, error):
    http_peer.respond(status, {"Content-Type": "text/plain"}, b"no such hook\r\nhere")
    with pytest.raises(error) as failed:
        install(http_peer.url).check()
    assert f"HTTP {status}: no such hook here" in str(failed.value)


def test_check_shows_an_html_answer_as_text(http_peer):
    page = b"<html><body><h1>Thanks! Event received.</h1><script>x()</script></body></html>"
    http_peer.respond(200, {"Content-Type": "text/html"}, page)
    sentence = install(http_peer.url).check()
    assert "(HTTP 200: Thanks!)" in sentence
    http_peer.respond(404, {"Content-Type": "text/html"}, NGINX_PAGE.replace(b"502", b"404"))
    with pytest.raises(PermanentError) as failed:
        install(http_peer.url).check()
    assert str(failed.value) == "HTTP 404: Bad Gateway & friends."


def test_check_hides_credentials_the_receiver_echoes(http_peer):
    http_peer.respond(401, {}, lambda request: careless_echoes(request)[0].encode())
    with pytest.raises(ReauthorizationRequired) as refused:
        install(http_peer.url, auth="bearer", token=TOKEN).check()
    assert TOKEN not in str(refused.value)
    assert "Authorization: Bearer *** is not valid here" in str(refused.value)


# --- forms --------------------------------------------------------------------------


def settings_form(has_stored_secrets=(), **data):
    return HttpSettingsForm(
        {"url": "https://hooks.example.be/in", "method": "POST", "auth": "none", **data},
        has_stored_secrets=has_stored_secrets,
    )


def test_plain_http_is_refused_when_private_hosts_are_not_allowed(settings):
    settings.EXPORT_ALLOW_PRIVATE_HOSTS = False
    form = settings_form(url="http://hooks.example.be/in")
    assert not form.is_valid()
    assert "https" in str(form.errors["url"])
    assert settings_form().is_valid()


def test_plain_http_is_allowed_with_private_hosts(settings):
    settings.EXPORT_ALLOW_PRIVATE_HOSTS = True
    assert settings_form(url="http://127.0.0.1:8080/in").is_valid()


@pytest.mark.parametrize(
    "url", ["https://user:pw@hooks.example.be/in", "https://hooks.example.be/in#x", "ftp://h/x"]
)
def test_urls_with_credentials_fragments_or_other_schemes_are_refused(url):
    assert "url" in settings_form(url=url).errors


def test_basic_needs_a_user_name_and_a_password():
    form = settings_form(auth="basic")
    assert set(form.errors) == {"username", "password"}
    assert settings_form(auth="basic", username="u", password="p").is_valid()
    # Editing: a stored password is kept when the field is left blank.
    assert settings_form(auth="basic", username="u", has_stored_secrets={"password"}).is_valid()
    assert "username" in settings_form(auth="basic", username="a:b", password="p").errors


def test_bearer_needs_a_token_without_spaces():
    assert "token" in settings_form(auth="bearer").errors
    assert "token" in settings_form(auth="bearer", token="two words").errors
    assert settings_form(auth="bearer", has_stored_secrets={"token"}).is_valid()


@pytest.mark.parametrize(
    "value",
    [
        "not-a-secret",
        base64.b64encode(b"k" * 32).decode(),  # no whsec_ prefix
        "whsec_" + base64.b64encode(b"short").decode(),
        "whsec_***",
    ],
)
def test_a_malformed_signing_secret_is_refused(value):
    assert "signing_secret" in settings_form(auth="signing", signing_secret=value).errors


def test_signing_needs_a_secret_on_first_install():
    assert "signing_secret" in settings_form(auth="signing").errors
    assert settings_form(auth="signing", has_stored_secrets={"signing_secret"}).is_valid()
    assert settings_form(auth="signing", signing_secret=SECRET).is_valid()


def test_path_templates_are_validated():
    form = settings_form(path_template="[nope]/")
    assert "[external_id]" in str(form.errors["path_template"])
    assert "path_template" in settings_form(path_template="../up").errors
    assert not HttpClientForm({"path": "/absolute"}).is_valid()
    assert HttpClientForm({"path": ""}).is_valid()
