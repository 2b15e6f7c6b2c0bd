"""Migrations: the schema they build matches the models, and data survives the money rewrite."""

from decimal import Decimal

from flask_migrate import downgrade, upgrade
from sqlalchemy import text

from portal import MIGRATIONS_DIR
from portal.billing.service import add_payment
from portal.extensions import db
from portal.models import Account, AccountType, Role
from tests.conftest import make_account, make_test_app


def _insert_account(balance: str, low_balance_alert: str) -> None:
    """Account 7, inserted as an older schema (no model of today) stores it."""
    db.session.execute(
        text(
            "INSERT INTO accounts (id, account_number, role, password_hash, first_name,"
            " last_name, company, country, timezone, status, max_channels, number_translation,"
            " valid_days, billing_schedule, currency, account_type, credit_limit, balance,"
            " low_balance_alert, email_alerts, created_at, updated_at, tenant_path,"
            " session_token, low_balance_alerted) VALUES (7, '1234567890', 'customer', 'x', '',"
            " '', '', 'US', 'UTC', 'active', 0, '', 30, 'daily', 'USD', 'prepaid', 0,"
            " :balance, :alert, 0, '2026-01-01', '2026-01-01', '', 't', 0)"
        ),
        {"balance": balance, "alert": low_balance_alert},  # text: NUMERIC affinity converts
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


def test_the_migrated_schema_matches_the_models(app):
    # A model change without its migration (or a migration that differs) shows up here.
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from portal.models.account import compare_type

    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": compare_type})
        assert compare_metadata(context, db.metadata) == []
