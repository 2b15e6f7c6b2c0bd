"""Benchmark the Create Customer Account POST through the Flask test client on SQLite."""

import argparse
import secrets
import sys
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from werkzeug.security import generate_password_hash  # noqa: E402

from bench.common import (  # noqa: E402
    ADMIN_PASSWORD,
    FAST_HASH,
    csrf_from,
    login,
    make_app,
    migrate,
    sqlite_database,
    summary,
    timed,
    write_json,
)
from portal.accounts.service import create_admin  # noqa: E402
from portal.extensions import db  # noqa: E402
from portal.models import RateGroup, Tax  # noqa: E402
from portal.tariffs.service import ensure_default_rate_group  # noqa: E402

METHODS = ("scrypt", FAST_HASH)


def payload(number: str, index: int, rate_group_id: int, tax_id: int, token: str) -> dict:
    """A full valid form (the one of tests/test_smoke.py) for account `number`."""
    return {
        "account_number": number,
        "password": "Secret123x",
        "pin": "123456",
        "first_name": "Ann",
        "last_name": "Lee",
        "company": "ACME",
        "telephone": "+44 20 7946 0958",
        "country": "GB",
        "timezone": "Europe/London",
        "status": "active",
        "max_channels": "2",
        "number_translation": "011/2222,+/00",
        "valid_days": "30",
        "create_sip_device": "y",
        "rate_group_id": str(rate_group_id),
        "billing_schedule": "monthly",
        "billing_day": "5",
        "currency": "GBP",
        "account_type": "postpaid",
        "credit_limit": "100.5",
        "tax_ids": [str(tax_id)],
        "low_balance_alert": "5",
        "email_alerts": "y",
        "email": f"bench{index}@example.com",
        "csrf_token": token,
    }


def fresh_numbers(count: int) -> list[str]:
    """`count` distinct 10-digit account numbers not starting with 0 (the default length)."""
    numbers: set[str] = set()
    while len(numbers) < count:
        numbers.add(str(secrets.choice(range(1, 10))) + f"{secrets.randbelow(10**9):09d}")
    return sorted(numbers)


def run(count: int = 300, method: str = "scrypt", baseline_repeat: int = 200) -> dict:
    """POST /accounts/new `count` times on a fresh SQLite file; return the figures."""
    with sqlite_database() as url:
        app = make_app(url, method)
        migrate(app)
        with app.app_context():
            admin = create_admin("admin@bench.example", ADMIN_PASSWORD)
            ensure_default_rate_group("GBP")  # the currency of the form below
            db.session.add(Tax(name="VAT", rate=Decimal(20), fixed_amount=Decimal("0.1")))
            db.session.commit()
            admin_number = admin.account_number
            group_id = db.session.scalar(db.select(RateGroup.id))
            tax_id = db.session.scalar(db.select(Tax.id))

        client = app.test_client()
        login(client, admin_number)
        # One token per session: WTF_CSRF_TIME_LIMIT is None, so it stays valid for every POST.
        token = csrf_from(client.get("/accounts/new").get_data(as_text=True))
        numbers = fresh_numbers(count + 3)
        durations = []
        failures = 0
        wall_start = time.perf_counter()
        for index, number in enumerate(numbers):
            data = payload(number, index, group_id, tax_id, token)
            start = time.perf_counter()
            response = client.post("/accounts/new", data=data)
            elapsed = (time.perf_counter() - start) * 1000
            if response.status_code != 200 or "Secret123x" not in response.get_data(as_text=True):
                failures += 1
            if index >= 3:  # the first three warm the caches up
                durations.append(elapsed)
        wall = time.perf_counter() - wall_start

        anonymous = app.test_client()
        baseline = timed(lambda: anonymous.get("/login"), baseline_repeat)
        start = time.perf_counter()
        for _ in range(20):
            generate_password_hash("Secret123x", method=method)
        hash_ms = (time.perf_counter() - start) * 1000 / 20

        with app.app_context():
            db.engine.dispose()

    create = summary(durations)
    login_page = summary(baseline)
    return {
        "method": method,
        "count": count,
        "failures": failures,
        "create": create,
        "accounts_per_second": (count + 3) / wall,
        "baseline_login_get": login_page,
        "ratio": create["median_ms"] / login_page["median_ms"],
        "hash_only_ms": hash_ms,
    }


def report(result: dict) -> None:
    """Print one run's figures."""
    create, base = result["create"], result["baseline_login_get"]
    print(f"hash method {result['method']}: {result['count']} POST /accounts/new")
    print(
        f"  create: median {create['median_ms']:.1f} ms, p90 {create['p90_ms']:.1f} ms, "
        f"{result['accounts_per_second']:.1f} accounts/s, failures {result['failures']}"
    )
    print(f"  baseline GET /login: median {base['median_ms']:.2f} ms")
    print(f"  ratio create/baseline: {result['ratio']:.1f}x")
    print(f"  one password hash alone: {result['hash_only_ms']:.1f} ms")


def main(argv: list[str] | None = None) -> list[dict]:
    """Run the benchmark for each hash method and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", "--count", type=int, default=300, help="accounts to create")
    parser.add_argument("--method", action="append", help="hash method (repeatable)")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    results = []
    for method in args.method or METHODS:
        result = run(args.count, method)
        report(result)
        results.append(result)
    write_json(args.json, results)
    return results


if __name__ == "__main__":
    main()
