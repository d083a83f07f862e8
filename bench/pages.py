"""Pages benchmark: SQL queries and server time of the busy pages, 1 row versus 1,000.

What it measures
    For the dashboard, the client list, one client's Overview, Integrations and Documents
    tabs, the Store and an installed extension's Manage page: the number of SQL queries a
    request runs (``django.test.utils.CaptureQueriesContext``) and the median server time
    over a few requests (in-process, Django's test ``Client``: URL routing, middleware,
    view, template; no network, no browser).

How
    1. A throw-away portal (``bench.harness.Portal``): a temporary ``VAR_DIR`` holding
       its own SQLite database, migrated; or, when ``DATABASE_URL`` is set (PostgreSQL),
       a fresh database created on that server and dropped at the end. The real
       ``partnerspace.settings`` are used, with ``DEBUG`` off.
    2. Two firms of the same shape, each with an owner:
       * small: 1 client, 1 SFTP installation, 1 integration, 1 released document with
         one export job;
       * large: ``--clients`` clients (1,000), ``--integrations`` integrations (1,000) on
         one installation (one per client), ``--documents`` documents (1,000) for the
         first client, whose tabs are measured, each released one with an export job in
         one of the job statuses, and one document with a job for every other client (so
         the client list's document counts and the dashboard have rows to count).
         ``--installations N`` adds N-1 installations, each integrated with the first
         client only: its Integrations tab then lists N rows and each of its documents
         has up to N jobs (the default, 1, is the shape above). ``--documents-per-client``
         sets how many documents every other client has (default 1), to see what many
         rows behind a paginated list cost.
    3. Signed in as each owner (``force_login``), one warm-up request per page records
       the queries; ``--runs`` more requests give the median time.

Verdict
    A page passes when the large firm's page runs no more queries than the small firm's.
    The script exits 1 when any page fails, so it can guard against N+1 queries in CI
    (the times are printed, never asserted).

Pages are paginated (25 clients, 50 documents a page): the large firm's lists show one
full page of a long list, which is what a user sees; the queries must not grow with the
rows on the page nor with the rows behind it.

Usage::

    .venv/bin/python bench/pages.py                      # 1,000 rows, SQLite
    .venv/bin/python bench/pages.py --clients 50 --integrations 50 --documents 120
    DATABASE_URL=postgres://user:pw@localhost/postgres .venv/bin/python bench/pages.py
"""

from __future__ import annotations

import argparse
import hashlib
import os
import platform
import statistics
import sys
import time
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


# --- shared with bench/memory.py ------------------------------------------------------


def enterprise_number(seed: int) -> str:
    """A valid Belgian enterprise number derived from ``seed`` (as in tests/conftest.py)."""
    base = 4_000_000 + seed * 7919 % 15_000_000
    return f"{base:08d}{97 - base % 97:02d}"


@contextmanager
def portal(name: str):
    """bench/harness.py's throw-away portal, set up for Django's test client.

    The test client's host is ``testserver`` and it speaks plain http; with ``DEBUG`` off
    (as in production) the settings would refuse the one and redirect the other.
    """
    from bench.harness import Portal

    os.environ.update(ALLOWED_HOSTS="testserver,localhost,127.0.0.1", SECURE_SSL_REDIRECT="0")
    with Portal(name) as throwaway:
        from django.conf import settings

        Path(settings.STATIC_ROOT).mkdir(parents=True, exist_ok=True)  # quiets WhiteNoise
        yield throwaway


def machine_info() -> list[str]:
    from django.db import connection

    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        mem_kb = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal:")
        )
        memory = f"{mem_kb / 1024 / 1024:.1f} GB RAM"
    except (OSError, StopIteration):
        memory = "RAM unknown"
    import django

    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute("select sqlite_version()")
            database = f"SQLite {cursor.fetchone()[0]} (file, WAL)"
        else:
            cursor.execute("show server_version")
            database = f"PostgreSQL {cursor.fetchone()[0]}"
    return [
        f"machine: {os.cpu_count()} cores{' (' + cpu + ')' if cpu else ''}, {memory}, "
        f"{platform.system()} {platform.release()}",
        f"python {platform.python_version()}, Django {django.get_version()}, database {database}",
    ]


# --- the two firms -----------------------------------------------------------------


JOB_STATUSES = ["delivered", "delivered", "delivered", "dead", "failed", "pending"]


