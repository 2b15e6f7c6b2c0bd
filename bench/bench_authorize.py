"""Call authorization throughput under gunicorn, next to a bare Flask endpoint in the same run."""

import argparse
import http.client
import json
import secrets
import statistics
import sys
import threading
import time
from datetime import date
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402
from sqlalchemy import func, insert, select  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from bench.common import (  # noqa: E402
    ADMIN_PASSWORD,
    FAST_HASH,
    gunicorn,
    make_app,
    mariadb_database,
    migrate,
    postgres_database,
    sqlite_database,
)
from portal.accounts.service import create_admin  # noqa: E402
from portal.apikeys.service import create_key  # noqa: E402
from portal.extensions import db  # noqa: E402
from portal.models import (  # noqa: E402
    Account,
    AccountBlockedPrefix,
    Call,
    CallStatus,
    IpTrunk,
    Product,
    ProductPrefix,
    Rate,
    RateGroup,
    RateGroupBlockedPrefix,
    Role,
    Status,
    Subscription,
    Tax,
    account_taxes,
)
from portal.rules.addresses import network_range, parse_network  # noqa: E402

DESTINATION = "442079460958"
FUNDS = Decimal("1000000000")  # enough for every reservation of the run


def _rate_group(name: str, prefixes: set, per_minute: str, reseller_id=None) -> RateGroup:
    """An active rate group with a rate for each prefix."""
    group = RateGroup(name=name, status=Status.ACTIVE, reseller_id=reseller_id)
    db.session.add(group)
    db.session.commit()
    db.session.execute(
        insert(Rate),
        [
            {
                "rate_group_id": group.id,
                "prefix": prefix,
                "destination": f"Dest {prefix}",
                "connect_cost": Decimal("0.01"),
                "cost_per_minute": Decimal(per_minute),
                "initial_increment": 30,
                "increment": 6,
            }
            for prefix in sorted(prefixes)
        ],
    )
    return group


def _chain_customers(prefixes: set, accounts: int) -> list[str]:
    """Customers two reseller levels deep (admin -> reseller -> sub-reseller -> customer)."""
    # Each level has its own rate group, assigned by its parent, and funds of its own.
    wholesale = _rate_group("Wholesale", prefixes, "0.01")
    parent, group = None, wholesale
    for level, number in enumerate(("5000000001", "5000000002"), start=1):
        reseller = Account(
            account_number=number,
            role=Role.RESELLER,
            password_hash="x",
            reseller_id=parent.id if parent else None,
            tenant_path=parent.subtree_path if parent else "",
            rate_group_id=group.id,
            balance=FUNDS,
        )
        db.session.add(reseller)
        db.session.commit()
        group = _rate_group(f"Plan {level}", prefixes, "0.015", reseller.id)
        parent = reseller
    numbers = [str(7_000_000_000 + i) for i in range(accounts)]
    db.session.execute(
        insert(Account),
        [
            {
                "account_number": number,
                "role": Role.CUSTOMER,
                "password_hash": "x",
                "reseller_id": parent.id,
                "tenant_path": parent.subtree_path,
                "rate_group_id": group.id,
                "balance": FUNDS,
            }
            for number in numbers
        ],
    )
    return numbers


def _bundled_customers(group: RateGroup, accounts: int) -> list[str]:
    """Customers of the admins subscribed to a bundle covering the calls' destination (44)."""
    # Big enough never to run out in a run (every call of it holds up to an hour of it): the
    # measure is the bundle's draw (the look-up, the period's hold), not the funds' fallback.
    product = Product(
        name="Bench bundle", free_minutes=10**7, prefixes=[ProductPrefix(prefix="44")]
    )
    db.session.add(product)
    db.session.flush()
    numbers = [str(8_000_000_000 + i) for i in range(accounts)]
    db.session.execute(
        insert(Account),
        [
            {
                "account_number": number,
                "role": Role.CUSTOMER,
                "password_hash": "x",
                "rate_group_id": group.id,
                "balance": FUNDS,
            }
            for number in numbers
        ],
    )
    ids = db.session.scalars(select(Account.id).where(Account.account_number.in_(numbers)))
    db.session.execute(
        insert(Subscription),
        [{"account_id": i, "product_id": product.id, "start_date": date(2000, 1, 1)} for i in ids],
    )
    return numbers


