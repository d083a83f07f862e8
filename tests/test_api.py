"""The API client every HTTP-speaking connector uses, against real local servers; no mocks."""

import ipaddress
import json
import socket
import ssl
import time
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.utils import translation

from extensions.api import (
    MAX_BODY,
    RATE_LIMIT_TRIES,
    ApiClient,
    RateLimited,
    Response,
    retry_after,
)
from extensions.connectors.base import (
    ConnectorError,
    PermanentError,
    ReauthorizationRequired,
    TransientError,
)
from tests.peers import free_port
from tests.peers.http import HttpPeer

TOKEN = "tok-9f8e7d.c6b5a4~rotate-me"
NGINX_PAGE = b"""<!DOCTYPE html>
<html><head><title>502 Bad Gateway</title>
<style>body { color: red; }</style>
<script>var leaked = "script text"; alert(leaked);</script></head>
<body><h1>Bad&nbsp;Gateway &amp; friends. The upstream is down.</h1>
<p>Try again later.</p><hr><center>nginx</center></body></html>"""


@pytest.fixture(autouse=True)
def _english():
    """The assertions read English messages, whatever another test left active."""
    with translation.override("en"):
        yield


def call(base_url, method="POST", path="/in", client_class=ApiClient, **kwargs) -> Response:
    """One request through a fresh client, as a connector's session would send it."""
    options = {
        name: kwargs.pop(name)
        for name in ("secrets", "user", "timeout", "max_body", "rate_limit_wait")
        if name in kwargs
    }
    with client_class(base_url, **options) as client:
        return client.request(method, path, **kwargs)


# --- statuses -----------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 201, 204])
def test_2xx_is_returned_with_status_headers_and_body(http_peer, status):
    body = b"" if status == 204 else b'{"id": "doc_42"}'
    http_peer.respond(status, {"Content-Type": "application/json", "X-Thing": "1"}, body)
    response = call(http_peer.url)
    assert (response.ok, response.status, response.body) == (True, status, body)
    assert response.headers["x-thing"] == "1"  # headers are case-insensitive
    assert response.json() == (None if status == 204 else {"id": "doc_42"})
    assert response.complete


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, PermanentError),
        (404, PermanentError),
        (409, PermanentError),
        (422, PermanentError),
        (401, ReauthorizationRequired),
        (403, ReauthorizationRequired),
        (408, TransientError),
        (429, RateLimited),
        (500, TransientError),
        (502, TransientError),
        (503, TransientError),
    ],
)
def test_every_other_status_is_a_typed_error_with_the_servers_words(http_peer, status, error):
    http_peer.respond(status, {"Content-Type": "text/plain"}, b"no such\r\nthing")
    with pytest.raises(ConnectorError) as failed:
        call(http_peer.url)
    assert type(failed.value) is error
    assert f"HTTP {status}: no such thing" in str(failed.value)
    if issubclass(error, TransientError):
        assert failed.value.retry_after is None


# --- rate limits -------------------------------------------------------------------------


def test_a_short_rate_limit_is_waited_out_on_the_same_connection(http_peer):
    http_peer.respond(429, {"Retry-After": "0"}, b"slow down")
    http_peer.respond(201, {}, b"")
    response = call(http_peer.url, rate_limit_wait=10, data=b"<Invoice/>")
    assert response.status == 201
    assert [r.body for r in http_peer.requests] == [b"<Invoice/>", b"<Invoice/>"]
    assert http_peer.connections == 1


def test_a_rate_limit_is_the_engines_without_a_budget_or_when_it_is_too_long(http_peer):
    http_peer.respond(429, {"Retry-After": "0"}, b"slow down")
    with pytest.raises(RateLimited):
        call(http_peer.url)  # no budget: the engine decides
    http_peer.respond(429, {"Retry-After": "30"}, b"slow down")
    with pytest.raises(RateLimited) as limited:
        call(http_peer.url, rate_limit_wait=10)  # longer than the budget
    assert limited.value.retry_after == 30
    assert len(http_peer.requests) == 2


def test_a_rate_limit_that_never_ends_is_given_up_after_a_few_tries(http_peer):
    for _ in range(RATE_LIMIT_TRIES + 3):
        http_peer.respond(429, {"Retry-After": "0"}, b"slow down")
    with pytest.raises(RateLimited):
        call(http_peer.url, rate_limit_wait=10)
    assert len(http_peer.requests) == RATE_LIMIT_TRIES


