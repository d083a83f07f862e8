"""One client for every connector that speaks an HTTP API (webhooks, drives, accounting).

What every such connector gets from :class:`ApiClient`, so none has to get it right alone:

* **The outbound guard.** Requests go through ``extensions.outbound.session``: every
  address resolved once and checked, private hosts refused unless allowed, no proxies from
  the environment, a timeout on every request. The base URL's host is resolved when the
  client opens, so a blocked host (``PermanentError``) or an unknown one
  (``TransientError``) stops before any request.
* **Keep-alive.** One session per ``with`` block: a batch reuses one connection.
* **Bounded answers.** At most ``max_body`` bytes of an answer are read; a longer one is
  cut, and its connection closed rather than drained.
* **Redirects.** 307 and 308 are followed (at most 3, method and body kept). 301, 302 and
  303 would turn an upload into a body-less ``GET``: on any other method they raise
  ``ReauthorizationRequired`` naming the new location, as does a redirect loop.
* **Typed errors.** A network failure (connect or read timeout, TLS, refused, unresolvable,
  blocked) and every answer outside 2xx become the contract's errors. An API that documents
  its own meaning for a status overrides :meth:`ApiClient.classify`; the rest follows the
  default mapping: 401/403 → ``ReauthorizationRequired``, 429 → :class:`RateLimited`,
  408/5xx → ``TransientError`` (``Retry-After`` honoured), anything else →
  ``PermanentError``.
* **Rate limits waited out on the connection**, when the client is opened with
  ``rate_limit_wait`` (seconds): a :class:`RateLimited` answer is repeated after the
  server's ``Retry-After`` (else a backoff from about a second, doubling, with jitter)
  while one request's waits stay within that budget and a few tries, as the cloud APIs ask
  of their clients. Otherwise the error goes to the engine, whose retry waits at least a
  minute and would park the whole batch for a limit that clears within a second.
* **No secret in a message.** What a server said reaches a message only as one line
  through :class:`extensions.redaction.Redactor`, with the client's secrets removed.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.utils.translation import gettext as _
from urllib3.exceptions import ReadTimeoutError

from extensions import outbound
from extensions.connectors.base import (
    ConnectorError,
    PermanentError,
    ReauthorizationRequired,
    TransientError,
)
from extensions.redaction import Redactor

MAX_BODY = 64 * 1024  # of an answer we read; the rest is not needed
DEFAULT_TIMEOUT = (10, 60)  # connect, read; settings.EXPORT_HTTP_TIMEOUT overrides
USER_AGENT = "PartnerSpace-Export/1"
RATE_LIMIT_TRIES = 6  # of one request on the connection, however short the waits
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class RateLimited(TransientError):
    """The API asks to slow down (a 429, or an API's own throttling answer)."""


def default_timeout() -> tuple[float, float]:
    """(connect, read) seconds from ``EXPORT_HTTP_TIMEOUT``, a number meaning both."""
    value = getattr(settings, "EXPORT_HTTP_TIMEOUT", None) or DEFAULT_TIMEOUT
    return tuple(value) if isinstance(value, tuple | list) else (value, value)


def retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds, from a number of seconds or an HTTP date (past: 0)."""
    value = (value or "").strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


@dataclass(frozen=True)
class Response:
    """An answer as read: its status, headers and at most ``max_body`` bytes of body."""

    method: str
    url: str  # where the answer came from, after any redirect followed
    status: int
    headers: Mapping[str, str]  # case-insensitive
    body: bytes
    complete: bool = True  # False when the body was cut at ``max_body``

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        """The body as JSON; None when it is empty, cut short or not JSON."""
        if not self.body or not self.complete:
            return None
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            return None


class _LossyRedirect(Exception):
    def __init__(self, response):
        super().__init__(response.status_code)
        self.status = response.status_code
        self.location = response.headers.get("Location", "")


def _refuse_lossy_redirect(response, *args, **kwargs):
    """Response hook: requests would follow 301/302/303 as a GET without the body."""
    if response.status_code in (301, 302, 303) and response.request.method not in _SAFE_METHODS:
        response.close()
        raise _LossyRedirect(response)
    return response


def _causes(exc: BaseException):
    """``exc`` and everything it wraps (requests → urllib3 → socket errors)."""
    seen, pending = set(), [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        wrapped = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        wrapped += current.args
        # Errors only: ssl.SSLError's ``reason`` is a string ("CERTIFICATE_VERIFY_FAILED").
        pending.extend(each for each in wrapped if isinstance(each, BaseException))


def _host(url: str) -> str:
    return urlsplit(url).hostname or ""


class ApiClient:
    """Talks to one API through the outbound guard; use it as a context manager.

    ``base_url`` is resolved on opening and prefixes every relative ``url`` given to
    :meth:`request` (absolute ones, an upload address handed out by the API, pass as they
    are). ``secrets`` and ``user`` are what the :attr:`redactor` removes from messages;
    :meth:`hide` adds a value obtained later, such as an access token.
    """

    def __init__(
        self,
        base_url: str,
        *,
        secrets: Iterable[object] = (),
        user: str = "",
        timeout: float | tuple[float, float] | None = None,
        user_agent: str = USER_AGENT,
        max_body: int = MAX_BODY,
        rate_limit_wait: float = 0.0,
    ):
        self.base_url = base_url
        self.rate_limit_wait = rate_limit_wait
        self.redactor = Redactor(secrets, user=user)
        timeout = timeout or default_timeout()
        self.timeout = tuple(timeout) if isinstance(timeout, tuple | list) else (timeout, timeout)
        self.user_agent = user_agent
        self.max_body = max_body
        self.http: requests.Session | None = None

    @property
    def host(self) -> str:
        return _host(self.base_url)

    def hide(self, *values: str) -> None:
        """Remove these values too from every message from now on."""
        self.redactor = Redactor([*self.redactor.secrets, *values], user=self.redactor.user)

    # --- the connection ---

    def __enter__(self) -> ApiClient:
        parts = urlsplit(self.base_url)
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            outbound.resolve(parts.hostname or "", port)
        except outbound.BlockedHost as exc:
            raise PermanentError(str(exc)) from None
        except OSError as exc:  # UnresolvableHost and friends
            raise TransientError(str(exc)) from None
        self.http = outbound.session(timeout=self.timeout)
        return self

    def __exit__(self, *exc_info) -> None:
        if self.http is not None:
            self.http.close()
            self.http = None

    def url(self, path: str) -> str:
        """``path`` under the base URL, unless it is already an absolute address."""
        if urlsplit(path).scheme in ("http", "https"):
            return path
        return self.base_url.rstrip("/") + "/" + path.lstrip("/")

    # --- talking ---

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        data: Any = None,
        json: Any = None,
        params: Any = None,
        accept: Collection[int] = (),
    ) -> Response:
        """Send one request and read its answer; a 2xx (or a status in ``accept``, which
        the caller handles itself, unless :meth:`classify` calls that answer a rate limit)
        is returned, anything else raised as :meth:`failure`, after waiting out short rate
        limits (``rate_limit_wait``)."""
        waited, backoff, tries = 0.0, 1.0, 0
        while True:
            tries += 1
            try:
                return self._request_once(
                    method, url, headers=headers, data=data, json=json, params=params,
                    accept=accept,
                )  # fmt: skip
            except RateLimited as limited:
                wait = limited.retry_after
                if wait is None:
                    wait = backoff + random.uniform(0, 1)  # noqa: S311 - spreading, not security
                    backoff *= 2
                if (
                    not self.rate_limit_wait
                    or tries >= RATE_LIMIT_TRIES
                    or waited + wait > self.rate_limit_wait
                ):
                    raise
                time.sleep(wait)
                waited += wait

    def _request_once(self, method, url, *, headers, data, json, params, accept) -> Response:
        if self.http is None:
            raise RuntimeError("ApiClient.request outside its with block")
        url = self.url(url)
        host = _host(url)
        try:
            with self.http.request(
                method,
                url,
                headers={"User-Agent": self.user_agent, **(headers or {})},
                data=data,
                json=json,
                params=params,
                stream=True,
                allow_redirects=True,
                hooks={"response": [_refuse_lossy_redirect]},
            ) as answer:
                body = bytearray()
                for chunk in answer.iter_content(16 * 1024):
                    body += chunk
                    if len(body) > self.max_body:
                        break  # leaving the with closes this connection: not reusable
                response = Response(
                    method=method,
                    url=answer.url,
                    status=answer.status_code,
                    headers=answer.headers,
                    body=bytes(body[: self.max_body]),
                    complete=len(body) <= self.max_body,
                )
        except _LossyRedirect as redirect:
            raise ReauthorizationRequired(
                _(
                    "The server answered HTTP %(status)s and points to %(location)s: enter "
                    "the new address in the extension's settings."
                )
                % {
                    "status": redirect.status,
                    "location": self.redactor.one_line(redirect.location) or "?",
                }
            ) from None
        except requests.TooManyRedirects:
            raise ReauthorizationRequired(
                _("%(host)s redirects in a loop; check the URL in the extension's settings.")
                % {"host": host}
            ) from None
        except requests.RequestException as exc:
            raise self.network_failure(exc, host) from None
        if response.ok:
            return response
        if response.status in accept:
            limited = self.classify(response)  # a rate limit is still waited out here
            if not isinstance(limited, RateLimited):
                return response
            raise limited
        raise self.failure(response)

    # --- what went wrong ---

    def describe(self, response: Response) -> str:
        """``HTTP 422: <what the server said>``, one line, its secrets removed."""
        said = self.redactor.one_line(
            response.body, content_type=response.headers.get("Content-Type", "")
        )
        return f"HTTP {response.status}: {said}" if said else f"HTTP {response.status}"

    def classify(self, response: Response) -> ConnectorError | None:
        """The API's own meaning of a non-2xx answer; None leaves it to the default mapping.

        Override where an API documents more than its status says (a 409 that is a
        conflict to retry, a 403 that is a rate limit); word the message with
        :meth:`describe` or the :attr:`redactor`, never with the raw body.
        """
        return None

    def failure(self, response: Response) -> ConnectorError:
        """The error for a non-2xx answer, typed for what the engine should do next."""
        error = self.classify(response)
        if error is not None:
            return error
        message = self.describe(response)
        status = response.status
        if status in (401, 403):
            return ReauthorizationRequired(
                _(
                    "%(host)s refused the credentials (%(message)s); update the "
                    "authentication in the extension's settings."
                )
                % {"host": _host(response.url) or self.host, "message": message}
            )
        if status == 429:
            return RateLimited(
                message, retry_after=retry_after(response.headers.get("Retry-After"))
            )
        if status == 408 or status >= 500:
            return TransientError(
                message, retry_after=retry_after(response.headers.get("Retry-After"))
            )
        return PermanentError(message)

    def network_failure(self, exc: BaseException, host: str) -> ConnectorError:
        """A failure below HTTP (no answer at all), typed and worded for ``host``."""
        causes = list(_causes(exc))
        for cause in causes:
            if isinstance(cause, outbound.BlockedHost):
                return PermanentError(str(cause))
        connect_seconds, read_seconds = self.timeout
        if isinstance(exc, requests.ConnectTimeout):
            return TransientError(
                _("Could not connect to %(host)s within %(seconds)s seconds.")
                % {"host": host, "seconds": connect_seconds}
            )
        if isinstance(exc, requests.Timeout) or any(
            isinstance(cause, ReadTimeoutError | TimeoutError) for cause in causes
        ):
            return TransientError(
                _("%(host)s did not answer within %(seconds)s seconds.")
                % {"host": host, "seconds": read_seconds}
            )
        if isinstance(exc, requests.exceptions.SSLError):
            return TransientError(
                _("The secure connection to %(host)s failed (certificate or TLS problem).")
                % {"host": host}
            )
        for cause in causes:
            if isinstance(cause, outbound.UnresolvableHost):
                return TransientError(str(cause))
            if isinstance(cause, ConnectionRefusedError):
                return TransientError(_("%(host)s refused the connection.") % {"host": host})
        return TransientError(
            _("Could not reach %(host)s (%(kind)s).") % {"host": host, "kind": type(exc).__name__}
        )