def trunk_address(index: int) -> str:
    """The address of the admins' customer number `index`'s IP trunk (--trunks)."""
    return f"10.{index >> 16 & 255}.{index >> 8 & 255}.{index & 255}"


def _trunks_and_blocks(numbers: list[str], group: RateGroup, blocked: int) -> None:
    """An IP trunk (a /32) per customer; `blocked` prefixes on the group and each customer."""
    ids = dict(db.session.execute(select(Account.account_number, Account.id)).all())
    rows = []
    for index, number in enumerate(numbers):
        network = parse_network(trunk_address(index))
        start, end = network_range(network)
        rows.append(
            {
                "account_id": ids[number],
                "network": str(network),
                "range_start": start,
                "range_end": end,
                "tech_prefix": "",
                "status": Status.ACTIVE,
            }
        )
    db.session.execute(insert(IpTrunk), rows)
    # Prefixes that are not the calls' (4420...): each call still probes for them.
    prefixes = [f"{900 + n}" for n in range(blocked)]
    if prefixes:
        db.session.execute(
            insert(RateGroupBlockedPrefix),
            [{"rate_group_id": group.id, "prefix": prefix} for prefix in prefixes],
        )
        db.session.execute(
            insert(AccountBlockedPrefix),
            [{"account_id": ids[n], "prefix": prefix} for n in numbers for prefix in prefixes],
        )


def seed(
    database_url: str,
    accounts: int,
    rates: int,
    taxes: int = 0,
    chain: bool = False,
    bundles: bool = False,
    trunks: bool = False,
    blocked: int = 0,
) -> tuple[str, list[str], list[str], list[str]]:
    """Migrate, then add an admin's API key, a rate group and funded customers.

    (key, the admins' customers, with `chain` customers two reseller levels deep or [], with
    `bundles` customers with a free-minute bundle for the destination or []). With `trunks`,
    each admins' customer has an IP trunk; `blocked` prefixes on each.
    """
    app = make_app(database_url, FAST_HASH)
    migrate(app)
    with app.app_context():
        admin = create_admin("admin@bench.example", ADMIN_PASSWORD)
        # Random 4 to 7 digit prefixes around the one the calls use, as in a real tariff.
        prefixes = {"44", "4420"} | {
            str(secrets.randbelow(9_000_000) + 1_000_000)[: 4 + i % 4] for i in range(rates)
        }
        group = _rate_group("Bench", prefixes, "0.02")
        chained = _chain_customers(prefixes, accounts) if chain else []
        bundled = _bundled_customers(group, accounts) if bundles else []
        numbers = [str(6_000_000_000 + i) for i in range(accounts)]
        db.session.execute(
            insert(Account),
            [
                {
                    "account_number": number,
                    "role": Role.CUSTOMER,
                    "password_hash": "x",
                    "rate_group_id": group.id,
                    "balance": FUNDS,
                }
                for number in numbers
            ],
        )
        if trunks or blocked:
            _trunks_and_blocks(numbers, group, blocked)
        if taxes:
            # Percentage taxes on every customer: prepaid calls carry them (one more subquery
            # in the authorization's statement, and the taxed charge in the duration search).
            tax_rows = [
                Tax(name=f"Tax {index}", rate=Decimal("20") / (index + 1), priority=index)
                for index in range(taxes)
            ]
            db.session.add_all(tax_rows)
            db.session.flush()
            ids = db.session.scalars(select(Account.id).where(Account.role == Role.CUSTOMER))
            db.session.execute(
                insert(account_taxes),
                [{"account_id": i, "tax_id": tax.id} for i in ids for tax in tax_rows],
            )
        db.session.commit()
        _row, key = create_key(admin, "bench", "")
        db.session.remove()
        db.engine.dispose()
    if database_url.startswith("postgresql"):
        # Statistics for the planner after the bulk load, as autovacuum would gather them (without
        # them the rate lookup is planned as a scan: 4.6 ms instead of 0.2 ms).
        server = make_url(database_url).set(drivername="postgresql").render_as_string(False)
        with psycopg.connect(server, autocommit=True) as connection:
            connection.execute("VACUUM ANALYZE")
    return key, numbers, chained, bundled


