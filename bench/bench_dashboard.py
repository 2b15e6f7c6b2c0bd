"""The admin dashboard over 100,000 accounts at 100,000 and at 1,000,000 (PostgreSQL 10,000,000)
calls, and what counting a call into the rollups adds to its hang-up."""

import argparse
import os
import statistics
import sys
import time
from decimal import Decimal
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
from portal.accounts.service import create_admin  # noqa: E402
from portal.billing.service import add_payment  # noqa: E402
from portal.calls import rollups  # noqa: E402
from portal.calls import service as call_service  # noqa: E402
from portal.calls.engine import authorize_call  # noqa: E402
from portal.extensions import db  # noqa: E402
from portal.models import Account, Call, Rate, RateGroup, Role, Status  # noqa: E402

RESELLERS = 200  # top-level resellers; every 5th customer belongs to one of them
# (prefix, destination, per minute): the calls spread over these destinations.
DESTINATIONS = [(f"{40 + n}", f"Destination {n}", f"0.{10 + n:02d}") for n in range(50)]
SPREAD_SECONDS = 45 * 86400  # calls start over the last 45 days: two thirds in the window
LIVE_EVERY = 50_000  # one call in this many is still live


def _accounts(count: int) -> int:
    """Insert RESELLERS resellers and `count` customers (core inserts); the first customer id."""
    password_hash = generate_password_hash("Bench-passw0rd1", method=FAST_HASH)
    table = Account.__table__
    base = {"password_hash": password_hash, "status": Status.ACTIVE, "valid_days": 3650}
    resellers = [
        {**base, "account_number": str(5_000_000_000 + n), "role": Role.RESELLER, "tenant_path": ""}
        for n in range(RESELLERS)
    ]
    db.session.execute(insert(table), resellers)
    reseller_ids = list(db.session.scalars(select(Account.id).where(Account.role == Role.RESELLER)))
    first = None
    for start in range(0, count, 5000):
        rows = []
        for n in range(start, min(count, start + 5000)):
            owner = reseller_ids[n % RESELLERS] if n % 5 == 0 else None
            rows.append(
                {
                    **base,
                    "account_number": str(6_000_000_000 + n),
                    "role": Role.CUSTOMER,
                    "reseller_id": owner,
                    "tenant_path": f"{owner}/" if owner else "",
                    "currency": "EUR" if n % 4 == 0 else "USD",
                    # About 2 % at or below their alert amount.
                    "balance": Decimal(n % 1000) / 10,
                    "low_balance_alert": 2 if n % 50 == 0 else 0,
                }
            )
        db.session.execute(insert(table), rows)
        if first is None:
            first = db.session.scalar(
                select(Account.id).where(Account.account_number == "6000000000")
            )
    db.session.commit()
    return first


def _stored(amount: Decimal, units: int):
    """An amount as ExactMoney stores it: integer units on SQLite, the Decimal elsewhere."""
    return int(amount * units) if units != 1 else amount


