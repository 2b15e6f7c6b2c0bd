"""The Calls page over millions of calls: a 30-day window's first page and totals; CSV export."""

import argparse
import contextlib
import resource
import statistics
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert, select, text  # noqa: E402
from werkzeug.security import generate_password_hash  # noqa: E402

from bench.common import (  # noqa: E402
    ADMIN_PASSWORD,
    FAST_HASH,
    login,
    make_app,
    migrate,
    postgres_database,
    sqlite_database,
    summary,
    write_json,
)
from portal.background import records  # noqa: E402
from portal.calls.report import SORTING, CallFilter, call_rows, totals  # noqa: E402
from portal.extensions import db  # noqa: E402
from portal.listing import paginate  # noqa: E402
from portal.models import Account, Job, JobFile, Role  # noqa: E402

# Calls are spread evenly over the year before NOW, inserted in time order as a switch sends
# them; the page asks for the last 30 days (about 8 % of the calls).
NOW = datetime(2026, 11, 30)
SPAN_SECONDS = 365 * 24 * 3600
WINDOW = "start=2026-10-31&end=2026-11-29"
WINDOW_START, WINDOW_END = datetime(2026, 10, 31), datetime(2026, 11, 30)
FIRST = NOW - timedelta(seconds=SPAN_SECONDS)
ADMIN_NUMBER = "1000000001"
# The customers numbered 0..n-1 (ids need not be contiguous).
CUSTOMERS = "SELECT row_number() OVER (ORDER BY id) - 1, id FROM accounts WHERE role = 'customer'"
BATCH = 10_000


def load_accounts(count: int) -> None:
    """The admin and `count` customers (core inserts; 2 in 100 soft-deleted)."""
    password = generate_password_hash(ADMIN_PASSWORD, method=FAST_HASH)
    db.session.execute(
        insert(Account),
        [{"account_number": ADMIN_NUMBER, "role": Role.ADMIN, "password_hash": password}],
    )
    rows = []
    for n in range(count):
        rows.append(
            {
                "account_number": str(3_000_000_000 + n),
                "role": Role.CUSTOMER,
                "password_hash": "x",
                "currency": ("USD", "EUR", "GBP")[n % 3],
                "deleted_at": NOW if n % 50 == 49 else None,
            }
        )
        if len(rows) == BATCH:
            db.session.execute(insert(Account), rows)
            rows = []
    if rows:
        db.session.execute(insert(Account), rows)
    db.session.commit()


COLUMNS = (
    "call_id, account_id, sip_username, destination, translated_destination, status, cause,"
    " rate_prefix, rate_destination, connect_cost, cost_per_minute, initial_increment,"
    " increment, max_duration_seconds, reserved, started_at, ended_at, duration_seconds,"
    " hangup_cause, cost"
)


def load_calls(count: int, accounts: int, backend: str) -> None:
    """`count` calls in one INSERT ... SELECT over a generated series (no Python per row)."""
    # Call g: account (g * 7919) mod accounts, 0 to 599 s, a cost of 0.01 a second (stored
    # in integer 1/100000 units on SQLite), 1 in 20 refused, 1 in 50 reaped.
    step = SPAN_SECONDS / count
    if backend == "postgresql":
        start = f"TIMESTAMP '{FIRST}' + (g * {step}) * INTERVAL '1 second'"
        cost = "((g * 37) % 600) * 0.01"
        series = f"generate_series(1::bigint, {count}) AS g"
        prefix = ""
        digits = "lpad((g % 1000000000)::text, 9, '0')"
    else:
        start = (
            f"datetime('{FIRST}', '+' || CAST(g * {step} AS INTEGER) || ' seconds') || '.000000'"
        )
        cost = "((g * 37) % 600) * 1000"
        series = "s"
        prefix = (
            f"WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < {count}) "  # noqa: S608, E501
        )
        digits = "substr('000000000' || (g % 1000000000), -9, 9)"
    refused = "g % 20 = 0"
    sql = (
        f"{prefix}INSERT INTO calls ({COLUMNS}) SELECT 'c' || g, a.id,"  # noqa: S608
        f" '', '44' || {digits}, '44' || {digits},"
        f" CASE WHEN {refused} THEN 'refused' WHEN g % 50 = 1 THEN 'reaped' ELSE 'ended' END,"
        f" CASE WHEN {refused} THEN 'NO_SUFFICIENT_FUND' ELSE '' END, '44', 'UK', 0, 0, 1, 1,"
        f" 3600, 0, {start}, NULL, CASE WHEN {refused} THEN NULL ELSE (g * 37) % 600 END, '',"
        f" CASE WHEN {refused} THEN NULL ELSE {cost} END FROM {series} JOIN bench_customers AS a"
        f" ON a.k = (g * 7919) % {accounts} ORDER BY g"
    )
    # A numbered copy of the customers to join on (SQLite re-evaluates a windowed subquery).
    db.session.execute(text("DROP TABLE IF EXISTS bench_customers"))
    db.session.execute(text("CREATE TABLE bench_customers (k INTEGER PRIMARY KEY, id INTEGER)"))
    db.session.execute(text(f"INSERT INTO bench_customers (k, id) {CUSTOMERS}"))
    db.session.execute(text(sql))
    db.session.execute(text("DROP TABLE bench_customers"))
    db.session.commit()