def test_refused_credentials_name_the_host(http_peer):
    http_peer.respond(403, {}, b"forbidden")
    with pytest.raises(ReauthorizationRequired) as refused:
        call(http_peer.url)
    assert str(refused.value) == (
        "127.0.0.1 refused the credentials (HTTP 403: forbidden); update the authentication "
        "in the extension's settings."
    )


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503])
def test_transient_answers_honour_retry_after_in_seconds(http_peer, status):
    http_peer.respond(status, {"Retry-After": "7"}, b"slow down")
    with pytest.raises(TransientError, match=f"HTTP {status}: slow down") as busy:
        call(http_peer.url)
    assert busy.value.retry_after == 7


@pytest.mark.parametrize("status", [429, 503])
def test_transient_answers_honour_retry_after_as_a_date(http_peer, status):
    later = datetime.now(UTC) + timedelta(seconds=120)
    http_peer.respond(status, {"Retry-After": format_datetime(later, usegmt=True)})
    with pytest.raises(TransientError) as busy:
        call(http_peer.url)
    assert 110 <= busy.value.retry_after <= 121


def test_retry_after_reads_seconds_and_dates():
    earlier = datetime.now(UTC) - timedelta(hours=1)
    later = datetime.now(UTC) + timedelta(seconds=60)
    assert retry_after("120") == 120
    assert retry_after(" 0 ") == 0
    assert 50 <= retry_after(format_datetime(later, usegmt=True)) <= 61
    assert retry_after(format_datetime(earlier, usegmt=True)) == 0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 -0000") == 0  # no zone: read as UTC
    for unusable in (None, "", "soon", "-5", "1.5"):
        assert retry_after(unusable) is None


def test_a_long_answer_becomes_one_clean_line(http_peer):
    body = b"Invalid invoice:\r\n\x1b[31mBuyerReference\x00 missing" + b"x" * 500
    http_peer.respond(422, {"Content-Type": "text/plain"}, body)
    with pytest.raises(PermanentError) as refused:
        call(http_peer.url)
    message = str(refused.value)
    assert message.startswith("HTTP 422: Invalid invoice: [31mBuyerReference missingxxx")
    assert len(message) == len("HTTP 422: ") + 200
    assert not any(ord(char) < 32 for char in message)


def test_an_html_error_page_becomes_one_sentence_of_text(http_peer):
    http_peer.respond(502, {"Content-Type": "text/html; charset=utf-8"}, NGINX_PAGE)
    with pytest.raises(TransientError) as down:
        call(http_peer.url)
    assert str(down.value) == "HTTP 502: Bad Gateway & friends."


def test_accepted_statuses_are_returned_for_the_caller_to_handle(http_peer):
    http_peer.respond(404, {"Content-Type": "application/json"}, b'{"error": "itemNotFound"}')
    response = call(http_peer.url, "GET", "/drive/items/x", accept=(404,))
    assert (response.ok, response.status) == (False, 404)
    assert response.json() == {"error": "itemNotFound"}


# --- an API's own meaning -----------------------------------------------------------


class ConflictingApi(ApiClient):
    """As Dropbox answers 409 with an ``error_summary``: some conflicts pass if retried."""

    def classify(self, response):
        answer = response.json()
        if response.status == 409 and isinstance(answer, dict):
            summary = str(answer.get("error_summary", ""))
            if summary.startswith("too_many_write_operations"):
                return TransientError(self.describe(response), retry_after=30)
        return None


def test_classify_gives_a_status_the_apis_own_meaning(http_peer):
    busy = {"error_summary": "too_many_write_operations/..", "error": {".tag": "too_many"}}
    http_peer.respond(409, {"Content-Type": "application/json"}, json.dumps(busy).encode())
    with pytest.raises(TransientError) as retried:
        call(http_peer.url, client_class=ConflictingApi)
    assert retried.value.retry_after == 30
    assert "HTTP 409: " in str(retried.value)
    assert "too_many_write_operations" in str(retried.value)


def test_what_classify_leaves_falls_back_to_the_default_mapping(http_peer):
    conflict = {"error_summary": "path/conflict/file/..", "error": {".tag": "path"}}
    http_peer.respond(409, {"Content-Type": "application/json"}, json.dumps(conflict).encode())
    http_peer.respond(409, {"Content-Type": "text/plain"}, b"not json")
    http_peer.respond(401, {}, b"expired_access_token")
    for error in (PermanentError, PermanentError, ReauthorizationRequired):
        with pytest.raises(ConnectorError) as failed:
            call(http_peer.url, client_class=ConflictingApi)
        assert type(failed.value) is error


# --- secrets ------------------------------------------------------------------------