def build_firm(
    label: str,
    *,
    clients: int,
    integrations: int,
    documents: int,
    seed: int,
    installations=1,
    per_client=1,
):
    """A firm, its owner, clients, SFTP installations, integrations, documents and jobs.

    The first installation serves ``integrations`` clients; every further one serves only
    the first client (whose Integrations tab then lists one row per installation).
    """
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    from clients.models import Client, Document
    from exports.models import ExportJob
    from extensions.models import Installation, Integration
    from partnerspace.models import Membership, Partner

    now = timezone.now()
    owner = get_user_model().objects.create_user(f"owner-{label}")
    partner = Partner.objects.create(
        name=f"Fiduciaire {label.title()}", enterprise_number=enterprise_number(seed)
    )
    Membership.objects.create(user=owner, partner=partner, role=Membership.Role.OWNER)
    rows = Client.objects.bulk_create(
        Client(
            partner=partner,
            name=f"Client {n:05d} BV",
            enterprise_number=enterprise_number(seed + 1 + n),
            vat_number="BE" + enterprise_number(seed + 1 + n),
            external_id=f"CL-{n:05d}",
        )
        for n in range(clients)
    )
    installation = Installation.objects.create(
        partner=partner,
        connector="sftp",
        name=f"{label.title()} SFTP",
        settings={"host": "sftp.example.com", "port": 22, "username": "bench"},
        secrets={"password": "bench-password"},
        installed_by=owner,
    )
    links = Integration.objects.bulk_create(
        Integration(
            client=client,
            installation=installation,
            categories=["purchase", "sales", "report"],
            activated_at=now - timedelta(days=400),
            last_success_at=now,
        )
        for client in rows[:integrations]
    )
    for n in range(1, installations):
        extra = Installation.objects.create(
            partner=partner,
            connector="sftp",
            name=f"{label.title()} SFTP {n + 1}",
            settings={"host": f"sftp{n}.example.com", "port": 22, "username": "bench"},
            secrets={"password": "bench-password"},
            installed_by=owner,
        )
        links.append(
            Integration.objects.create(
                client=rows[0],
                installation=extra,
                categories=["purchase", "sales"],
                activated_at=now - timedelta(days=400),
            )
        )
    links_of = {}
    for link in links:
        links_of.setdefault(link.client_id, []).append(link)

    def document(client, n):
        data = f"{label}:{client.pk}:{n}".encode()
        category = ("purchase", "sales", "report")[n % 3]
        sha = hashlib.sha256(data).hexdigest()
        return Document(
            client=client,
            category=category,
            kind="statement" if category == "report" else "invoice",
            status={"purchase": "approved", "sales": "sent", "report": "published"}[category],
            number=f"INV-{n:06d}",
            issue_date=date(2024, 1, 1) + timedelta(days=n % 365),
            due_date=date(2024, 2, 1) + timedelta(days=n % 365),
            supplier_name=f"Supplier {n % 97}",
            customer_name=f"Customer {n % 89}",
            currency="EUR",
            payable_amount=100 + n,
            details={"account": "BE68539007547034", "new_balance": "1000.00"}
            if category == "report"
            else {},
            file=f"documents/{partner.pk}/{client.pk}/{sha}.xml",
            original_name="invoice.xml",
            content_type="application/xml",
            size=len(data),
            sha256=sha,
            released_at=None if n % 10 == 9 else now - timedelta(days=1),
        )

    docs = [document(rows[0], n) for n in range(documents)]
    docs += [document(client, n) for client in rows[1:] for n in range(per_client)]
    docs = Document.objects.bulk_create(docs, batch_size=500)
    jobs = [
        ExportJob(
            document=doc,
            integration=link,
            installation_id=link.installation_id,
            status=JOB_STATUSES[n % len(JOB_STATUSES)] if clients > 1 else "dead",
            attempts=1 + n % 3,
            last_error="" if n % len(JOB_STATUSES) < 3 else "connection refused",
            remote_reference=f"Invoice_import/{doc.number}.xml",
        )
        for n, doc in enumerate(docs)
        if doc.released_at is not None
        for link in links_of.get(doc.client_id, ())
        if doc.category in link.categories
    ]
    ExportJob.objects.bulk_create(jobs, batch_size=500)
    return {
        "label": label,
        "owner": owner,
        "client": rows[0],
        "installation": installation,
        "counts": {
            "clients": len(rows),
            "installations": installations,
            "integrations": len(links),
            "documents": len(docs),
            "tab documents": documents,
            "jobs": len(jobs),
        },
    }