def load(port: int, path: str, bodies, headers: dict, seconds: float, connections: int) -> dict:
    """POST from `connections` threads for `seconds`; count answers and time each one."""
    deadline = time.perf_counter() + seconds
    latencies: list[list[float]] = [[] for _ in range(connections)]
    failures = [0] * connections
    start = threading.Barrier(connections)

    def client(index: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        start.wait()
        while (now := time.perf_counter()) < deadline:
            body = bodies(index)
            try:
                # http.client keeps the connection and reopens it if the server closed it
                # (gunicorn's sync workers answer "Connection: close").
                connection.request("POST", path, body, headers)
                response = connection.getresponse()
                data = response.read()
            except (OSError, http.client.HTTPException):
                connection.close()
                failures[index] += 1
                continue
            latencies[index].append((time.perf_counter() - now) * 1000)
            if response.status != 200 or b'"allowed":true' not in data.replace(b" ", b""):
                failures[index] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    ordered = sorted(latency for per_thread in latencies for latency in per_thread)
    count = len(ordered)
    return {
        "requests": count,
        "failures": sum(failures),
        "requests_per_second": count / elapsed,
        "p50_ms": ordered[count // 2],
        "p99_ms": ordered[min(count - 1, int(count * 0.99))],
    }


def measure(backend: str, database_url: str, args) -> dict:
    """Both servers side by side: rounds of bare then authorize load, totals over the rounds."""
    key, numbers, chained, bundled = seed(
        database_url,
        args.accounts,
        args.rates,
        args.taxes,
        args.chain,
        args.bundles or args.mixed,
        args.trunks or args.mixed,
        args.blocked,
    )
    run = secrets.token_hex(3)
    counter = iter(range(10**9))

    def call_body(serial: int, **caller) -> bytes:
        return json.dumps({"call_id": f"{run}-{serial}", "destination": DESTINATION, **caller})

    def authorize_body(index: int) -> bytes:
        serial = next(counter)  # a new call id every time; accounts taken in turn
        return call_body(serial, account=numbers[serial % len(numbers)]).encode()

    def chain_body(index: int) -> bytes:
        serial = next(counter)
        return call_body(serial, account=chained[serial % len(chained)]).encode()

    def mixed(bundle_share: bool, trunk_share: bool):
        """Bodies of which every 10th is by a bundled customer, the next by source_ip."""

        def body(index: int) -> bytes:
            serial = next(counter)
            turn, customer = serial % 10, (serial // 10) % len(numbers)
            if bundle_share and turn == 0:
                return call_body(serial, account=bundled[customer % len(bundled)]).encode()
            if trunk_share and turn == 1:
                return call_body(serial, source_ip=trunk_address(customer)).encode()
            return call_body(serial, account=numbers[serial % len(numbers)]).encode()

        return body

    def bare_body(index: int) -> bytes:
        serial = next(counter)
        return json.dumps({"call_id": f"{run}-{serial}", "destination": DESTINATION}).encode()

    json_headers = {"Content-Type": "application/json"}
    key_headers = {**json_headers, "Authorization": f"Bearer {key}"}
    env = {"DATABASE_URL": database_url, "SECRET_KEY": "bench-secret"}
    env["CALLS_ASYNC_COMMIT"] = "0" if args.durable else "1"
    # The mixes compared with plain authorization in the same rounds: 10% of the calls
    # drawing on a bundle, 10% by source_ip (an IP trunk), or both (issue 19's target).
    mixes = {
        name: body
        for name, wanted, body in (
            ("bundles", args.bundles, mixed(True, False)),
            ("trunks", args.trunks, mixed(False, True)),
            ("mixed", args.mixed, mixed(True, True)),
        )
        if wanted
    }
    rounds: dict[str, list[dict]] = {"bare": [], "authorize": []}
    if chained:
        rounds["chain"] = []
    rounds.update({name: [] for name in mixes})
    authorize_path = "/api/v1/calls/authorize"
    with (
        gunicorn("bench.bare_app:app", env, args.workers) as (bare_port, _bare),
        gunicorn("app:app", env, args.workers) as (portal_port, _portal),
    ):
        plan = (
            ("bare", bare_port, "/bare", bare_body, json_headers),
            ("authorize", portal_port, authorize_path, authorize_body, key_headers),
        )
        if chained:  # customers two reseller levels deep, in the same rounds
            plan += (("chain", portal_port, authorize_path, chain_body, key_headers),)
        for name, body in mixes.items():
            plan += ((name, portal_port, authorize_path, body, key_headers),)
        for _name, port, path, bodies, headers in plan:  # warm up both (imports, connections)
            load(port, path, bodies, headers, 1.0, args.connections)
        for index in range(args.rounds):
            # Bare first, then authorize first: a machine getting busier or quieter during
            # the run moves both alike, and each round's ratio compares neighbours.
            for name, port, path, bodies, headers in plan[:: 1 if index % 2 == 0 else -1]:
                rounds[name].append(
                    load(port, path, bodies, headers, args.seconds, args.connections)
                )
    result = {"backend": backend, "durable": args.durable}
    for name, parts in rounds.items():
        result[name] = {
            "requests": sum(p["requests"] for p in parts),
            "failures": sum(p["failures"] for p in parts),
            "requests_per_second": sum(p["requests_per_second"] for p in parts) / len(parts),
            "p50_ms": max(p["p50_ms"] for p in parts),
            "p99_ms": max(p["p99_ms"] for p in parts),
        }
    result["ratio"] = (
        result["authorize"]["requests_per_second"] / result["bare"]["requests_per_second"]
    )
    result["round_ratios"] = [
        a["requests_per_second"] / b["requests_per_second"]
        for a, b in zip(rounds["authorize"], rounds["bare"], strict=True)
    ]
    result["median_ratio"] = statistics.median(result["round_ratios"])
    if chained:
        # How much longer a chain customer's authorization takes than an admin customer's.
        result["chain_cost"] = (
            result["authorize"]["requests_per_second"] / result["chain"]["requests_per_second"]
        )
        result["chain_round_costs"] = [
            a["requests_per_second"] / c["requests_per_second"]
            for a, c in zip(rounds["authorize"], rounds["chain"], strict=True)
        ]
    for name in mixes:
        # A mix against plain authorization: 1.0 as fast, above 1 faster.
        result[f"{name}_ratio"] = (
            result[name]["requests_per_second"] / result["authorize"]["requests_per_second"]
        )
        result[f"{name}_round_ratios"] = [
            m["requests_per_second"] / a["requests_per_second"]
            for a, m in zip(rounds["authorize"], rounds[name], strict=True)
        ]
    result["live_calls"] = _live_calls(database_url)
    return result


def _live_calls(database_url: str) -> int:
    """Live calls in the database: one per allowed authorization of the run."""
    app = make_app(database_url, FAST_HASH)
    with app.app_context():
        count = db.session.scalar(
            select(func.count()).select_from(Call).where(Call.status == CallStatus.LIVE)
        )
        db.session.remove()
        db.engine.dispose()
    return count


MIXES = {
    "bundles": "10% bundled calls",
    "trunks": "10% by source_ip",
    "mixed": "10% bundled and 10% by source_ip",
}


def report(result: dict) -> None:
    """Print one backend's figures."""
    notes = [" (CALLS_ASYNC_COMMIT=0)" if result["durable"] else ""]
    print(f"\n{result['backend']}{''.join(notes)}:")
    names = ("bare", "authorize", "chain", *MIXES)
    for name in [name for name in names if name in result]:
        figures = result[name]
        print(
            f"  {name:<10} {figures['requests_per_second']:8.0f} req/s  "
            f"p50 {figures['p50_ms']:6.2f} ms  p99 {figures['p99_ms']:6.2f} ms  "
            f"({figures['requests']} requests, {figures['failures']} failed)"
        )
    rounds = " ".join(f"{ratio:.0%}" for ratio in result["round_ratios"])
    print(
        f"  authorize / bare: {result['ratio']:.0%} over the run, median of rounds "
        f"{result['median_ratio']:.0%} ({rounds})\n"
        f"  live calls in the database (warm-up included): {result['live_calls']}"
    )
    if "chain_cost" in result:
        costs = " ".join(f"{cost:.2f}x" for cost in result["chain_round_costs"])
        print(
            f"  chain (2 reseller levels) / single level: {result['chain_cost']:.2f}x the time "
            f"per authorization over the run, median of rounds "
            f"{statistics.median(result['chain_round_costs']):.2f}x ({costs})"
        )
    for name, what in MIXES.items():
        if f"{name}_ratio" in result:
            ratios = " ".join(f"{ratio:.2f}x" for ratio in result[f"{name}_round_ratios"])
            print(
                f"  {what} / plain: {result[f'{name}_ratio']:.2f}x the requests per second "
                f"over the run, median of rounds "
                f"{statistics.median(result[f'{name}_round_ratios']):.2f}x ({ratios})"
            )


def main(argv: list[str] | None = None) -> list[dict]:
    """Run on SQLite (and PostgreSQL with --postgres, MariaDB with --mariadb); the results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0, help="length of one load round")
    parser.add_argument("--rounds", type=int, default=6, help="rounds of bare and authorize")
    parser.add_argument("--connections", type=int, default=4, help="client threads")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--accounts", type=int, default=1000, help="funded customers")
    parser.add_argument("--rates", type=int, default=10_000, help="rates in the group")
    parser.add_argument("--postgres", action="store_true", help="also on PostgreSQL")
    parser.add_argument("--mariadb", action="store_true", help="also on MariaDB")
    parser.add_argument(
        "--taxes", type=int, default=0, help="percentage taxes on every customer (prepaid)"
    )
    parser.add_argument(
        "--chain",
        action="store_true",
        help="also customers two reseller levels deep, in the same rounds (the cost chain)",
    )
    parser.add_argument(
        "--bundles",
        action="store_true",
        help="also a mix where 10%% of the calls draw on a free-minute bundle, same rounds",
    )
    parser.add_argument(
        "--trunks",
        action="store_true",
        help="also a mix with 10%% of the calls identified by source_ip (IP trunks), in the "
        "same rounds, against plain authorization",
    )
    parser.add_argument(
        "--mixed",
        action="store_true",
        help="also a mix with 10%% of the calls on a bundle and 10%% by source_ip (issue 19)",
    )
    parser.add_argument(
        "--blocked",
        type=int,
        default=0,
        help="blocked prefixes (not the calls') on the rate group and on every customer",
    )
    parser.add_argument(
        "--durable", action="store_true", help="CALLS_ASYNC_COMMIT=0: wait for the disk"
    )
    args = parser.parse_args(argv)
    results = []
    with sqlite_database() as url:
        results.append(measure("SQLite", url, args))
        report(results[-1])
    if args.postgres:
        with postgres_database() as url:
            results.append(measure("PostgreSQL", url, args))
            report(results[-1])
    if args.mariadb:
        with mariadb_database() as url:
            results.append(measure("MariaDB", url, args))
            report(results[-1])
    return results


if __name__ == "__main__":
    main()