def test_a_secret_echoed_in_an_error_body_is_removed(http_peer):
    http_peer.respond(
        400,
        {"Content-Type": "application/json"},
        lambda request: json.dumps({"error": f"bad {request.headers['authorization']}"}).encode(),
    )
    with pytest.raises(PermanentError) as refused:
        call(http_peer.url, secrets=[TOKEN], headers={"Authorization": f"Bearer {TOKEN}"})
    assert TOKEN not in str(refused.value)
    assert str(refused.value) == 'HTTP 400: {"error": "bad Bearer ***"}'


def test_a_value_obtained_later_is_hidden_too(http_peer):
    http_peer.respond(500, {}, f"token {TOKEN} expired".encode())
    with ApiClient(http_peer.url, secrets=["refresh-1234567"]) as client:
        client.hide(TOKEN)  # an access token fetched with the stored refresh token
        with pytest.raises(TransientError) as down:
            client.request("GET", "/me")
    assert str(down.value) == "HTTP 500: token *** expired"


def test_a_redirect_location_is_redacted(http_peer):
    http_peer.respond(301, {"Location": f"https://elsewhere.example/in?token={TOKEN}"})
    with pytest.raises(ReauthorizationRequired) as moved:
        call(http_peer.url, secrets=[TOKEN])
    assert TOKEN not in str(moved.value)
    assert "https://elsewhere.example/in?token=***" in str(moved.value)


# --- requests and answers -----------------------------------------------------------


def test_relative_urls_go_under_the_base_and_absolute_ones_as_they_are(http_peer):
    with ApiClient(http_peer.url + "/v1.0/") as client:
        client.request("GET", "/me/drive", params={"select": "id,name"})
        client.request("POST", "items", json={"name": "Factuur café.xml"})
        client.request("PUT", http_peer.url + "/upload/session-1", data=b"\x00bytes")
    first, second, third = http_peer.requests
    assert (first.method, first.path) == ("GET", "/v1.0/me/drive?select=id%2Cname")
    assert (second.path, second.headers["content-type"]) == ("/v1.0/items", "application/json")
    assert json.loads(second.body) == {"name": "Factuur café.xml"}
    assert (third.path, third.body) == ("/upload/session-1", b"\x00bytes")
    assert {r.headers["user-agent"] for r in http_peer.requests} == {"PartnerSpace-Export/1"}


def test_a_request_needs_an_open_client(http_peer):
    with pytest.raises(RuntimeError):
        ApiClient(http_peer.url).request("GET", "/")
    assert http_peer.requests == []


def test_one_client_keeps_one_connection_alive(http_peer):
    http_peer.default.status, http_peer.default.body = 404, b"gone"
    with ApiClient(http_peer.url) as client:
        for number in range(5):
            client.request("GET", f"/item/{number}", accept=(404,))
        with pytest.raises(PermanentError):
            client.request("GET", "/item/5")
    assert len(http_peer.requests) == 6
    assert http_peer.connections == 1
    assert len({r.connection for r in http_peer.requests}) == 1
    call(http_peer.url, "GET", accept=(404,))
    assert http_peer.connections == 2  # a new client, a new connection


def test_a_large_answer_is_cut_and_the_next_request_still_works(http_peer):
    http_peer.respond(200, {"Content-Type": "application/json"}, b"[" + b"1," * 150_000)
    with ApiClient(http_peer.url) as client:
        large = client.request("GET", "/large")
        assert (len(large.body), large.complete, large.json()) == (MAX_BODY, False, None)
        assert client.request("GET", "/next").status == 200
    assert len(http_peer.requests) == 2
    assert http_peer.connections == 2  # an unread rest closes the connection


def test_an_answer_of_exactly_the_bound_is_whole(http_peer):
    http_peer.respond(200, {}, b"[1, 2, 3]")
    http_peer.respond(200, {}, b"[1, 2, 3, 4]")
    with ApiClient(http_peer.url, max_body=9) as client:
        whole = client.request("GET", "/whole")
        cut = client.request("GET", "/cut")
        client.request("GET", "/after")
    assert (whole.body, whole.complete, whole.json()) == (b"[1, 2, 3]", True, [1, 2, 3])
    assert (cut.body, cut.complete, cut.json()) == (b"[1, 2, 3,", False, None)
    assert http_peer.connections == 1  # read in one go, nothing unread: the connection stays


# --- redirects ----------------------------------------------------------------------


def test_a_redirect_loop_is_an_error_not_a_hang(http_peer):
    http_peer.default.status, http_peer.default.headers = 307, {"Location": "/loop"}
    started = time.monotonic()
    with pytest.raises(ReauthorizationRequired, match=r"127\.0\.0\.1 redirects in a loop"):
        call(http_peer.url, path="/loop")
    assert time.monotonic() - started < 5
    assert len(http_peer.requests) == 4  # the request and the session's 3 redirects


