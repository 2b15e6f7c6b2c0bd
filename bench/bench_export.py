"""Customers CSV export of 100,000 accounts under gunicorn: seconds and the worker's peak RSS."""

import argparse
import http.cookiejar
import os
import statistics
import sys
import time
import urllib.parse
import urllib.request
import zlib
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402
from sqlalchemy import insert, select  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bench.bench_list import bulk_load  # noqa: E402
from bench.common import (  # noqa: E402
    ADMIN_PASSWORD,
    FAST_HASH,
    backends,
    csrf_from,
    gunicorn,
    make_app,
    migrate,
    write_json,
)
from portal.accounts.records import sip_device_values  # noqa: E402
from portal.accounts.service import create_admin  # noqa: E402
from portal.extensions import db  # noqa: E402
from portal.models import Account, RateGroup, Role, SipDevice, Status, Tax, account_taxes  # noqa: E402

EXPORT = "/accounts/export.csv"
LISTING = "/accounts/"
GZIP = {"Accept-Encoding": "gzip"}
READ_BYTES = 64 * 1024
BATCH = 5000


def seed(database_url: str, count: int) -> tuple[str, int]:
    """Migrate; an admin, a rate group, a tax, `count` customers (2/3 with a SIP device, half
    with the tax): (the admin's account number, how many customers are not deleted)."""
    app = make_app(database_url, FAST_HASH)
    migrate(app)
    with app.app_context():
        admin = create_admin("admin@bench.example", ADMIN_PASSWORD)
        group = RateGroup(name="Default", status=Status.ACTIVE)
        tax = Tax(name="VAT", rate=Decimal(20), fixed_amount=Decimal(0), priority=1)
        db.session.add_all([group, tax])
        db.session.commit()
        started = time.perf_counter()
        bulk_load(count, group.id)  # bench_list's realistic customers and their search tokens
        customers = db.session.execute(
            select(Account.id, Account.account_number, Account.status, Account.deleted_at).where(
                Account.role == Role.CUSTOMER
            )
        ).all()
        listed = sum(row.deleted_at is None for row in customers)
        connection = db.session.connection()
        for start in range(0, len(customers), BATCH):
            part = customers[start : start + BATCH]
            devices = [
                {"account_id": row.id, **sip_device_values(row.account_number, row.status)}
                for index, row in enumerate(part, start)
                if index % 3
            ]
            taxes = [
                {"account_id": row.id, "tax_id": tax.id}
                for index, row in enumerate(part, start)
                if index % 2
            ]
            connection.execute(insert(SipDevice.__table__), devices)
            connection.execute(insert(account_taxes), taxes)
        db.session.commit()
        print(f"  loaded {count:,} customers in {time.perf_counter() - started:.1f} s")
        number = admin.account_number
        db.session.remove()
        db.engine.dispose()
    if database_url.startswith("postgresql"):
        server = make_url(database_url).set(drivername="postgresql").render_as_string(False)
        with psycopg.connect(server, autocommit=True) as connection:
            connection.execute("VACUUM ANALYZE")
    return number, listed


def workers_of(master_pid: int) -> list[int]:
    """The pids of a gunicorn master's workers (its child processes), from /proc."""
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    return [int(pid) for pid in children]


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process in kB, from /proc/<pid>/status."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) a process has used, from /proc/<pid>/stat."""
    # The fields after the command name, which is in parentheses and may hold spaces.
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reset_peaks(pids: list[int]) -> bool:
    """Set each process's VmHWM back to its current RSS (Linux >= 4.0; needs permission)."""
    try:
        for pid in pids:
            Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


class Client:
    """A logged-in HTTP client of the served portal that reads bodies without keeping them."""

    def __init__(self, port: int, number: str):
        self.base = f"http://127.0.0.1:{port}"
        jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        token = csrf_from(self.open("/login").read().decode())
        form = {"identifier": number, "password": ADMIN_PASSWORD, "csrf_token": token}
        with self.open("/login", urllib.parse.urlencode(form).encode()) as answer:
            if "/login" in answer.url:
                raise RuntimeError("login failed")

    def open(self, path: str, data: bytes | None = None, headers: dict | None = None):
        """Send a request to our own loopback server."""
        request = urllib.request.Request(self.base + path, data, headers or {})  # noqa: S310
        return self.opener.open(request, timeout=600)

    def download(self, path: str, headers: dict | None = None) -> dict:
        """GET `path` to the last byte: seconds, bytes on the wire, lines (decompressed)."""
        started = time.perf_counter()
        wire = lines = 0
        with self.open(path, headers=headers) as answer:
            encoded = answer.headers.get("Content-Encoding") == "gzip"
            inflate = zlib.decompressobj(16 + zlib.MAX_WBITS) if encoded else None
            while chunk := answer.read(READ_BYTES):
                wire += len(chunk)
                lines += (inflate.decompress(chunk) if inflate else chunk).count(b"\n")
            if answer.status != 200:
                raise RuntimeError(f"{path}: HTTP {answer.status}")
        return {"seconds": time.perf_counter() - started, "bytes": wire, "lines": lines}