def _calls(dialect: str, count: int, first_customer: int, customers: int) -> None:
    """`count` calls made with one INSERT ... SELECT, and their resellers' call_charges."""
    units = 100_000 if dialect == "sqlite" else 1  # ExactMoney: integer units on SQLite
    money = "INTEGER" if dialect == "sqlite" else "NUMERIC(18, 5)"
    db.session.execute(
        text(
            "CREATE TABLE bench_destinations (id INTEGER PRIMARY KEY, prefix VARCHAR(32),"
            f" name VARCHAR(100), per_minute {money})"
        )
    )
    db.session.execute(
        text("INSERT INTO bench_destinations VALUES (:id, :prefix, :name, :per_minute)"),
        [
            {"id": n, "prefix": p, "name": d, "per_minute": _stored(Decimal(m), units)}
            for n, (p, d, m) in enumerate(DESTINATIONS)
        ],
    )
    if dialect == "sqlite":
        numbers = (
            "(WITH RECURSIVE seq(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM seq"
            " WHERE n < :count) SELECT n FROM seq) AS s"
        )
        started = "datetime('now', '-' || (s.n * 7919 % :spread) || ' seconds')"
        id_text = "'b' || s.n"
    else:
        numbers = "generate_series(CAST(1 AS BIGINT), CAST(:count AS BIGINT)) AS s(n)"
        started = "(now() at time zone 'utc') - make_interval(secs => s.n * 7919 % :spread)"
        id_text = "'b' || s.n::text"
    seconds = "CASE WHEN s.n % 5 = 0 THEN 0 ELSE (s.n * 13) % 600 + 1 END"
    live = f"s.n % {LIVE_EVERY} = 0"
    db.session.execute(
        text(
            "INSERT INTO calls (call_id, account_id, sip_username, destination,"  # noqa: S608 (our own SQL)
            " translated_destination, status, cause, rate_prefix, rate_destination, connect_cost,"
            " cost_per_minute, initial_increment, increment, max_duration_seconds, reserved,"
            " started_at, ended_at, duration_seconds, hangup_cause, cost)"
            f" SELECT {id_text}, :first + (s.n * 7919) % :customers, '', d.prefix || '123456',"
            f" d.prefix || '123456', CASE WHEN {live} THEN 'live' ELSE 'ended' END, 'OK',"
            " d.prefix, d.name, 0, d.per_minute, 60, 60, 3600, 0,"
            f" {started}, CASE WHEN {live} THEN NULL ELSE {started} END,"
            f" CASE WHEN {live} THEN NULL ELSE {seconds} END, '',"
            f" CASE WHEN {live} THEN NULL ELSE (({seconds} + 59) / 60) * d.per_minute END"
            f" FROM {numbers} JOIN bench_destinations d ON d.id = s.n % {len(DESTINATIONS)}"
        ),
        {"count": count, "first": first_customer, "customers": customers, "spread": SPREAD_SECONDS},
    )
    # A reseller's customer's call: the reseller pays half of what its customer paid.
    db.session.execute(
        text(
            "INSERT INTO call_charges (call_id, account_id, level, rate_prefix, connect_cost,"
            " cost_per_minute, initial_increment, increment, reserved, cost)"
            " SELECT c.id, a.reseller_id, 1, c.rate_prefix, 0, c.cost_per_minute / 2, 60, 60, 0,"
            " c.cost / 2 FROM calls c JOIN accounts a ON a.id = c.account_id"
            " WHERE a.reseller_id IS NOT NULL"
        )
    )
    db.session.execute(text("DROP TABLE bench_destinations"))
    db.session.commit()


def load(url: str, accounts: int, calls: int) -> dict:
    """Migrate, load the accounts and calls, fill the rollups by the recount; the seconds each."""
    app = make_app(url, FAST_HASH)
    migrate(app)
    times = {}
    with app.app_context():
        dialect = db.engine.dialect.name
        create_admin(email="admin@bench.example.com", password=ADMIN_PASSWORD)
        started = time.perf_counter()
        first = _accounts(accounts)
        times["accounts_s"] = time.perf_counter() - started
        started = time.perf_counter()
        _calls(dialect, calls, first, accounts)
        times["calls_s"] = time.perf_counter() - started
        _analyze(dialect)  # the recount's joins are planned with the tables' real sizes
        started = time.perf_counter()
        times["rollup_rows"] = rollups.rebuild()
        times["rebuild_s"] = time.perf_counter() - started
        _analyze(dialect)
        db.session.remove()
    return times


def _analyze(dialect: str) -> None:
    """Fresh planner statistics, as autovacuum (PostgreSQL) or `ANALYZE` (SQLite) would give."""
    if dialect == "postgresql":
        connection = db.engine.raw_connection()
        connection.driver_connection.autocommit = True
        connection.driver_connection.execute("VACUUM ANALYZE")
        connection.close()
    else:
        db.session.execute(text("ANALYZE"))
        db.session.commit()


