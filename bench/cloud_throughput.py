"""Month-end throughput to a cloud drive's API behind a rate limit: files/s against the limit.

What is measured, in one run, against a local fake of the provider's API (the strict one
the tests use, ``tests/peers/``) in a thread of this process (a ``ThreadingHTTPServer``:
one thread per connection, so a slow answer delays only its own connection):

* every request takes ``--delay-ms`` (30) at the server, and above ``--rate`` (100) API
  requests per second the server answers 429 with ``Retry-After``, as the providers'
  usage limits do (sign-in and token calls are not limited);
* N purchase invoices (Peppol UBL, 5-50 KB) of C clients, the firm's one installation of
  the provider activated for every client; the installation is signed in by writing the
  tokens the fake issued into its row, as after a sign-in (``tests/contract.py`` does the
  same); *Parallel connections* is ``--connections`` (4);
* real ``manage.py qcluster`` processes (1 x ``--workers``, by default as many workers as
  connections, so every connection can be in use), left idle; then every document is
  released through ``clients.release.release`` in one transaction (a bulk approval). The
  clock runs from the commit to the last delivery (the newest ``delivered_at``, the
  moment the upload was answered).

The reference is the limit itself, in files/s: the rate limit in requests/s divided by
the requests one file needs when nothing is cached (its folders looked up one by one,
the file looked up by its key, the upload; the folders already made). files/s ÷ that is
the ratio printed (target ≥ 0.8).

Afterwards every item at the server is checked: each expected file once with its bytes;
duplicates are two items of one name in one folder (files or folders) and a document
with more than one file. Dead jobs are counted. Prints the machine, the parameters, the
figures and the checks; exit 0 after printing, 1 when a file is missing, duplicated or
wrong, a job is dead or not delivered.

Providers are entries of ``PROVIDERS``: how to start the fake, what the portal's settings
must say to reach it, how an installation is signed in, how many requests one file
needs uncached, and what the server holds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import os
import random
import secrets
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import harness
from bench.harness import log

NO_PROGRESS_TIMEOUT = 180.0


# --- providers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """One item at the server: where it is, its name, its bytes (None: a folder) and the
    document it was made for (our key), when the provider keeps one."""

    parent: str
    name: str
    content: bytes | None
    document: str = ""


@dataclass(frozen=True)
class Provider:
    key: str  # the connector's
    title: str
    uncached_requests: int  # API requests one file needs when nothing is cached
    why: str  # what those requests are
    start: Callable[[float, float], object]  # (delay s, rate req/s) → a running fake
    stop: Callable[[object], None]
    env: Callable[[object], dict[str, str]]  # portal settings that point at the fake
    sign_in: Callable[[object], tuple[dict, dict]]  # installation (settings, secrets)
    api_requests: Callable[[object], int]  # API requests answered so far (429s included)
    limited: Callable[[object], int]  # 429 answers so far
    items: Callable[[object], list[Item]]
    tree: Callable[[object], dict[str, bytes | None]]  # path from the root → bytes


def _google() -> Provider:
    from tests.peers import google

    def start(delay, rate):
        peer = google.GooglePeer()
        peer.delay, peer.rate_limit = delay, rate
        return peer.start()

    def sign_in(peer):
        refresh = "1//bench-" + secrets.token_urlsafe(12)
        access = "ya29.bench-" + secrets.token_urlsafe(12)
        with peer.lock:  # as a sign-in on the peer would have left them
            peer.refresh_tokens.add(refresh)
            peer.access_tokens[access] = time.time() + peer.token_lifetime
        tokens = {
            "access_token": access,
            "refresh_token": refresh,
            "expires_at": time.time() + peer.token_lifetime - 60,
        }
        return {"account": peer.account, "include_reports": False}, tokens

    def api_requests(peer):
        with peer.lock:
            return sum(1 for r in peer.requests if r[1].startswith(("/drive/", "/upload/")))

    def items(peer):
        with peer.lock:
            return [
                Item(
                    f.parents[0],
                    f.name,
                    None if f.mime_type == google.FOLDER else f.content,
                    f.app_properties.get("partnerspaceDocument", ""),
                )
                for f in peer.files.values()
                if not f.trashed
            ]

    return Provider(
        key="gdrive",
        title="Google Drive (tests/peers/google.py)",
        uncached_requests=5,
        why="3 folder look-ups (Invoice_import, the client's, AP), the key look-up, the "
        "multipart upload",
        start=start,
        stop=lambda peer: peer.stop(),
        env=lambda peer: {
            "GOOGLE_BASE_URL": peer.url,
            "GOOGLE_DRIVE_CLIENT_ID": peer.client_id,
            "GOOGLE_DRIVE_CLIENT_SECRET": peer.client_secret,
        },
        sign_in=sign_in,
        api_requests=api_requests,
        limited=lambda peer: peer.limited,
        items=items,
        tree=lambda peer: peer.tree(),
    )


class Limiter:
    """At most ``rate`` requests within any one second; ``over()`` counts one more, or says
    how long until there is room (then the request is refused, not counted)."""

    def __init__(self, rate: float):
        self.rate, self.admitted, self.refused = rate, deque(), 0
        self.lock = threading.Lock()

    def over(self) -> float | None:
        now = time.monotonic()
        with self.lock:
            while self.admitted and self.admitted[0] <= now - 1.0:
                self.admitted.popleft()
            if len(self.admitted) < self.rate:
                self.admitted.append(now)
                return None
            self.refused += 1
            return self.admitted[0] + 1.0 - now


def throttle(peer, *, delay: float, rate: float, api: tuple[str, ...], refusal) -> Limiter:
    """Give a fake without these options of its own a delay per request and a rate limit on
    its API paths (``api``), answered with ``refusal(seconds)``: (body, headers) of the
    provider's 429. Replies go out without Nagle's delay, as the Google fake's do."""
    limiter = Limiter(rate)
    base = peer.server.RequestHandlerClass

    class Throttled(base):
        disable_nagle_algorithm = True

        def _handle(self):
            time.sleep(delay)
            if self.path.startswith(api):
                wait = limiter.over()
                if wait is not None:
                    self.rfile.read(int(self.headers.get("Content-Length") or 0))
                    body, headers = refusal(max(1, math.ceil(wait)))
                    raw = json.dumps(body).encode()
                    self.send_response(429)
                    for name, value in {"Content-Type": "application/json", **headers}.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                    return None
            return base._handle(self)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    peer.server.RequestHandlerClass = Throttled
    return limiter