@pytest.mark.parametrize("status", [307, 308])
def test_307_and_308_are_followed_with_method_body_and_headers(http_peer, status):
    http_peer.respond(status, {"Location": "/new-in"})
    response = call(http_peer.url, data=b"<Invoice/>", headers={"Idempotency-Key": "41"})
    _first, second = http_peer.requests
    assert (second.method, second.path, second.body) == ("POST", "/new-in", b"<Invoice/>")
    assert second.headers["idempotency-key"] == "41"
    assert response.url == http_peer.url + "/new-in"


@pytest.mark.parametrize("status", [301, 302, 303])
def test_a_lossy_redirect_of_an_upload_waits_for_a_new_address(http_peer, status):
    http_peer.respond(status, {"Location": "https://elsewhere.example/in"})
    with pytest.raises(ReauthorizationRequired) as moved:
        call(http_peer.url, "PUT", data=b"<Invoice/>")
    assert str(moved.value) == (
        f"The server answered HTTP {status} and points to https://elsewhere.example/in: "
        "enter the new address in the extension's settings."
    )
    assert [r.method for r in http_peer.requests] == ["PUT"]


def test_a_301_on_a_get_is_followed(http_peer):
    http_peer.respond(301, {"Location": "/moved"})
    http_peer.respond(200, {}, b"here")
    assert call(http_peer.url, "GET", "/old").body == b"here"
    assert [r.path for r in http_peer.requests] == ["/old", "/moved"]


# --- the network --------------------------------------------------------------------


def test_a_private_host_is_blocked_before_any_request(settings, http_peer):
    settings.EXPORT_ALLOW_PRIVATE_HOSTS = False
    with pytest.raises(PermanentError) as blocked, ApiClient(http_peer.url + "/v1"):
        pytest.fail("opened")
    assert "127.0.0.1 is a loopback address" in str(blocked.value)
    assert "EXPORT_ALLOW_PRIVATE_HOSTS" in str(blocked.value)
    assert (http_peer.requests, http_peer.connections) == ([], 0)


def test_a_redirect_to_a_private_host_is_blocked(settings, http_peer):
    with ApiClient(http_peer.url) as client:
        client.request("GET", "/1")  # while allowed: the kept-alive connection
        settings.EXPORT_ALLOW_PRIVATE_HOSTS = False
        http_peer.respond(307, {"Location": "http://10.255.255.1:9/in"})
        with pytest.raises(PermanentError, match=r"10\.255\.255\.1.*private"):
            client.request("POST", "/2", data=b"x")
    assert [r.path for r in http_peer.requests] == ["/1", "/2"]


def test_an_unknown_host_stops_before_any_request(monkeypatch):
    real = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        if host == "api.nowhere.example":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    unknown = pytest.raises(TransientError, match=r"cannot resolve host api\.nowhere\.example")
    with unknown, ApiClient("https://api.nowhere.example/v2"):
        pytest.fail("opened")


def test_nothing_listening_is_transient():
    with pytest.raises(TransientError) as refused:
        call(f"http://127.0.0.1:{free_port()}")
    assert str(refused.value) == "127.0.0.1 refused the connection."


def test_a_server_that_never_answers_times_out(settings, silent_url):
    settings.EXPORT_HTTP_TIMEOUT = (2, 1)
    started = time.monotonic()
    with pytest.raises(TransientError, match=r"127\.0\.0\.1 did not answer within 1 seconds"):
        call(silent_url)
    assert 0.9 <= time.monotonic() - started < 4


def test_the_clients_own_timeout_wins(settings, silent_url):
    settings.EXPORT_HTTP_TIMEOUT = (30, 30)
    started = time.monotonic()
    with pytest.raises(TransientError, match=r"did not answer within 0\.5 seconds"):
        call(silent_url, timeout=(2, 0.5))
    assert 0.4 <= time.monotonic() - started < 3


@pytest.fixture
def untrusted_tls_peer(tmp_path):
    """An HTTPS server whose certificate no one vouches for (self-signed)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    pem = tmp_path / "server.pem"
    pem.write_bytes(
        certificate.public_bytes(serialization.Encoding.PEM)
        + key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pem)
    peer = HttpPeer()
    peer.server.socket = context.wrap_socket(peer.server.socket, server_side=True)
    peer.start()
    yield peer
    peer.stop()


def test_an_untrusted_certificate_is_a_tls_failure(untrusted_tls_peer):
    with pytest.raises(TransientError) as refused:
        call(untrusted_tls_peer.url.replace("http://", "https://"))
    assert str(refused.value) == (
        "The secure connection to 127.0.0.1 failed (certificate or TLS problem)."
    )
    assert untrusted_tls_peer.requests == []