def time_dashboards(urls: dict[str, str], repeat: int, rounds: int) -> dict:
    """GET /dashboard/ as the admin and as the busiest reseller, sizes taking turns; ms."""
    clients = {}
    for size, url in urls.items():
        app = make_app(url, FAST_HASH)
        with app.app_context():
            reseller = db.session.scalar(
                select(Account.account_number)
                .where(Account.role == Role.RESELLER)
                .order_by(Account.id)
            )
        admin = app.test_client()
        login(admin, "admin@bench.example.com")
        clients[(size, "admin")] = admin
        seller = app.test_client()
        login(seller, reseller, "Bench-passw0rd1")
        clients[(size, "reseller")] = seller
    durations: dict[tuple, list[float]] = {key: [] for key in clients}
    round_medians: dict[tuple, list[float]] = {key: [] for key in clients}
    for client in clients.values():  # warm-up: imports, templates, caches
        for _ in range(3):
            assert client.get("/dashboard/").status_code == 200
    for _ in range(rounds):
        this_round: dict[tuple, list[float]] = {key: [] for key in clients}
        for _ in range(repeat):
            for key, client in clients.items():
                started = time.perf_counter()
                response = client.get("/dashboard/")
                this_round[key].append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200
        for key, values in this_round.items():
            durations[key].extend(values)
            round_medians[key].append(statistics.median(values))
    return {
        f"{size} {who}": {**summary(durations[(size, who)]), "rounds": round_medians[(size, who)]}
        for size, who in clients
    }


def time_hangups(url: str, count: int) -> dict:
    """end_call() of authorized calls with the rollup counted, and with it left out; ms each."""
    app = make_app(url, FAST_HASH)
    real = rollups.count_call
    with app.app_context():
        admin = db.session.scalar(select(Account).where(Account.role == Role.ADMIN))
        wholesale = RateGroup(name="Bench wholesale", status=Status.ACTIVE)
        db.session.add(wholesale)
        db.session.commit()
        db.session.add(Rate(rate_group_id=wholesale.id, prefix="44", destination="UK"))
        reseller = Account(
            account_number="5900000001",
            role=Role.RESELLER,
            password_hash="x",
            rate_group_id=wholesale.id,
        )
        db.session.add(reseller)
        db.session.commit()
        plan = RateGroup(name="Bench plan", status=Status.ACTIVE, reseller_id=reseller.id)
        db.session.add(plan)
        db.session.commit()
        db.session.add(Rate(rate_group_id=plan.id, prefix="44", destination="UK"))
        callers = []
        for number, group, owner in (
            ("5900000002", wholesale, None),
            ("5900000003", plan, reseller),
        ):
            caller = Account(
                account_number=number,
                role=Role.CUSTOMER,
                password_hash="x",
                rate_group_id=group.id,
                reseller_id=owner.id if owner else None,
                tenant_path=owner.subtree_path if owner else "",
            )
            db.session.add(caller)
            db.session.commit()
            add_payment(None, caller, "1000000")
            callers.append(caller.account_number)
        add_payment(None, reseller, "1000000")
        results: dict[str, list[float]] = {}
        serial = 0
        for index in range(count):
            for with_rollup in (True, False) if index % 2 == 0 else (False, True):
                for kind, number in zip(("direct", "chain"), callers, strict=True):
                    serial += 1
                    call_id = f"hangup-{serial}"
                    authorize_call(admin, call_id, "447911123456", account_number=number)
                    call = db.session.scalar(select(Call).where(Call.call_id == call_id))
                    rollups.count_call = real if with_rollup else _not_counted
                    started = time.perf_counter()
                    call_service.end_call(call, 61, "NORMAL_CLEARING")
                    elapsed = (time.perf_counter() - started) * 1000
                    rollups.count_call = real
                    label = f"{kind} {'with' if with_rollup else 'without'} rollup"
                    results.setdefault(label, []).append(elapsed)
        db.session.remove()
    return {label: summary(values) for label, values in results.items()}