def _count(peer, api: tuple[str, ...]) -> int:
    with peer.lock:
        return sum(1 for request in peer.requests if request[1].startswith(api))


def _dropbox() -> Provider:
    from tests.peers import dropbox

    api = ("/2/",)

    def start(delay, rate):
        peer = dropbox.DropboxPeer()
        peer.limiter = throttle(
            peer,
            delay=delay,
            rate=rate,
            api=api,
            refusal=lambda wait: (
                {
                    "error_summary": "too_many_requests/..",
                    "error": {"reason": {".tag": "too_many_requests"}, "retry_after": wait},
                },
                {"Retry-After": str(wait)},
            ),
        )
        return peer.start()

    def sign_in(peer):
        refresh = "bench-refresh-" + secrets.token_urlsafe(12)
        access = "sl.bench-" + secrets.token_urlsafe(12)
        with peer.lock:
            peer.refresh_tokens.add(refresh)
            peer.access_tokens[access] = time.time() + peer.token_lifetime
        tokens = {
            "access_token": access,
            "refresh_token": refresh,
            "expires_at": time.time() + peer.token_lifetime - 60,
        }
        return {"account": peer.account, "include_reports": False}, tokens

    return Provider(
        key="dropbox",
        title="Dropbox (tests/peers/dropbox.py)",
        uncached_requests=1,
        why="the upload (mode add, folders made by it)",
        start=start,
        stop=lambda peer: peer.stop(),
        env=lambda peer: {
            "DROPBOX_BASE_URL": peer.url,
            "DROPBOX_APP_KEY": peer.app_key,
            "DROPBOX_APP_SECRET": peer.app_secret,
        },
        sign_in=sign_in,
        api_requests=lambda peer: _count(peer, api),
        limited=lambda peer: peer.limiter.refused,
        items=lambda peer: [
            Item(path.rsplit("/", 1)[0].lower(), path.rsplit("/", 1)[1].lower(), content)
            for path, content in peer.tree().items()
        ],
        tree=lambda peer: peer.tree(),
    )


