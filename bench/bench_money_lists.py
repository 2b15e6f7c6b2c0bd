"""Benchmark the Invoices and Payments pages and an account's paged lists at two sizes."""

import argparse
import contextlib
import random
import sys
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, insert, select, text  # noqa: E402

from bench.bench_list import bulk_load  # noqa: E402
from bench.common import (  # noqa: E402
    FAST_HASH,
    login,
    make_app,
    migrate,
    postgres_database,
    sqlite_database,
    summary,
    timed_round_robin,
    write_json,
)
from portal.accounts.service import create_admin  # noqa: E402
from portal.extensions import db  # noqa: E402
from portal.models import (  # noqa: E402
    Account,
    Allocation,
    Document,
    DocumentKind,
    EntryKind,
    LedgerEntry,
    RateGroup,
)
from portal.tariffs.service import ensure_default_rate_group  # noqa: E402

CUSTOMERS = 1_000
BATCH = 5_000


def load_money(invoices: int, seed: int = 7) -> int:
    """`invoices` invoices over the customers, a payment for each and an allocation for 2 in 3.

    A third paid, a third partly paid, a third unpaid; due dates over two years. Returns the id
    of the customer with the most documents (its account page is timed).
    """
    rng = random.Random(seed)
    customers = list(
        db.session.scalars(
            select(Account.id).where(Account.role == "customer", Account.deleted_at.is_(None))
        )
    )
    per_customer_number: dict[int, int] = {}
    start = date(2025, 1, 1)
    documents, entries, allocations = [], [], []
    connection = db.session.connection()

    def flush() -> None:
        if documents:
            connection.execute(insert(Document.__table__), documents)
            connection.execute(insert(LedgerEntry.__table__), entries)
            if allocations:
                connection.execute(insert(Allocation.__table__), allocations)
        documents.clear()
        entries.clear()
        allocations.clear()

    next_document = (db.session.scalar(select(func.max(Document.id))) or 0) + 1
    next_entry = (db.session.scalar(select(func.max(LedgerEntry.id))) or 0) + 1
    for index in range(invoices):
        account_id = customers[index % len(customers)]
        number = per_customer_number.get(account_id, 0) + 1
        per_customer_number[account_id] = number
        billing = start + timedelta(days=number)
        total = Decimal(rng.randint(100, 100_000)) / 100
        document_id, entry_id = next_document + index, next_entry + index
        documents.append(
            {
                "id": document_id,
                "kind": DocumentKind.INVOICE,
                "issuer_key": 0,
                "number": index + 1,
                "account_id": account_id,
                "issued_at": datetime.combine(billing, datetime.min.time()),
                "billing_date": billing,
                "due_date": billing + timedelta(days=14),
                "currency": "USD" if index % 5 else "EUR",
                "subtotal": total,
                "tax_total": Decimal(0),
                "total": total,
            }
        )
        paid = (total, total / 2, None)[index % 3]
        entries.append(
            {
                "id": entry_id,
                "account_id": account_id,
                "kind": EntryKind.PAYMENT,
                "amount": -(paid or Decimal(1)),
                "currency": "USD" if index % 5 else "EUR",
                "description": "Payment",
                "created_at": datetime.combine(billing, datetime.min.time()) + timedelta(hours=3),
            }
        )
        if paid:
            allocations.append(
                {"payment_entry_id": entry_id, "document_id": document_id, "amount": paid}
            )
        if len(documents) >= BATCH:
            flush()
    flush()
    db.session.commit()
    return customers[0]


@contextlib.contextmanager
def loaded(invoices: int, backend: str) -> Iterator[SimpleNamespace]:
    """A database with 1,000 customers and `invoices` invoices, and the admin's client."""
    database = sqlite_database() if backend == "sqlite" else postgres_database()
    with database as url:
        app = make_app(url, FAST_HASH)
        migrate(app)
        with app.app_context():
            admin = create_admin("admin@bench.example", "Bench-passw0rd")
            ensure_default_rate_group("USD")
            bulk_load(CUSTOMERS, db.session.scalar(select(RateGroup.id)))
            busiest = load_money(invoices)
            number = admin.account_number
            if backend == "postgresql":
                db.session.commit()
                with db.engine.connect().execution_options(
                    isolation_level="AUTOCOMMIT"
                ) as connection:
                    connection.execute(text("VACUUM ANALYZE"))
        client = app.test_client()
        login(client, number)
        middle = client.get("/invoices/?per_page=50").get_data(as_text=True)
        cursor = middle.split('rel="next"')[0].rsplit("after=", 1)[1].split('"')[0]
        paths = {
            "baseline GET /login": "/login",
            "invoices, first page": "/invoices/",
            "invoices, next page": f"/invoices/?sort=-date&per_page=50&after={cursor}",
            "invoices, overdue": "/invoices/?status=overdue",
            "invoices, by account": "/invoices/?sort=account",
            "invoices, one account": "/invoices/?account=5000000000",
            "payments, first page": "/payments/",
            "account page (3 lists)": f"/accounts/{busiest}",
            "account ledger by amount": f"/accounts/{busiest}/ledger?sort=amount",
        }
        anonymous = app.test_client()
        calls = {}
        for label, path in paths.items():
            browser = anonymous if path == "/login" else client
            response = browser.get(path)
            if response.status_code != 200:
                raise RuntimeError(f"{path}: {response.status_code}")
            calls[label] = lambda b=browser, p=path: b.get(p)
        try:
            yield SimpleNamespace(calls=calls, app=app, client=client, paths=paths)
        finally:
            with app.app_context():
                db.session.remove()
                db.engine.dispose()


def run(small: int, large: int, backend: str, repeat: int) -> list[dict]:
    """Time every page at both sizes; medians, ratios large/small and page/baseline."""
    results = {}
    for size in (small, large):
        with loaded(size, backend) as setup:
            results[size] = {
                label: summary(durations)
                for label, durations in timed_round_robin(setup.calls, repeat).items()
            }
    rows = []
    print(f"\n{backend}: {small:,} and {large:,} invoices over {CUSTOMERS:,} customers")
    print(f"{'page':28} {'small ms':>9} {'large ms':>9} {'large/small':>11} {'large/login':>11}")
    baseline = results[large]["baseline GET /login"]["median_ms"]
    for label in results[small]:
        a, b = results[small][label]["median_ms"], results[large][label]["median_ms"]
        print(f"{label:28} {a:9.2f} {b:9.2f} {b / a:11.2f} {b / baseline:11.1f}")
        rows.append(
            {"backend": backend, "page": label, "small_ms": a, "large_ms": b, "ratio": b / a}
        )
    return rows


def main(argv: list[str] | None = None) -> list[dict]:
    """Parse the options and run."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", type=int, default=1_000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--json", type=Path)
    options = parser.parse_args(argv)
    rows = run(options.small, options.large, "sqlite", options.repeat)
    if options.postgres:
        rows += run(options.small, options.large, "postgresql", options.repeat)
    write_json(options.json, rows)
    return rows


if __name__ == "__main__":
    main()