def _not_counted(*_args) -> None:
    """The baseline: a hang-up that counts no rollup (never used outside this benchmark)."""


def run_backend(name: str, database, args, large: int) -> dict:
    """Both sizes loaded on `name`, then timed in turns; the hang-ups on the small one."""
    result = {"backend": name, "accounts": args.accounts, "load": {}}
    with database() as small_url, database() as large_url:
        urls = {f"{args.small:,} calls": small_url, f"{large:,} calls": large_url}
        for size, url in urls.items():
            started = time.perf_counter()
            result["load"][size] = load(url, args.accounts, int(size.split()[0].replace(",", "")))
            result["load"][size]["total_s"] = time.perf_counter() - started
            print(f"{name}: loaded {size}: {result['load'][size]}", flush=True)
        result["load_average_before"] = os.getloadavg()
        result["dashboard"] = time_dashboards(urls, args.repeat, args.rounds)
        result["load_average_after"] = os.getloadavg()
        result["hangup"] = time_hangups(small_url, args.hangups)
    return result


def report(result: dict) -> None:
    """Print one backend's figures."""
    print(f"\n{result['backend']}, {result['accounts']:,} accounts")
    for size, figures in result["load"].items():
        print(
            f"  load {size}: accounts {figures['accounts_s']:.1f} s, calls"
            f" {figures['calls_s']:.1f} s, rollups recounted in {figures['rebuild_s']:.1f} s"
            f" ({figures['rollup_rows']:,} rows)"
        )
    print(
        f"  load average before/after timing: {result['load_average_before']}"
        f" / {result['load_average_after']}"
    )
    dashboard = result["dashboard"]
    for label, figures in dashboard.items():
        rounds = ", ".join(f"{value:.1f}" for value in figures["rounds"])
        print(
            f"  GET /dashboard/ {label}: median {figures['median_ms']:.1f} ms,"
            f" p90 {figures['p90_ms']:.1f} ms (round medians {rounds})"
        )
    sizes = list(dict.fromkeys(label.rsplit(" ", 1)[0] for label in dashboard))
    for who in ("admin", "reseller"):
        small, large = (dashboard[f"{size} {who}"]["median_ms"] for size in sizes)
        print(f"  {who}: {sizes[1]} / {sizes[0]} = {large / small:.2f}")
    hangup = result["hangup"]
    for kind in ("direct", "chain"):
        with_rollup = hangup[f"{kind} with rollup"]["median_ms"]
        without = hangup[f"{kind} without rollup"]["median_ms"]
        print(
            f"  hang-up ({kind}): {with_rollup:.2f} ms with the rollup, {without:.2f} ms"
            f" without: {with_rollup / without:.2f}x"
        )


def main() -> None:
    """Parse arguments, run on SQLite and, with --postgres, on PostgreSQL."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=100_000, help="customers")
    parser.add_argument("--small", type=int, default=100_000, help="calls of the baseline")
    parser.add_argument("--large", type=int, default=1_000_000, help="calls on SQLite")
    parser.add_argument("--pg-large", type=int, default=10_000_000, help="calls on PostgreSQL")
    parser.add_argument("--repeat", type=int, default=10, help="requests per round and size")
    parser.add_argument("--rounds", type=int, default=3, help="rounds")
    parser.add_argument("--hangups", type=int, default=150, help="hang-ups of each kind")
    parser.add_argument("--postgres", action="store_true", help="also on PostgreSQL")
    parser.add_argument("--no-sqlite", action="store_true", help="only on PostgreSQL")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    results = []
    if not args.no_sqlite:
        results.append(run_backend("SQLite", sqlite_database, args, args.large))
        report(results[-1])
    if args.postgres or args.no_sqlite:
        results.append(run_backend("PostgreSQL", postgres_database, args, args.pg_large))
        report(results[-1])
    write_json(args.json, results)


if __name__ == "__main__":
    main()