def _onedrive() -> Provider:
    from tests.peers import microsoft

    api = ("/v1.0/", "/upload/")

    def start(delay, rate):
        peer = microsoft.MicrosoftPeer()
        peer.limiter = throttle(
            peer,
            delay=delay,
            rate=rate,
            api=api,
            refusal=lambda wait: (
                microsoft.graph_error("tooManyRequests", "Too many requests"),
                {"Retry-After": str(wait)},
            ),
        )
        return peer.start()

    def sign_in(peer):
        refresh = "R.bench-" + secrets.token_urlsafe(12)
        access = "eyJ0.bench-" + secrets.token_urlsafe(12)
        with peer.lock:
            peer.refresh_tokens.add(refresh)
            peer.access_tokens[access] = time.time() + peer.token_lifetime
        tokens = {
            "access_token": access,
            "refresh_token": refresh,
            "expires_at": time.time() + peer.token_lifetime - 60,
        }
        return {"account": peer.account, "include_reports": False}, tokens

    return Provider(
        key="onedrive",
        title="OneDrive for Business (tests/peers/microsoft.py)",
        uncached_requests=1,
        why="the upload (PUT …:/content, folders made by it)",
        start=start,
        stop=lambda peer: peer.stop(),
        env=lambda peer: {
            "MICROSOFT_BASE_URL": peer.url,
            "ONEDRIVE_TENANT": peer.tenant,
            "ONEDRIVE_CLIENT_ID": peer.client_id,
            "ONEDRIVE_CLIENT_SECRET": peer.client_secret,
        },
        sign_in=sign_in,
        api_requests=lambda peer: _count(peer, api),
        limited=lambda peer: peer.limiter.refused,
        items=lambda peer: [
            Item("/".join(path.split("/")[:-1]), path.split("/")[-1], content)
            for path, content in peer.tree().items()
        ],
        tree=lambda peer: peer.tree(),
    )


PROVIDERS: dict[str, Callable[[], Provider]] = {
    "gdrive": _google,
    "dropbox": _dropbox,
    "onedrive": _onedrive,
}


# --- the month end ------------------------------------------------------------------------


def month_end(provider: Provider, peer, *, documents: int, clients: int, connections: int):
    """A firm with ``clients`` clients, its one installation of ``provider`` activated for
    each, and ``documents`` purchase invoices (5-50 KB) stored and not yet released."""
    import dataclasses

    from django.core.files.base import ContentFile

    from clients import demo
    from clients.models import Client, Document
    from clients.release import INITIAL_STATUS
    from extensions.models import Installation, Integration
    from partnerspace.models import Partner

    rng = random.Random("cloud")
    partner = Partner.objects.create(
        name="Fiduciaire Benchmark", enterprise_number=demo.enterprise_number(7_000_003)
    )
    settings, tokens = provider.sign_in(peer)
    installation = Installation.objects.create(
        partner=partner,
        connector=provider.key,
        name=f"Firm {provider.key}",
        connections=connections,
        settings=settings,
        secrets=tokens,
    )
    templates = demo.demo_clients()
    suppliers = demo.demo_companies()["suppliers"]
    companies, rows = [], []
    for index in range(clients):
        number = demo.enterprise_number(4_000_000 + index * 7_919)
        company = dataclasses.replace(
            templates[index % len(templates)],
            name=f"{templates[index % len(templates)].name} {index + 1:03d}",
            enterprise_number=number,
            external_id=f"CL-{index + 1:04d}",
        )
        companies.append(company)
        rows.append(
            Client(
                partner=partner,
                name=company.name,
                enterprise_number=number,
                vat_number=company.vat_number,
                external_id=company.external_id,
            )
        )
    client_rows = Client.objects.bulk_create(rows)
    Integration.objects.bulk_create(
        [
            Integration(client=client, installation=installation, categories=["purchase"])
            for client in client_rows
        ]
    )
    issue_date = dt.date.today().replace(day=1)
    category = Document.Category.PURCHASE
    stored = []
    for index in range(documents):
        owner = index % clients
        data = demo.invoice_xml(
            number=f"CLOUD-{index + 1:05d}",
            issue_date=issue_date,
            supplier=suppliers[index % len(suppliers)],
            customer=companies[owner],
            lines=demo.lines_for_size(rng.randint(5_000, 50_000)),
            seed=f"cloud-{index}",
        )
        document = Document(
            client=client_rows[owner],
            category=category,
            kind=Document.Kind.INVOICE,
            status=INITIAL_STATUS[category],
            number=f"CLOUD-{index + 1:05d}",
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
            original_name=f"CLOUD-{index + 1:05d}.xml",
            content_type="application/xml",
        )
        document.file.save(document.original_name, ContentFile(data), save=False)
        stored.append(document)
    stored = Document.objects.bulk_create(stored, batch_size=500)
    return installation, stored