def measured(client: Client, pids: list[int], path: str, headers: dict | None = None) -> dict:
    """One download with the peak RSS growth of the worker that served it (the largest)."""
    reset = reset_peaks(pids)
    before = {pid: memory_kb(pid) for pid in pids}
    cpu_before = sum(cpu_seconds(pid) for pid in pids)
    result = client.download(path, headers)
    # CPU time moves less than wall time when other work shares the machine.
    result["worker_cpu_seconds"] = sum(cpu_seconds(pid) for pid in pids) - cpu_before
    after = {pid: memory_kb(pid) for pid in pids}
    key = "VmHWM" if reset else "VmRSS"
    growth = {pid: (after[pid][key] - before[pid]["VmRSS"]) / 1024 for pid in pids}
    result["peak_growth_mb"] = max(growth.values())
    result["rss_after_growth_mb"] = max(
        (after[pid]["VmRSS"] - before[pid]["VmRSS"]) / 1024 for pid in pids
    )
    result["peak_measure"] = "VmHWM reset per run" if reset else "VmRSS after (no reset)"
    return result


def run(backend: str, database_url: str, count: int, repeat: int, list_repeat: int) -> dict:
    """Seed, serve with gunicorn (2 sync workers), then time the export and the list page."""
    number, listed = seed(database_url, count)
    env = {"DATABASE_URL": database_url, "SECRET_KEY": "bench-secret"}
    with gunicorn("app:app", env, 2) as (port, master):
        client = Client(port, number)
        for _ in range(4):  # both workers: imports, templates, pooled connections
            client.download(LISTING)
            client.download(f"{EXPORT}?q=zyskowski")
        pids = workers_of(master.pid)
        if len(pids) != 2:
            raise RuntimeError(f"expected 2 gunicorn workers, found {pids}")
        idle = {pid: memory_kb(pid)["VmRSS"] / 1024 for pid in pids}
        listing = [client.download(LISTING)["seconds"] for _ in range(list_repeat)]
        plain = [measured(client, pids, EXPORT) for _ in range(repeat)]
        packed = [measured(client, pids, EXPORT, GZIP) for _ in range(repeat)]
    for result in plain + packed:
        if result["lines"] != listed + 1:  # the header and every customer not deleted
            raise RuntimeError(f"export had {result['lines']} lines, expected {listed + 1}")
    list_seconds = statistics.median(listing)

    def summary(results: list[dict]) -> dict:
        seconds = statistics.median(r["seconds"] for r in results)
        return {
            "seconds": seconds,
            "rows_per_second": listed / seconds,
            "worker_cpu_seconds": statistics.median(r["worker_cpu_seconds"] for r in results),
            "megabytes": results[0]["bytes"] / 2**20,
            "peak_growth_mb": max(r["peak_growth_mb"] for r in results),
            "rss_after_growth_mb": max(r["rss_after_growth_mb"] for r in results),
            "ratio_to_list": seconds / list_seconds,
            "runs": results,
        }

    return {
        "backend": backend,
        "load_average": os.getloadavg()[0],
        "accounts": count,
        "exported": listed,
        "worker_idle_rss_mb": idle,
        "list_ms": list_seconds * 1000,
        "plain": summary(plain),
        "gzip": summary(packed),
    }


def report(result: dict) -> None:
    """Print one backend's figures."""
    print(
        f"{result['backend']}: {result['accounts']:,} customers; GET {LISTING} median "
        f"{result['list_ms']:.1f} ms; load average {result['load_average']:.1f}; idle workers "
        + ", ".join(f"{mb:.0f} MB" for mb in result["worker_idle_rss_mb"].values())
    )
    for name in ("plain", "gzip"):
        part = result[name]
        print(
            f"  export {name:<5} {part['seconds']:6.2f} s"
            f" (worker CPU {part['worker_cpu_seconds']:.2f} s)"
            f"  {part['rows_per_second']:8,.0f} rows/s"
            f"  {part['megabytes']:5.1f} MB sent  peak RSS +{part['peak_growth_mb']:.1f} MB"
            f"  (RSS after +{part['rss_after_growth_mb']:.1f} MB)"
            f"  {part['ratio_to_list']:,.0f}x the list page"
        )


def main(argv: list[str] | None = None) -> list[dict]:
    """Run on SQLite (and PostgreSQL with --postgres); print and return the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", "--count", type=int, default=100_000, help="customers to export")
    parser.add_argument("--repeat", type=int, default=3, help="exports per encoding")
    parser.add_argument("--list-repeat", type=int, default=20, help="GET /accounts/ requests")
    parser.add_argument("--postgres", action="store_true", help="also run on PostgreSQL")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    results = []
    for backend, database_url in backends(args.postgres):
        result = run(backend, database_url, args.count, args.repeat, args.list_repeat)
        report(result)
        results.append(result)
    write_json(args.json, results)
    return results


if __name__ == "__main__":
    main()
