"""The outbound guard: private destinations refused, one resolution, timeouts always.

Real peers on 127.0.0.1 (an HTTP server, a TLS server, a server that never answers), so a
missing guard or timeout shows up as a request that gets through or a test that fails.
"""

import datetime
import socket
import ssl
import threading
import time
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from extensions.outbound import BlockedHost, UnresolvableHost, connect, resolve, session

REAL_GETADDRINFO = socket.getaddrinfo


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.server.hits.append(self.path)
        if self.path == "/loop":
            self.send_response(302)
            self.send_header("Location", "/loop")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = f"hello {self.headers['Host']}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # failed TLS handshakes are part of the tests


@contextmanager
def serve(context: ssl.SSLContext | None = None):
    server = Server(("127.0.0.1", 0), Handler)
    server.hits = []
    if context is not None:
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def http_server():
    with serve() as server:
        yield server


@pytest.fixture
def silent_server():
    """Accepts connections and never answers; gives up after 5 s so a hang cannot pass."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    stop = threading.Event()

    def run():
        held = []
        while not stop.is_set():
            with suppress(TimeoutError):
                held.append((listener.accept()[0], time.monotonic()))
            for conn, since in held:
                if time.monotonic() - since > 5:
                    conn.close()
        for conn, _since in held:
            conn.close()

    thread = threading.Thread(target=run)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/"
    stop.set()
    thread.join(5)
    listener.close()


def make_certificates(tmp_path):
    """A CA and a leaf certificate for the name ``localhost`` only."""
    now = datetime.datetime.now(datetime.UTC)

    def build(subject, issuer, public_key, signing_key, *, ca, issuer_public_key):
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_public_key),
                critical=False,
            )
        )
        if ca:
            builder = builder.add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    key_cert_sign=True,
                    crl_sign=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
        else:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
            ).add_extension(
                x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
            )
        return builder.sign(signing_key, hashes.SHA256())

    ca_key, leaf_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    ca = build("Test CA", "Test CA", ca_key.public_key(), ca_key, ca=True,
               issuer_public_key=ca_key.public_key())  # fmt: skip
    leaf = build("localhost", "Test CA", leaf_key.public_key(), ca_key, ca=False,
                 issuer_public_key=ca_key.public_key())  # fmt: skip
    pem = serialization.Encoding.PEM
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(pem))
    (tmp_path / "leaf.pem").write_bytes(
        leaf.public_bytes(pem)
        + leaf_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return tmp_path / "ca.pem", tmp_path / "leaf.pem"


@pytest.fixture
def tls_server(tmp_path):
    ca_path, leaf_path = make_certificates(tmp_path)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(leaf_path)
    server_names = []
    context.sni_callback = lambda _sock, name, _context: server_names.append(name)
    with serve(context) as server:
        server.server_names = server_names
        yield server, ca_path


@pytest.fixture
def blocking(settings):
    settings.EXPORT_ALLOW_PRIVATE_HOSTS = False


@pytest.fixture
def allowing(settings):
    settings.EXPORT_ALLOW_PRIVATE_HOSTS = True


@pytest.fixture
def fake_dns(monkeypatch):
    """Answer chosen names with chosen addresses; count every lookup."""
    answers, calls = {}, []

    def getaddrinfo(host, port, *args, **kwargs):
        calls.append(host)
        if host in answers:
            return [
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))
                for address in answers[host]
            ]
        return REAL_GETADDRINFO(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers, calls


def blocked_cause(error: BaseException) -> BlockedHost | None:
    """The BlockedHost somewhere under a requests/urllib3 exception."""
    seen, todo = set(), [error]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, BlockedHost):
            return current
        todo += [current.__cause__, current.__context__, getattr(current, "reason", None)]
        todo += [arg for arg in current.args if isinstance(arg, BaseException)]
    return None


PRIVATE = [
    ("127.0.0.1", "loopback"),
    ("localhost", "loopback"),
    ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback"),
    ("169.254.169.254", "link-local"),
    ("fe80::1", "link-local"),
    ("10.1.2.3", "private"),
    ("192.168.1.10", "private"),
    ("fd00::1", "private"),
    ("::ffff:10.0.0.5", "private"),
    ("2002:a00:5::1", "private"),  # 6to4 around 10.0.0.5
    ("64:ff9b::a9fe:a9fe", "link-local"),  # NAT64 around 169.254.169.254
    ("100.64.0.1", "shared"),
    ("0.0.0.0", "unspecified"),  # noqa: S104
    ("224.0.0.1", "multicast"),
    ("240.0.0.1", "reserved"),
]


@pytest.mark.parametrize(("host", "kind"), PRIVATE)
def test_private_destinations_are_refused(blocking, http_server, host, kind):
    with pytest.raises(BlockedHost, match=kind) as caught:
        connect(host, http_server.server_port, timeout=1)
    message = str(caught.value)
    assert host in message
    assert "exports to private networks are disabled" in message
    assert http_server.hits == []


def test_a_name_is_refused_by_what_it_resolves_to(blocking, http_server):
    with pytest.raises(BlockedHost) as caught:
        connect("localhost", http_server.server_port)
    assert str(caught.value).startswith("localhost resolves to 127.0.0.1, a loopback address;")


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "2002:808:808::1", "64:ff9b::808:808"],
)
def test_public_addresses_pass_the_check(blocking, address):
    [(_family, sockaddr)] = resolve(address, 443)
    assert sockaddr[:2] == (address, 443)


def test_dns_rebinding_to_a_private_address_is_refused(blocking, fake_dns):
    answers, _calls = fake_dns
    answers["exports.example.com"] = ["10.0.0.5"]
    with pytest.raises(BlockedHost) as caught:
        connect("exports.example.com", 443)
    assert str(caught.value) == (
        "exports.example.com resolves to 10.0.0.5, a private address; exports to private "
        "networks are disabled (EXPORT_ALLOW_PRIVATE_HOSTS)"
    )
    answers["exports.example.com"] = ["8.8.8.8", "10.0.0.5"]  # any bad answer is enough
    with pytest.raises(BlockedHost, match=r"10\.0\.0\.5"):
        connect("exports.example.com", 443)
    with pytest.raises(requests.ConnectionError) as caught:
        session().get("https://exports.example.com/")
    assert "10.0.0.5" in str(blocked_cause(caught.value))


def test_the_name_is_resolved_once_and_the_answer_is_used(allowing, http_server, fake_dns):
    answers, calls = fake_dns
    answers["exports.example.com"] = ["127.0.0.1"]  # resolvable only through the fake
    port = http_server.server_port
    with connect("exports.example.com", port) as sock:
        assert sock.getpeername() == ("127.0.0.1", port)
    assert calls == ["exports.example.com"]
    response = session().get(f"http://exports.example.com:{port}/")
    assert response.text == f"hello exports.example.com:{port}"
    assert calls == ["exports.example.com"] * 2


def test_unresolvable_host_is_a_clear_oserror(fake_dns, monkeypatch):
    def fail(*args, **kwargs):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", fail)
    with pytest.raises(UnresolvableHost, match=r"cannot resolve host nowhere\.invalid") as caught:
        connect("nowhere.invalid", 443)
    assert isinstance(caught.value, OSError)


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_session_refuses_private_destinations(blocking, http_server, scheme):
    url = f"{scheme}://127.0.0.1:{http_server.server_port}/"
    with pytest.raises(requests.ConnectionError) as caught:
        session().get(url)
    assert "127.0.0.1 is a loopback address" in str(blocked_cause(caught.value))
    assert http_server.hits == []


def test_session_reaches_a_local_server_when_allowed(allowing, http_server):
    response = session().get(f"http://127.0.0.1:{http_server.server_port}/")
    assert response.status_code == 200
    assert http_server.hits == ["/"]


def test_connect_sets_nodelay_keepalive_and_timeout(allowing, http_server):
    with connect("127.0.0.1", http_server.server_port, timeout=7) as sock:
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
        assert sock.gettimeout() == 7


@pytest.mark.parametrize("timeout", [None, 0, -1])
def test_connect_refuses_to_wait_forever(allowing, http_server, timeout):
    with pytest.raises(ValueError, match="timeout"):
        connect("127.0.0.1", http_server.server_port, timeout=timeout)


def test_a_silent_server_times_out(allowing, silent_server):
    started = time.monotonic()
    with pytest.raises(requests.exceptions.Timeout):
        session().get(silent_server, timeout=0.5)
    assert time.monotonic() - started < 2


@pytest.mark.parametrize("timeout", [None, (None, None), (0.5, None)])
def test_the_session_default_timeout_applies(allowing, silent_server, timeout):
    started = time.monotonic()
    with pytest.raises(requests.exceptions.Timeout):
        session(timeout=(0.5, 0.5)).get(silent_server, timeout=timeout)
    assert time.monotonic() - started < 2


def test_redirects_are_limited(allowing, http_server):
    with pytest.raises(requests.TooManyRedirects):
        session().get(f"http://127.0.0.1:{http_server.server_port}/loop")
    assert len(http_server.hits) == 4  # the request and three redirects


def test_proxies_are_refused_and_the_environment_ignored(allowing, http_server, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    url = f"http://127.0.0.1:{http_server.server_port}/"
    assert session().get(url).status_code == 200
    with pytest.raises(requests.exceptions.InvalidProxyURL):
        session().get(url, proxies={"http": "http://127.0.0.1:9"})


def test_tls_verifies_the_host_name_and_sends_sni(allowing, tls_server):
    server, ca_path = tls_server
    port = server.server_port
    response = session().get(f"https://localhost:{port}/", verify=str(ca_path))
    assert response.text == f"hello localhost:{port}"
    assert server.server_names == ["localhost"]
    with pytest.raises(requests.exceptions.SSLError):
        session().get(f"https://127.0.0.1:{port}/", verify=str(ca_path))  # not the cert's name
    with pytest.raises(requests.exceptions.SSLError):
        session().get(f"https://localhost:{port}/")  # unknown CA
    assert server.hits == ["/"]