def release_all(documents) -> float:
    """Release every document in one transaction; returns when it committed."""
    from django.db import transaction

    from clients.release import release

    committed = []
    with transaction.atomic():
        transaction.on_commit(lambda: committed.append(time.time()))
        for document in documents:
            release(document)
    log(f"commit hooks (queueing deliveries) took {time.time() - committed[0]:.2f} s")
    return committed[0]


# --- one run ------------------------------------------------------------------------------


@dataclass
class Figures:
    delivered: int
    seconds: float
    requests: int
    limited: int
    duplicates: list[str]
    missing: list[str]
    wrong: list[str]
    statuses: dict
    attempts: int
    failures: Counter

    @property
    def rate(self) -> float:
        return self.delivered / self.seconds if self.seconds > 0 else 0.0


def check_server(provider: Provider, peer, expected: dict[str, bytes]):
    """(duplicates, missing, wrong) at the server against what each job should have put."""
    items = provider.items(peer)
    same_name = Counter((item.parent, item.name) for item in items)
    per_document = Counter(item.document for item in items if item.content is not None)
    duplicates = [f"{name} x{n} in one folder" for (_p, name), n in same_name.items() if n > 1]
    duplicates += [f"document {d} x{n}" for d, n in per_document.items() if d and n > 1]
    tree = provider.tree(peer)
    missing = sorted(path for path in expected if path not in tree)
    wrong = sorted(path for path in expected if path in tree and tree[path] != expected[path])
    files = sum(1 for content in tree.values() if content is not None)
    if files > len(expected):
        duplicates.append(f"{files - len(expected)} files more than documents")
    return duplicates, missing, wrong


