"""Migrations: the schema they build matches the models, and data survives the money rewrite."""

from datetime import date
from decimal import Decimal

from flask_migrate import downgrade, upgrade
from sqlalchemy import func, inspect, text

from portal import MIGRATIONS_DIR, mail
from portal.billing.run import bill_account
from portal.billing.service import add_payment, unapplied_payments
from portal.extensions import db
from portal.models import (
    Account,
    AccountType,
    Allocation,
    Document,
    DocumentStatus,
    EntryKind,
    LedgerEntry,
    OutboxMessage,
    Role,
    Setting,
)
from tests.conftest import make_account, make_test_app, throwaway_database


def _insert_account(
    balance: str,
    low_balance_alert: str,
    account_id: int = 7,
    currency: str = "USD",
    account_type: str = "prepaid",
) -> None:
    """An account (7 unless told), inserted as an older schema (no model of today) stores it."""
    db.session.execute(
        text(
            "INSERT INTO accounts (id, account_number, role, password_hash, first_name,"
            " last_name, company, country, timezone, status, max_channels, number_translation,"
            " valid_days, billing_schedule, currency, account_type, credit_limit, balance,"
            " low_balance_alert, email_alerts, created_at, updated_at, tenant_path,"
            " session_token, low_balance_alerted) VALUES (:id, :number, 'customer', 'x', '',"
            " '', '', 'US', 'UTC', 'active', 0, '', 30, 'daily', :currency, :type, 0,"
            " :balance, :alert, FALSE, '2026-01-01', '2026-01-01', '', :token, FALSE)"
        ),
        {  # text: NUMERIC affinity converts
            "id": account_id,
            "number": f"12345678{account_id:02d}",
            "currency": currency,
            "type": account_type,
            "balance": balance,
            "alert": low_balance_alert,
            "token": f"t{account_id}",
        },
    )


def test_sqlite_money_is_rewritten_exactly_and_back(tmp_path):
    app = make_test_app(f"sqlite:///{tmp_path}/old.sqlite3")
    with app.app_context():
        upgrade(directory=MIGRATIONS_DIR, revision="0a7085c4dc41")
        _insert_account("12.34567", "0.1")  # as the float-backed schema stored it
        db.session.commit()
        # The conversion alone (the next revision rounds the balance to the minor unit).
        upgrade(directory=MIGRATIONS_DIR, revision="8e3f4a5b6c7d")
        account = db.session.scalar(db.select(Account))
        assert account.balance == Decimal("12.34567")
        assert account.low_balance_alert == Decimal("0.1")
        stored = db.session.execute(text("SELECT balance FROM accounts")).scalar()
        assert stored == 1234567  # integer hundred-thousandths, no float left
        db.session.remove()
        downgrade(directory=MIGRATIONS_DIR, revision="0a7085c4dc41")
        assert db.session.execute(text("SELECT balance FROM accounts")).scalar() == 12.34567
        db.engine.dispose()


def test_large_balances_stay_exact(app, admin):
    # Bahraini dinars have 3 decimals; 13 integer digits is the most NUMERIC(18, 5) holds.
    account = make_account(
        Role.CUSTOMER, "1000000009", account_type=AccountType.PREPAID, currency="BHD"
    )
    for amount in ("1234567890123.456", "0.001", "0.001"):
        add_payment(admin, account, amount)
    db.session.refresh(account)
    assert account.balance == Decimal("1234567890123.458")  # stored as a float: .45801
    ledger = db.session.execute(
        text("SELECT COUNT(*) FROM ledger_entries WHERE account_id = :id"), {"id": account.id}
    ).scalar()
    assert ledger == 3


def test_live_call_counters_are_filled_from_the_live_calls(tmp_path):
    app = make_test_app(f"sqlite:///{tmp_path}/calls.sqlite3")
    with app.app_context():
        upgrade(directory=MIGRATIONS_DIR, revision="7c1d2e3f4a5b")
        _insert_account("1000000", "0")  # already integer units at this revision
        # Two live calls holding 1.5 and 0.25 (integer units), one ended call that holds nothing.
        for call_id, status, reserved in (
            ("a", "live", 150000),
            ("b", "live", 25000),
            ("c", "ended", 0),
        ):
            db.session.execute(
                text(
                    "INSERT INTO calls (call_id, account_id, sip_username, destination,"
                    " translated_destination, status, cause, rate_destination, connect_cost,"
                    " cost_per_minute, initial_increment, increment, max_duration_seconds,"
                    " reserved, started_at, hangup_cause) VALUES (:call_id, 7, '', '44', '44',"
                    " :status, '', '', 0, 0, 0, 1, 60, :reserved, '2026-01-01', '')"
                ),
                {"call_id": call_id, "status": status, "reserved": reserved},
            )
        db.session.commit()
        upgrade(directory=MIGRATIONS_DIR)
        account = db.session.get(Account, 7)
        assert (account.live_calls, account.reserved) == (2, Decimal("1.75"))
        db.session.remove()
        downgrade(directory=MIGRATIONS_DIR, revision="7c1d2e3f4a5b")
        columns = [row[1] for row in db.session.execute(text("PRAGMA table_info(accounts)"))]
        assert "live_calls" not in columns and "reserved" not in columns
        db.engine.dispose()


