"""Migrations: the schema they build matches the models, and data survives the money rewrite."""

from decimal import Decimal

from flask_migrate import downgrade, upgrade
from sqlalchemy import text

from portal import MIGRATIONS_DIR
from portal.billing.service import add_payment
from portal.extensions import db
from portal.models import Account, AccountType, Role
from tests.conftest import make_account, make_test_app


def test_sqlite_money_is_rewritten_exactly_and_back(tmp_path):
    app = make_test_app(f"sqlite:///{tmp_path}/old.sqlite3")
    with app.app_context():
        upgrade(directory=MIGRATIONS_DIR, revision="0a7085c4dc41")
        # A row as the float-backed schema stored it.
        db.session.execute(
            text(
                "INSERT INTO accounts (account_number, role, password_hash, first_name, last_name,"
                " company, country, timezone, status, max_channels, number_translation,"
                " valid_days, billing_schedule, currency, account_type, credit_limit, balance,"
                " low_balance_alert, email_alerts, created_at, updated_at, tenant_path,"
                " session_token, low_balance_alerted) VALUES ('1234567890', 'customer', 'x', '',"
                " '', '', 'US', 'UTC', 'active', 0, '', 30, 'daily', 'USD', 'prepaid', 0,"
                " 12.34567, 0.1, 0, '2026-01-01', '2026-01-01', '', 't', 0)"
            )
        )
        db.session.commit()
        upgrade(directory=MIGRATIONS_DIR)
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
