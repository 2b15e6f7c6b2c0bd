"""Rate CSV import (100,000 rows) and longest-prefix lookup (find_rate, DB) against baselines."""

import argparse
import gc
import io
import random
import resource
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (  # noqa: E402
    ADMIN_PASSWORD,
    FAST_HASH,
    csrf_from,
    login,
    make_app,
    migrate,
    postgres_database,
    sqlite_database,
)
from portal.extensions import db  # noqa: E402
from portal.models import Account, Rate, RateGroup, Role, Status  # noqa: E402
from portal.passwords import hash_password  # noqa: E402
from portal.rules.rating import find_rate  # noqa: E402
from portal.tariffs.rate_csv import HEADER, parse_rates  # noqa: E402
from portal.tariffs.service import load_rate_table, lookup_rate  # noqa: E402


def rate_csv(rows: int, seed: int = 1) -> bytes:
    """A valid rate file with `rows` unique prefixes of 2 to 9 digits."""
    rng = random.Random(seed)
    prefixes: set[str] = set()
    while len(prefixes) < rows:
        prefixes.add(
            str(rng.randint(1, 9)) + "".join(rng.choices("0123456789", k=rng.randint(1, 8)))
        )
    lines = [",".join(HEADER)]
    for prefix in prefixes:
        cost = f"{rng.randint(1, 99999) / 100000:.5f}"
        lines.append(f"{prefix},Destination {prefix},0.00500,{cost},30,6")
    return ("\n".join(lines) + "\n").encode()


def setup(database_url: str):
    """A migrated app with an admin and an empty rate group."""
    app = make_app(database_url, hash_method=FAST_HASH)
    migrate(app)
    with app.app_context():
        admin = Account(
            account_number="1000000001",
            role=Role.ADMIN,
            password_hash=hash_password(ADMIN_PASSWORD),
            status=Status.ACTIVE,
        )
        group = RateGroup(name="Bench", currency="USD")
        db.session.add_all([admin, group])
        db.session.commit()
        return app, group.id


def import_through_http(
    app, group_id: int, content: bytes, trace: bool = False
) -> tuple[float, float]:
    """Upload a file to the import form: (seconds, peak traced MB when `trace`, else 0)."""
    client = app.test_client()
    login(client, "1000000001")
    page = f"/tariff/rate-groups/{group_id}"
    token = csrf_from(client.get(page).get_data(as_text=True))
    gc.collect()
    if trace:
        tracemalloc.start()  # slows Python code several times: a separate run from the timing
    start = time.perf_counter()
    response = client.post(
        f"{page}/import",
        data={"file": (io.BytesIO(content), "rates.csv"), "mode": "replace", "csrf_token": token},
        content_type="multipart/form-data",
    )
    seconds = time.perf_counter() - start
    peak = 0.0
    if trace:
        peak = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
    if response.status_code != 303:
        raise RuntimeError(f"import failed: {response.status_code}")
    return seconds, peak


def row_by_row_baseline(app, group_id: int, content: bytes) -> float:
    """The naive way, for comparison: one ORM insert and one commit per row."""
    rows = parse_rates(content).rows
    with app.app_context():
        start = time.perf_counter()
        for row in rows:
            db.session.add(Rate(rate_group_id=group_id, **row.__dict__))
            db.session.commit()
        return time.perf_counter() - start


def lookups(app, group_id: int, count: int, seed: int = 2) -> dict:
    """Median µs per lookup: find_rate (in memory), the indexed DB query, and a linear scan."""
    rng = random.Random(seed)
    numbers = ["".join(rng.choices("0123456789", k=12)) for _ in range(count)]
    with app.app_context():
        group = db.session.get(RateGroup, group_id)
        table = load_rate_table(group)
        rates = list(db.session.scalars(db.select(Rate).where(Rate.rate_group_id == group_id)))

        def per_call_us(function, sample) -> float:
            times = []
            for number in sample:
                start = time.perf_counter_ns()
                function(number)
                times.append((time.perf_counter_ns() - start) / 1000)
            return statistics.median(times)

        def scan(number):
            best = None
            for rate in rates:
                if number.startswith(rate.prefix) and (
                    best is None or len(rate.prefix) > len(best.prefix)
                ):
                    best = rate
            return best

        # The three must agree before their speed means anything.
        for number in numbers[:200]:
            expected = scan(number)
            assert find_rate(table, number) is expected or (
                find_rate(table, number).prefix == getattr(expected, "prefix", None)
            )
            found = lookup_rate(group_id, number)
            assert getattr(found, "prefix", None) == getattr(expected, "prefix", None)
        return {
            "find_rate_us": per_call_us(lambda n: find_rate(table, n), numbers),
            "db_lookup_us": per_call_us(lambda n: lookup_rate(group_id, n), numbers[:5000]),
            "scan_us": per_call_us(scan, numbers[:200]),
            "rates": len(table),
        }


