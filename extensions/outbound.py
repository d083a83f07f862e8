"""The one guard every outbound connection goes through.

Destinations are typed in by users, so a host name may point at the portal's own network
(``localhost``, a database, the cloud metadata service at 169.254.169.254). A name is
resolved once, every address is checked, and the socket connects to the checked address,
so a DNS answer cannot change between the check and the connection (DNS rebinding).
Every connection has a timeout, so a silent peer cannot hold a worker forever.
"""

import ipaddress
import socket
import sys

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter
from requests.exceptions import InvalidProxyURL
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

DEFAULT_CONNECT_TIMEOUT = 10.0
SHARED_ADDRESS_SPACE = ipaddress.ip_network("100.64.0.0/10")
NAT64_PREFIX = ipaddress.ip_network("64:ff9b::/96")

Address = tuple[socket.AddressFamily, tuple]


class BlockedHost(ConnectionError):
    """The destination resolves to an address exports may not reach."""


class UnresolvableHost(socket.gaierror):
    """The destination's name does not resolve (a ``gaierror`` with a readable message)."""


def resolve(host: str, port: int) -> list[Address]:
    """Resolve ``host`` once; refuse it if any address is not public (unless allowed)."""
    host = host.strip("[]")  # an IPv6 literal as written in a URL
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise UnresolvableHost(f"cannot resolve host {host}: {error.strerror}") from error
    addresses: list[Address] = []
    for family, _type, _proto, _canonname, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6) and (family, sockaddr) not in addresses:
            addresses.append((family, sockaddr))
    if not addresses:
        raise UnresolvableHost(f"cannot resolve host {host}: no IPv4 or IPv6 address")
    if not getattr(settings, "EXPORT_ALLOW_PRIVATE_HOSTS", False):
        for _family, (address, *_rest) in addresses:
            kind = _non_public_kind(ipaddress.ip_address(address))
            if kind:
                subject = f"{host} is" if host == address else f"{host} resolves to {address},"
                raise BlockedHost(
                    f"{subject} a {kind} address; exports to private networks are disabled "
                    "(EXPORT_ALLOW_PRIVATE_HOSTS)"
                )
    return addresses


def _non_public_kind(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why ``ip`` is not a public address, or None when it is."""
    if ip.version == 6:
        # Judge an IPv4 address carried inside IPv6 by that IPv4 address.
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in NAT64_PREFIX:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return _non_public_kind(embedded)
    checks = [
        (ip.is_loopback, "loopback"),
        (ip.is_link_local, "link-local"),
        (ip.is_multicast, "multicast"),
        (ip.is_unspecified, "unspecified"),
        (ip.version == 4 and ip in SHARED_ADDRESS_SPACE, "shared (carrier-grade NAT)"),
        (ip.is_reserved, "reserved"),
        (ip.is_private, "private"),
        (not ip.is_global, "non-public"),
    ]
    return next((kind for matched, kind in checks if matched), None)


def connect(host: str, port: int, *, timeout: float = 30.0) -> socket.socket:
    """A TCP socket connected to a checked address of ``host``, with a timeout set.

    Addresses are tried in order, each with the full ``timeout``; the last error is raised.
    """
    if timeout is None or timeout <= 0:
        raise ValueError("outbound connections need a positive timeout")
    error: OSError | None = None
    for family, sockaddr in resolve(host, port):
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            sock.connect(sockaddr)
        except OSError as exc:
            sock.close()
            error = exc
        else:
            return sock
    raise error


class _GuardedConnectionMixin:
    """urllib3 connection whose socket comes from ``connect`` (TLS still checks ``host``)."""

    def _new_conn(self) -> socket.socket:
        timeout = self.timeout
        if not isinstance(timeout, int | float) or timeout <= 0:
            timeout = DEFAULT_CONNECT_TIMEOUT
        try:
            sock = connect(self._dns_host, self.port, timeout=timeout)
        except socket.gaierror as error:
            raise NameResolutionError(self.host, self, error) from error
        except TimeoutError as error:
            raise ConnectTimeoutError(
                self, f"Connection to {self.host} timed out. (connect timeout={timeout})"
            ) from error
        except OSError as error:
            raise NewConnectionError(
                self, f"Failed to establish a new connection: {error}"
            ) from error
        sys.audit("http.client.connect", self, self.host, self.port)
        return sock


class GuardedHTTPConnection(_GuardedConnectionMixin, HTTPConnection):
    pass


class GuardedHTTPSConnection(_GuardedConnectionMixin, HTTPSConnection):
    pass


class GuardedHTTPConnectionPool(HTTPConnectionPool):
    ConnectionCls = GuardedHTTPConnection


class GuardedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = GuardedHTTPSConnection


class GuardedAdapter(HTTPAdapter):
    """Sends through guarded pools, refuses proxies, and never sends without a timeout."""

    __attrs__ = [*HTTPAdapter.__attrs__, "default_timeout"]

    def __init__(self, *, timeout: float | tuple[float, float] = (10, 60), **kwargs):
        self.default_timeout = timeout if isinstance(timeout, tuple) else (timeout, timeout)
        super().__init__(**kwargs)

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {
            "http": GuardedHTTPConnectionPool,
            "https": GuardedHTTPSConnectionPool,
        }

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        raise InvalidProxyURL("Proxies are not supported by the outbound guard.")

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        connect_default, read_default = self.default_timeout
        if timeout is None:
            timeout = self.default_timeout
        elif isinstance(timeout, tuple):
            connect_timeout, read_timeout = timeout
            timeout = (
                connect_default if connect_timeout is None else connect_timeout,
                read_default if read_timeout is None else read_timeout,
            )
        return super().send(
            request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies
        )


def session(*, timeout: float | tuple[float, float] = (10, 60)) -> requests.Session:
    """A requests session whose every request and redirect goes through ``connect``.

    ``timeout`` (connect, read) applies whenever a request is made without one.
    """
    http = requests.Session()
    http.trust_env = False  # no proxies or .netrc from the environment
    http.max_redirects = 3
    adapter = GuardedAdapter(timeout=timeout)
    http.mount("http://", adapter)
    http.mount("https://", adapter)
    return http