def _insert_entry(
    account_id: int, kind: str, units: int, document_id=None, currency: str = "JPY"
) -> None:
    """A ledger entry as the schema before 9a1b2c3d4e5f stored it (integer units on SQLite)."""
    db.session.execute(
        text(
            "INSERT INTO ledger_entries (account_id, kind, amount, currency, description,"
            " created_at, document_id) VALUES (:id, :kind, :units, :currency, '', '2026-01-01',"
            " :document_id)"
        ),
        {
            "id": account_id,
            "kind": kind,
            "units": units,
            "document_id": document_id,
            "currency": currency,
        },
    )


def test_legacy_fractions_are_written_off_and_rounded_on_the_next_invoice(tmp_path):
    app = make_test_app(f"sqlite:///{tmp_path}/fractions.sqlite3")
    with app.app_context():
        upgrade(directory=MIGRATIONS_DIR, revision="8e3f4a5b6c7d")
        db.session.execute(text("INSERT INTO settings VALUES ('tax_decimal_places', '3')"))
        _insert_account("1695625", "0")  # prepaid USD 16.95625 (units), from 5-decimal calls
        # Postpaid JPY: invoiced 13.5 (13 paid, 0.5 due forever), then an unbilled 11.5 call.
        _insert_account("1200000", "0", account_id=8, currency="JPY", account_type="postpaid")
        db.session.execute(
            text(
                "INSERT INTO documents (id, kind, issuer_key, number, account_id, issued_at,"
                " billing_date, currency, subtotal, tax_total, total, amount_paid, status)"
                " VALUES (1, 'invoice', 0, 1, 8, '2026-01-01', '2025-12-31', 'JPY', 1350000, 0,"
                " 1350000, 1300000, 'partial')"
            )
        )
        db.session.execute(text("INSERT INTO document_sequences VALUES (0, 'invoice', 2)"))
        _insert_entry(8, "usage", 1350000, document_id=1)
        _insert_entry(8, "payment", -1300000)
        _insert_entry(8, "usage", 1150000)
        db.session.commit()
        upgrade(directory=MIGRATIONS_DIR)
        assert db.session.execute(text("SELECT COUNT(*) FROM settings")).scalar() == 0
        prepaid, postpaid = db.session.get(Account, 7), db.session.get(Account, 8)
        assert prepaid.balance == Decimal("16.96")  # the fraction in the customer's favour
        assert postpaid.balance == Decimal("11.5")  # 0.5 owed written off; 11.5 still unbilled
        roundings = db.session.scalars(
            db.select(LedgerEntry.amount)
            .where(LedgerEntry.kind == EntryKind.ROUNDING)
            .order_by(LedgerEntry.account_id)
        ).all()
        assert roundings == [Decimal("0.00375"), Decimal("-0.5")]
        assert db.session.get(Document, 1).status == DocumentStatus.PAID
        # The next invoice rounds the unbilled call half-up and is payable exactly.
        invoice = bill_account(postpaid, date(2026, 1, 2)).document
        assert invoice.total == Decimal(12)
        add_payment(None, postpaid, "12")
        db.session.refresh(invoice)
        assert invoice.status == DocumentStatus.PAID and postpaid.balance == 0
        ledger = db.select(func.sum(LedgerEntry.amount)).where(LedgerEntry.account_id == 8)
        assert db.session.scalar(ledger) == 0  # the balance is still its ledger's sum
        db.session.remove()
        downgrade(directory=MIGRATIONS_DIR, revision="8e3f4a5b6c7d")
        kinds = db.session.execute(text("SELECT DISTINCT kind FROM ledger_entries")).scalars()
        assert "rounding" not in set(kinds)
        db.engine.dispose()


def test_mail_given_up_after_20_tries_is_pending_again_and_back(tmp_path):
    app = make_test_app(f"sqlite:///{tmp_path}/mail.sqlite3")
    with app.app_context():
        upgrade(directory=MIGRATIONS_DIR, revision="9a1b2c3d4e5f")
        for attempts, sent_at in ((20, None), (1, "2026-01-02")):  # given up; delivered
            db.session.execute(
                text(
                    "INSERT INTO outbox (kind, recipient, subject, body, created_at, sent_at,"
                    " attempts, last_error) VALUES ('receipt', 'a@example.com', 'S', 'B',"
                    " '2026-01-01', :sent_at, :attempts, 'SMTPServerDisconnected')"
                ),
                {"attempts": attempts, "sent_at": sent_at},
            )
        db.session.commit()
        upgrade(directory=MIGRATIONS_DIR)
        assert mail.send_pending() == (0, 1, 0)  # no server configured: waiting, not lost
        pending = db.session.scalar(db.select(OutboxMessage).where(OutboxMessage.attempts == 20))
        assert (pending.next_attempt_at, pending.claimed_until, pending.failed_at) == (None,) * 3
        db.session.remove()
        downgrade(directory=MIGRATIONS_DIR, revision="9a1b2c3d4e5f")
        columns = [row[1] for row in db.session.execute(text("PRAGMA table_info(outbox)"))]
        assert "failed_at" not in columns and "next_attempt_at" not in columns
        assert db.session.execute(text("SELECT COUNT(*) FROM outbox")).scalar() == 2
        db.engine.dispose()


