"""Benchmark mass create and CSV import of 10,000 customers, against single creates, per backend."""

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import delete, func, select  # noqa: E402

from bench.common import (  # noqa: E402
    ADMIN_PASSWORD,
    make_app,
    migrate,
    postgres_database,
    sqlite_database,
    write_json,
)
from portal.accounts.bulk import export_accounts, import_accounts, mass_create  # noqa: E402
from portal.accounts.generated import new_password  # noqa: E402
from portal.accounts.service import create_account, create_admin, new_account_number  # noqa: E402
from portal.extensions import db  # noqa: E402
from portal.models import (  # noqa: E402
    Account,
    AccountSearchToken,
    AuditEntry,
    RateGroup,
    Role,
    SipDevice,
    account_taxes,
)
from portal.passwords import FAST_HASH_METHOD  # noqa: E402
from portal.rules.identifiers import generate_pin  # noqa: E402
from portal.tariffs.service import ensure_default_rate_group  # noqa: E402

SHARED = {
    "account_type": "postpaid",
    "currency": "USD",
    "billing_schedule": "monthly",
    "billing_day": 1,
    "credit_limit": "100",
    "valid_days": 365,
    "create_sip_device": True,
}


def _wipe_customers() -> None:
    """Remove every customer and what hangs off it (between the timed parts)."""
    for table in (AuditEntry, SipDevice, AccountSearchToken, account_taxes):
        db.session.execute(delete(table))
    db.session.execute(delete(Account).where(Account.role == Role.CUSTOMER))
    db.session.commit()


def _customers() -> int:
    """How many customers exist."""
    query = select(func.count()).select_from(Account).where(Account.role == Role.CUSTOMER)
    return db.session.scalar(query)


def run(backend: str, url: str, count: int, sample: int) -> dict:
    """Time the single-create baseline, mass create and the CSV import on one database."""
    # The single creates hash with the same fast method, so the ratio shows the bulk path's
    # own gain, not scrypt's cost (with scrypt the baseline would be ~100 ms slower each).
    app = make_app(url, FAST_HASH_METHOD)
    migrate(app)
    with app.app_context():
        admin = create_admin("admin@bench.example", ADMIN_PASSWORD)
        ensure_default_rate_group("USD")
        shared = {**SHARED, "rate_group_id": str(db.session.scalar(select(RateGroup.id)))}
        base = {"country": "US", "timezone": "UTC", "status": "active", "max_channels": 0}

        start = time.perf_counter()
        for _ in range(sample):
            create_account(
                admin,
                Role.CUSTOMER,
                {
                    **base,
                    **shared,
                    "account_number": new_account_number(),
                    "password": new_password(),
                    "pin": generate_pin(6),
                },
            )
        single_s = (time.perf_counter() - start) / sample
        _wipe_customers()

        start = time.perf_counter()
        result = mass_create(admin, {**shared, "count": count})
        mass_s = time.perf_counter() - start
        assert _customers() == count == len({c.account_number for c in result.credentials})

        start = time.perf_counter()
        exported = "".join(export_accounts(admin))
        export_s = time.perf_counter() - start
        _wipe_customers()

        start = time.perf_counter()
        imported = import_accounts(admin, exported)
        import_s = time.perf_counter() - start
        assert _customers() == count == len(imported.account_ids)
        db.engine.dispose()
    return {
        "backend": backend,
        "count": count,
        "single_sample": sample,
        "single_ms": single_s * 1000,
        "mass_s": mass_s,
        "mass_per_s": count / mass_s,
        "single_extrapolated_s": single_s * count,
        "ratio": single_s * count / mass_s,
        "export_s": export_s,
        "export_mb": len(exported.encode()) / 2**20,
        "import_s": import_s,
        "import_per_s": count / import_s,
    }


def report(result: dict) -> None:
    """Print one backend's figures."""
    print(f"{result['backend']}: {result['count']:,} customers")
    print(
        f"  baseline create_account x{result['single_sample']}: {result['single_ms']:.1f} ms each"
        f" -> {result['single_extrapolated_s']:.0f} s extrapolated"
    )
    print(
        f"  mass_create: {result['mass_s']:.2f} s ({result['mass_per_s']:,.0f} accounts/s), "
        f"{result['ratio']:.0f}x faster than the baseline"
    )
    print(f"  export_accounts: {result['export_s']:.2f} s ({result['export_mb']:.1f} MB)")
    print(
        f"  import_accounts of that file: {result['import_s']:.2f} s "
        f"({result['import_per_s']:,.0f} rows/s)"
    )


def main(argv: list[str] | None = None) -> list[dict]:
    """Run on SQLite (and PostgreSQL with --postgres) and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-n", "--count", type=int, default=10_000, help="accounts to create")
    parser.add_argument("--sample", type=int, default=200, help="single creates for the baseline")
    parser.add_argument("--postgres", action="store_true", help="also on PostgreSQL")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    results = []
    with sqlite_database() as url:
        results.append(run("SQLite", url, args.count, args.sample))
        report(results[-1])
    if args.postgres:
        with postgres_database() as url:
            results.append(run("PostgreSQL", url, args.count, args.sample))
            report(results[-1])
    write_json(args.json, results)
    return results


if __name__ == "__main__":
    main()