def run(provider: Provider, peer, portal, options) -> Figures:
    from django.db import connection
    from django.db.models import Count, Max

    from exports.models import ExportAttempt, ExportJob

    log(f"creating {options.documents} documents for {options.clients} clients")
    installation, documents = month_end(
        provider,
        peer,
        documents=options.documents,
        clients=options.clients,
        connections=options.connections,
    )
    jobs = ExportJob.objects.filter(installation=installation)
    workers = options.workers or options.connections
    with harness.Workers(portal, processes=1, workers=workers):
        log(f"releasing; 1 qcluster x {workers} workers deliver")
        before, limited_before = provider.api_requests(peer), provider.limited(peer)
        started = release_all(documents)
        connection.close()  # no transaction or lock left open on SQLite while we wait
        done, seen, last_progress = 0, -1, time.monotonic()
        while done < options.documents:
            time.sleep(0.2)
            counts = dict(jobs.values_list("status").annotate(n=Count("pk")))
            done = counts.get(ExportJob.Status.DELIVERED, 0)
            if done + counts.get(ExportJob.Status.DEAD, 0) >= options.documents:
                break
            if done != seen:
                seen, last_progress = done, time.monotonic()
            elif time.monotonic() - last_progress > NO_PROGRESS_TIMEOUT:
                log(f"no progress for {NO_PROGRESS_TIMEOUT:.0f} s at {done} delivered")
                break
        requests = provider.api_requests(peer) - before
        limited = provider.limited(peer) - limited_before
        log("stopping the workers")
    last = jobs.aggregate(last=Max("delivered_at"))["last"]
    statuses = dict(jobs.values_list("status").annotate(n=Count("pk")))
    attempts = ExportAttempt.objects.filter(job__installation=installation)
    failures = Counter(
        error.split(":", 1)[0][:60]
        for error in attempts.exclude(outcome=ExportAttempt.Outcome.DELIVERED).values_list(
            "error", flat=True
        )
    )
    duplicates, missing, wrong = check_server(provider, peer, harness.expected_files(installation))
    return Figures(
        delivered=done,
        seconds=(last.timestamp() - started) if last else 0.0,
        requests=requests,
        limited=limited,
        duplicates=duplicates,
        missing=missing,
        wrong=wrong,
        statuses=statuses,
        attempts=attempts.count(),
        failures=failures,
    )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--provider", choices=sorted(PROVIDERS), default="gdrive")
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--delay-ms", type=float, default=30.0, help="per request, at the server")
    parser.add_argument("--rate", type=float, default=100.0, help="API requests/s taken")
    parser.add_argument(
        "--connections", type=int, default=4, help="the installation's parallel connections"
    )
    parser.add_argument("--workers", type=int, default=0, help="Q_WORKERS (default: connections)")
    options = parser.parse_args(argv)
    if options.documents < 1 or options.clients < 1 or options.rate <= 0:
        parser.error("--documents, --clients and --rate must be positive")

    provider = PROVIDERS[options.provider]()
    facts = harness.machine()
    facts = {key: facts[key] for key in ("cores", "python")}
    peer = provider.start(options.delay_ms / 1000, options.rate)
    try:
        os.environ.update(provider.env(peer))  # the portal's settings, for the workers too
        with harness.Portal("cloud") as portal:
            facts["database"] = portal.describe_database()
            facts["broker"] = portal.describe_broker()
            figures = run(provider, peer, portal, options)
    finally:
        provider.stop(peer)

    limit = options.rate / provider.uncached_requests
    workers = options.workers or options.connections
    print(f"Cloud throughput (bench/cloud_throughput.py): {provider.title}")
    for key, value in facts.items():
        print(f"  {key:<10} {value}")
    print(
        f"  parameters documents={options.documents} clients={options.clients} "
        f"delay={options.delay_ms:g} ms rate limit={options.rate:g} requests/s "
        f"connections={options.connections} qcluster=1x{workers} workers "
        f"batch={os.environ.get('EXPORT_BATCH_SIZE', '100')}"
    )
    print(
        f"  limit      {limit:.1f} files/s = {options.rate:g} requests/s ÷ "
        f"{provider.uncached_requests} requests per file uncached ({provider.why})"
    )
    print()
    dead = figures.statuses.get("dead", 0)
    header = ("files", "seconds", "files/s", "÷ limit", "req/file", "429s", "dups", "dead")
    print("{:>6} {:>8} {:>8} {:>8} {:>9} {:>6} {:>5} {:>5}".format(*header))
    per_file = figures.requests / figures.delivered if figures.delivered else 0.0
    print(
        f"{figures.delivered:>6} {figures.seconds:>8.2f} {figures.rate:>8.1f} "
        f"{figures.rate / limit:>8.2f} {per_file:>9.2f} {figures.limited:>6} "
        f"{len(figures.duplicates):>5} {dead:>5}"
    )
    print()
    print(f"jobs {figures.statuses}, attempts {figures.attempts}")
    for error, count in figures.failures.most_common(5):
        print(f"  failed attempts: {count} x {error}")
    broken = False
    for label, problems in (
        ("duplicates", figures.duplicates),
        ("missing", figures.missing),
        ("wrong", figures.wrong),
    ):
        if problems:
            broken = True
            print(f"{label}: {len(problems)}: {', '.join(problems[:5])}")
    if not broken:
        print("server: every file once with its bytes, no duplicates")
    return 1 if broken or dead or figures.delivered < options.documents else 0


if __name__ == "__main__":
    sys.exit(main())