def test_amounts_paid_become_allocations_oldest_first_and_back(tmp_path):
    with throwaway_database(tmp_path) as url:  # PostgreSQL too when DATABASE_URL names it
        _allocations_migrated_and_back(make_test_app(url))


def _allocations_migrated_and_back(app) -> None:
    """Old amounts paid -> allocations -> the same amounts paid and statuses again."""
    with app.app_context():
        upgrade(directory=MIGRATIONS_DIR, revision="b8c9d0e1f2a3")
        # Stored money: integer hundred-thousandths on SQLite, NUMERIC elsewhere.
        sqlite = db.engine.dialect.name == "sqlite"

        def stored(units: int):
            """`units` hundred-thousandths as this database stores money."""
            return units if sqlite else Decimal(units).scaleb(-5)

        _insert_account("0", "0")  # prepaid, with a receipt
        _insert_account("0", "0", account_id=8, account_type="postpaid")
        # (id, kind, number, account, billing date, total, amount paid, status) in units.
        documents = [
            (1, "receipt", 1, 7, None, 1000000, 1000000, "paid"),
            (2, "invoice", 1, 8, "2026-01-05", 1210000, 1210000, "paid"),
            (3, "invoice", 2, 8, "2026-02-05", 1210000, 790000, "partial"),
            (4, "invoice", 3, 8, "2026-03-05", -500000, 0, "paid"),  # a credit invoice
            (5, "invoice", 4, 8, "2026-04-05", 1210000, 0, "unpaid"),
        ]
        for number, kind, n, account_id, day, total, paid, status in documents:
            db.session.execute(
                text(
                    "INSERT INTO documents (id, kind, issuer_key, number, account_id, issued_at,"
                    " billing_date, currency, subtotal, tax_total, total, amount_paid, status)"
                    " VALUES (:id, :kind, 0, :n, :account, '2026-01-01', :day, 'USD', :total, 0,"
                    " :total, :paid, :status)"
                ),
                {
                    "id": number,
                    "kind": kind,
                    "n": n,
                    "account": account_id,
                    "day": day,
                    "total": stored(total),
                    "paid": stored(paid),
                    "status": status,
                },
            )
        _insert_entry(7, "payment", stored(1000000), document_id=1, currency="USD")
        _insert_entry(8, "payment", stored(-500000), currency="USD")  # 5 + 15: 12.10 + 7.90
        _insert_entry(8, "payment", stored(-1500000), currency="USD")
        db.session.commit()
        upgrade(directory=MIGRATIONS_DIR)
        pairs = db.session.execute(
            db.select(
                Allocation.payment_entry_id, Allocation.document_id, Allocation.amount
            ).order_by(Allocation.id)
        ).all()
        assert pairs == [(2, 2, Decimal(5)), (3, 2, Decimal("7.10")), (3, 3, Decimal("7.90"))]
        found = db.session.scalars(db.select(Document).order_by(Document.id)).all()
        assert [(d.status.value, d.amount_paid) for d in found] == [
            (status, Decimal(paid).scaleb(-5)) for *_, paid, status in documents
        ]
        assert unapplied_payments(db.session.get(Account, 8)) == 0
        db.session.remove()
        downgrade(directory=MIGRATIONS_DIR, revision="b8c9d0e1f2a3")
        back = db.session.execute(text("SELECT amount_paid, status FROM documents ORDER BY id"))
        assert back.all() == [(stored(paid), status) for *_, paid, status in documents]
        assert "allocations" not in inspect(db.engine).get_table_names()
        db.session.remove()
        db.engine.dispose()


def test_the_migrated_schema_matches_the_models(app):
    # A model change without its migration (or a migration that differs) shows up here.
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from portal.models.account import compare_type

    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": compare_type})
        assert compare_metadata(context, db.metadata) == []


def test_text_keys_differ_by_case_accents_and_trailing_spaces(app):
    # As PostgreSQL and SQLite compare them: MariaDB's default collation would take these
    # for one key (the migrations make its tables utf8mb4_nopad_bin).
    keys = ["alice@example.com", "Alice@example.com", "alicé@example.com", "alice@example.com "]
    db.session.add_all(Setting(key=key, value=str(n)) for n, key in enumerate(keys))
    db.session.commit()
    found = db.session.scalars(
        db.select(Setting.value).where(Setting.key == "Alice@example.com")
    ).all()
    assert found == ["1"]
    assert db.session.scalar(db.select(func.count()).select_from(Setting)) == len(keys)


def test_times_keep_their_microseconds(app, admin):
    # DATETIME(6) on MariaDB: the order of events within a second is kept.
    admin.created_at = admin.created_at.replace(microsecond=123456)
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(Account, admin.id).created_at.microsecond == 123456