def pages(firm) -> list[tuple[str, str]]:
    from django.urls import reverse

    client = firm["client"].pk
    return [
        ("dashboard", reverse("dashboard")),
        ("client list", reverse("clients:list")),
        ("client overview", reverse("clients:detail", args=[client])),
        ("Integrations tab", reverse("integrations:list", args=[client])),
        ("Documents tab", reverse("clients:documents", args=[client])),
        ("Store", reverse("store:index")),
        ("Manage (installed extension)", reverse("store:manage", args=[firm["installation"].pk])),
    ]


def measure(firm, runs: int) -> dict[str, dict]:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    browser = Client()
    browser.force_login(firm["owner"])
    results = {}
    for name, url in pages(firm):
        with CaptureQueriesContext(connection) as captured:
            response = browser.get(url)
        # captured_queries reads the connection's log lazily, and every request resets it.
        sql = [query["sql"] for query in captured.captured_queries]
        if response.status_code != 200:
            raise SystemExit(f"{firm['label']} {name} {url}: HTTP {response.status_code}")
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            browser.get(url)
            times.append(time.perf_counter() - started)
        results[name] = {
            "url": url,
            "queries": len(sql),
            "sql": sql,
            "ms": statistics.median(times) * 1000,
            "bytes": len(response.content),
        }
    return results


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000, help="large firm (default 1000)")
    parser.add_argument(
        "--integrations",
        type=int,
        default=1000,
        help="large firm, on one installation, at most one per client (default 1000)",
    )
    parser.add_argument(
        "--documents",
        type=int,
        default=1000,
        help="large firm, for the measured client's Documents tab (default 1000)",
    )
    parser.add_argument(
        "--installations",
        type=int,
        default=1,
        help="large firm: installations; each one past the first adds an integration to "
        "the measured client's Integrations tab (default 1)",
    )
    parser.add_argument(
        "--documents-per-client",
        type=int,
        default=1,
        help="large firm: documents (each with a job) of every other client, behind the "
        "client list's counts and the dashboard (default 1)",
    )
    parser.add_argument("--runs", type=int, default=7, help="timed requests per page")
    parser.add_argument(
        "--show-sql", action="store_true", help="print the queries of pages that grow"
    )
    args = parser.parse_args(argv)
    if args.clients < 1 or args.documents < 1:
        parser.error("--clients and --documents must be at least 1")
    args.integrations = max(1, min(args.integrations, args.clients))

    with portal("pages"):
        print("Pages benchmark: SQL queries and median server time, small vs large firm")
        for line in machine_info():
            print("  " + line)
        started = time.perf_counter()
        small = build_firm("small", clients=1, integrations=1, documents=1, seed=10)
        large = build_firm(
            "large",
            clients=args.clients,
            integrations=args.integrations,
            documents=args.documents,
            seed=100_000,
            installations=max(1, args.installations),
            per_client=max(0, args.documents_per_client),
        )
        from django.db import connection

        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")  # as autovacuum would after a bulk load
        print(f"  data built in {time.perf_counter() - started:.1f} s")
        for firm in (small, large):
            counts = ", ".join(f"{v:,} {k}" for k, v in firm["counts"].items())
            print(f"  {firm['label']}: {counts}")
        print(
            "  lists are paginated: 25 clients and 50 documents a page; page 1 is measured. "
            f"Times: median of {args.runs} requests after one warm-up, in-process test client."
        )
        print()
        small_results = measure(small, args.runs)
        large_results = measure(large, args.runs)

    failed = []
    header = (
        "| page | queries (small) | queries (large) | ms (small) | ms (large) | verdict |\n"
        "|---|---:|---:|---:|---:|---|"
    )
    print(header)
    for name, s in small_results.items():
        big = large_results[name]
        if big["queries"] == s["queries"]:
            verdict = "equal"
        elif big["queries"] < s["queries"]:
            verdict = "fewer"
        else:
            verdict = f"GROWS (+{big['queries'] - s['queries']})"
            failed.append(name)
        print(
            f"| {name} | {s['queries']} | {big['queries']} | {s['ms']:.1f} | "
            f"{big['ms']:.1f} | {verdict} |"
        )
    print()
    if failed:
        print(f"FAIL: the query count grows with the rows on: {', '.join(failed)}")
        if args.show_sql:
            for name in failed:
                print(f"\n-- {name}, large firm:")
                for sql in large_results[name]["sql"]:
                    print("   " + sql[:300])
        return 1
    print("OK: no page's query count grows with the number of rows.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