@contextlib.contextmanager
def loaded(backend: str, calls: int, accounts: int):
    """A throwaway database of `backend` with `accounts` customers and `calls` calls: its app."""
    database = postgres_database if backend == "postgresql" else sqlite_database
    with database() as url:
        app = make_app(url, FAST_HASH)
        migrate(app)
        started = time.perf_counter()
        with app.app_context():
            load_accounts(accounts)
            load_calls(calls, accounts, backend)
            with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                c.execute(text("VACUUM ANALYZE" if backend == "postgresql" else "ANALYZE"))
        print(f"  {backend}: {calls:,} calls loaded in {time.perf_counter() - started:.0f} s")
        yield app
        with app.app_context():
            db.engine.dispose()


def timers(app) -> dict:
    """The timed actions on one database: the whole page, its totals and its rows alone."""
    client = app.test_client()
    login(client, ADMIN_NUMBER)
    wanted = CallFilter(start=WINDOW_START, end=WINDOW_END)

    def page():
        response = client.get(f"/calls/?{WINDOW}")
        assert response.status_code == 200, response.status_code

    def total():
        with app.test_request_context():
            admin = db.session.scalar(select(Account).where(Account.account_number == ADMIN_NUMBER))
            return totals(admin, wanted).calls

    def rows():
        with app.test_request_context(f"/calls/?{WINDOW}"):
            admin = db.session.scalar(select(Account).where(Account.account_number == ADMIN_NUMBER))
            return len(paginate(call_rows(admin, wanted), SORTING, total=0, scalars=False).rows)

    with app.app_context():
        print(f"    window holds {total():,} completed calls; first page {rows()} rows")
    return {"page": page, "totals": total, "rows": rows}


def _rss_kb(field: str) -> int:
    """VmRSS or VmHWM of this process in kB (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def export_job(app) -> dict:
    """The Calls export of every completed call, as the job consumer runs it: time and memory."""
    wanted = CallFilter(start=NOW - timedelta(days=400), end=NOW)
    with app.app_context():
        admin = db.session.scalar(select(Account).where(Account.account_number == ADMIN_NUMBER))
        job = records.create(admin, "call_export", "bench", params={"filter": wanted.to_json()})
        db.session.commit()
        job_id = job.id
        db.session.remove()
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")  # VmHWM back to the current RSS
        before = _rss_kb("VmRSS")
        started, cpu = time.perf_counter(), time.process_time()
        records.execute(job_id)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        peak = _rss_kb("VmHWM")
        job = db.session.get(Job, job_id)
        size = db.session.scalar(
            select(db.func.length(JobFile.content)).where(JobFile.job_id == job_id)
        )
        return {
            "status": job.status.value,
            "rows": job.outcome.get("rows"),
            "error": job.error if job.status.value != "done" else "",
            "seconds": round(seconds, 1),
            "cpu_seconds": round(cpu, 1),
            "csv_mb": round((size or 0) / 1e6, 1),
            "rss_growth_mb": round((peak - before) / 1024, 1),
            "maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        }


def run_backend(backend: str, sizes: list[int], accounts: int, repeat: int, export: int) -> dict:
    """Load every size, time them in turns (noise hits all alike), then the export job."""
    results: dict = {"backend": backend, "sizes": {}}
    with contextlib.ExitStack() as stack:
        apps = {size: stack.enter_context(loaded(backend, size, accounts)) for size in sizes}
        calls = {}
        for size, app in apps.items():
            with app.app_context():
                for name, action in timers(app).items():
                    calls[(size, name)] = (app, action)
        for (_size, _name), (app, action) in calls.items():
            with app.app_context():
                for _ in range(3):
                    action()  # warm-up: caches, the first plan
        durations: dict = {key: [] for key in calls}
        loads = []
        for _ in range(repeat):
            loads.append(Path("/proc/loadavg").read_text().split()[0])
            for key, (app, action) in calls.items():
                with app.app_context():
                    started = time.perf_counter()
                    action()
                    durations[key].append((time.perf_counter() - started) * 1000)
        base = min(sizes)
        for (size, name), values in durations.items():
            figures = summary(values)
            figures["ratio_to_base"] = round(
                statistics.median(values) / statistics.median(durations[(base, name)]), 2
            )
            results["sizes"].setdefault(size, {})[name] = figures
        results["load_average_1min"] = loads
        if export and export in apps:
            results["export"] = export_job(apps[export])
    return results


def main() -> None:
    """Parse the arguments, run each backend, print the table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sqlite-sizes", default="100000,1000000")
    parser.add_argument("--pg-sizes", default="100000,1000000,10000000")
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--export", type=int, default=1_000_000, help="size to export (0: none)")
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    plans = [] if args.no_sqlite else [("sqlite", args.sqlite_sizes)]
    if args.postgres:
        plans.append(("postgresql", args.pg_sizes))
    everything = []
    for backend, sizes in plans:
        numbers = [int(size) for size in sizes.split(",")]
        result = run_backend(backend, numbers, args.accounts, args.repeat, args.export)
        everything.append(result)
        print(f"\n{backend}: median (p90) ms, ratio to {min(numbers):,} calls")
        for size, figures in result["sizes"].items():
            cells = [
                f"{name} {f['median_ms']:.1f} ({f['p90_ms']:.1f}) x{f['ratio_to_base']}"
                for name, f in figures.items()
            ]
            print(f"  {size:>10,} calls: " + " | ".join(cells))
        print(f"  load average during the rounds: {' '.join(result['load_average_1min'])}")
        if "export" in result:
            print(f"  export job: {result['export']}")
    write_json(args.json, everything)


if __name__ == "__main__":
    main()
