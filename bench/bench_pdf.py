"""One invoice as a PDF (WeasyPrint) next to the same invoice's print view (HTML), same run."""

import argparse
import sys
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flask import render_template  # noqa: E402
from sqlalchemy import insert, select  # noqa: E402

from bench.common import (  # noqa: E402
    FAST_HASH,
    backends,
    make_app,
    migrate,
    summary,
    timed_round_robin,
    write_json,
)
from portal.billing.pdf import document_context, render_pdf  # noqa: E402
from portal.billing.run import run_billing  # noqa: E402
from portal.extensions import db  # noqa: E402
from portal.models import (  # noqa: E402
    Account,
    AccountType,
    BillingSchedule,
    Call,
    CallStatus,
    Document,
    EntryKind,
    LedgerEntry,
    Role,
    Status,
)


def _invoice(number: str, destinations: int, calls: int) -> int:
    """A postpaid customer's invoice of `calls` calls spread over `destinations` prefixes."""
    yesterday = datetime.combine(date.today() - timedelta(days=1), datetime.min.time())
    account = Account(
        account_number=number,
        role=Role.CUSTOMER,
        password_hash="x",
        first_name="Bench",
        last_name=number,
        status=Status.ACTIVE,
        account_type=AccountType.POSTPAID,
        credit_limit=Decimal(1_000_000),
        billing_schedule=BillingSchedule.DAILY,
    )
    db.session.add(account)
    db.session.commit()
    call_rows, entry_rows, owed = [], [], Decimal(0)
    for index in range(calls):
        prefix = str(4400 + index % destinations)
        seconds = 30 + index % 600
        cost = (Decimal(seconds) / 60 * Decimal("0.6")).quantize(Decimal("0.01"))
        ended = yesterday + timedelta(seconds=index)
        call_rows.append(
            {
                "call_id": f"{number}-{index}",
                "account_id": account.id,
                "destination": prefix + "123456",
                "translated_destination": prefix + "123456",
                "status": CallStatus.ENDED,
                "rate_prefix": prefix,
                "rate_destination": f"Destination {prefix}",
                "duration_seconds": seconds,
                "cost": cost,
                "started_at": ended - timedelta(seconds=seconds),
                "ended_at": ended,
            }
        )
        entry_rows.append(
            {
                "account_id": account.id,
                "kind": EntryKind.USAGE,
                "amount": cost,
                "currency": "USD",
                "description": f"Call to {prefix}123456 ({seconds} s)",
                "created_at": ended,
            }
        )
        owed += cost
    db.session.execute(insert(Call), call_rows)
    db.session.execute(insert(LedgerEntry), entry_rows)
    account.balance = owed
    db.session.commit()
    return account.id


def run(url: str, cases: list[tuple[int, int]], repeat: int) -> list[dict]:
    """Time PDF and print view for each (destinations, calls) case on one database."""
    app = make_app(url, FAST_HASH)
    migrate(app)
    results = []
    with app.app_context():
        accounts = [
            _invoice(f"90000{index:05d}", destinations, calls)
            for index, (destinations, calls) in enumerate(cases)
        ]
        run_billing(day=date.today())
        for (destinations, calls), account_id in zip(cases, accounts, strict=True):
            document_id = db.session.scalar(
                select(Document.id).where(Document.account_id == account_id)
            )

            def pdf(document_id=document_id):
                db.session.expire_all()
                return render_pdf(db.session.get(Document, document_id))

            def html(document_id=document_id):
                db.session.expire_all()
                document = db.session.get(Document, document_id)
                with app.test_request_context():
                    return render_template(
                        "billing/document.html",
                        pdf=False,
                        zone="UTC",
                        logo_src=None,
                        **document_context(document),
                    )

            size = len(pdf())
            durations = timed_round_robin({"pdf": pdf, "print view": html}, repeat, warmup=2)
            pdf_ms = summary(durations["pdf"])["median_ms"]
            html_ms = summary(durations["print view"])["median_ms"]
            results.append(
                {
                    "destinations": destinations,
                    "calls": calls,
                    "pdf_median_ms": round(pdf_ms, 1),
                    "print_view_median_ms": round(html_ms, 1),
                    "ratio": round(pdf_ms / html_ms, 1),
                    "pdf_bytes": size,
                }
            )
    return results


def main() -> None:
    """Parse the options, run on each backend, print a table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--postgres", action="store_true")
    parser.add_argument("--json", type=Path)
    options = parser.parse_args()
    cases = [(1, 10), (10, 1000), (50, 10000)]
    everything = {}
    for name, url in backends(options.postgres):
        everything[name] = run(url, cases, options.repeat)
        for row in everything[name]:
            print(
                f"{name:10} {row['destinations']:3} destinations {row['calls']:6} calls: "
                f"PDF {row['pdf_median_ms']:7.1f} ms, print view {row['print_view_median_ms']:6.1f}"
                f" ms ({row['ratio']}x), {row['pdf_bytes']:,} bytes"
            )
    write_json(options.json, everything)


if __name__ == "__main__":
    main()