def run(database_url_factory, label: str, rows: int, baseline_rows: int) -> dict:
    """All measurements on one backend; prints them and returns them."""
    result: dict = {"backend": label, "imports": []}
    content = rate_csv(rows)
    print(f"\n== {label}: rate CSV import, {rows:,} rows ({len(content) / 1e6:.1f} MB) ==")
    for size in (rows // 10, rows):
        sample = rate_csv(size)
        with database_url_factory() as url:
            app, group_id = setup(url)
            with database_url_factory() as traced_url:
                traced_app, traced_group = setup(traced_url)
                _, peak = import_through_http(traced_app, traced_group, sample, trace=True)
                with traced_app.app_context():
                    db.engine.dispose()
            seconds, _ = import_through_http(app, group_id, sample)
            result["imports"].append({"rows": size, "seconds": seconds, "peak_mb": peak})
            with app.app_context():
                stored = db.session.scalar(
                    db.select(db.func.count())
                    .select_from(Rate)
                    .where(Rate.rate_group_id == group_id)
                )
            assert stored == size, stored
            print(
                f"import {size:>7,} rows via POST: {seconds:6.2f} s, "
                f"{size / seconds:>9,.0f} rows/s, "
                f"peak Python memory {peak:6.1f} MB (traced run)"
            )
            if size == rows:
                stats = lookups(app, group_id, 100_000)
            with app.app_context():
                db.engine.dispose()  # release the file before the folder is removed
    baseline = rate_csv(baseline_rows, seed=3)
    with database_url_factory() as url:
        app, group_id = setup(url)
        naive = row_by_row_baseline(app, group_id, baseline)
        with database_url_factory() as url2:
            app2, group2 = setup(url2)
            bulk, _ = import_through_http(app2, group2, baseline)
            with app2.app_context():
                db.engine.dispose()
        with app.app_context():
            db.engine.dispose()
    print(
        f"baseline {baseline_rows:,} rows: one insert+commit per row {naive:.2f} s "
        f"vs bulk import {bulk:.2f} s -> bulk is {naive / bulk:.1f}x faster"
    )
    print(
        f"\n== {label}: longest-prefix lookup over {stats['rates']:,} rates (12-digit numbers) =="
    )
    print(f"find_rate (in memory, one probe per digit): median {stats['find_rate_us']:8.2f} µs")
    print(f"lookup_rate (one indexed SQL query):        median {stats['db_lookup_us']:8.2f} µs")
    print(f"baseline linear scan of every rate:         median {stats['scan_us']:8.2f} µs")
    print(
        f"ratios: scan / find_rate = {stats['scan_us'] / stats['find_rate_us']:,.0f}x, "
        f"scan / lookup_rate = {stats['scan_us'] / stats['db_lookup_us']:,.0f}x"
    )
    max_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"process max RSS so far: {max_rss_mb:.0f} MB")
    result.update(stats, naive_s=naive, bulk_s=bulk, baseline_rows=baseline_rows)
    return result


def main(argv: list[str] | None = None) -> list[dict]:
    """Parse arguments and run on SQLite (and PostgreSQL with --postgres)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--baseline-rows", type=int, default=5_000)
    parser.add_argument("--postgres", action="store_true", help="also run on PostgreSQL")
    args = parser.parse_args(argv)
    results = [run(sqlite_database, "SQLite", args.rows, args.baseline_rows)]
    if args.postgres:
        results.append(run(postgres_database, "PostgreSQL", args.rows, args.baseline_rows))
    return results


if __name__ == "__main__":
    main()
