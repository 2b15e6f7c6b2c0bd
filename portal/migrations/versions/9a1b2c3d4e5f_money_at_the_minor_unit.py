"""Money at the currency's minor unit: no tax rounding setting; legacy fractions written off.

Taxes now round at the currency's own minor unit, so the global "tax_decimal_places" setting
goes. Before this release a call's cost was posted in 5 decimals, so existing balances may hold
fractions of a cent that no payment can settle. Each account gets at most one "rounding" ledger
entry, in the customer's favour, for the fraction of its balance that is already invoiced or
will never be (prepaid funds rounded up, postpaid amounts owed rounded down); entries not yet
invoiced are rounded by the next billing run, on the invoice that lists them. Open invoices
with less than one minor unit left to pay are marked paid.

Revision ID: 9a1b2c3d4e5f
Revises: 8e3f4a5b6c7d
Create Date: 2026-12-01 00:50:00

"""

from datetime import UTC, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

import sqlalchemy as sa
from alembic import op

from portal.rules.currency import quantum

revision = "9a1b2c3d4e5f"
down_revision = "8e3f4a5b6c7d"
branch_labels = None
depends_on = None

DESCRIPTION = "Rounding to the currency's minor unit (amounts before this release)"


def _units(bind) -> bool:
    """SQLite keeps money as integer hundred-thousandths (see 5b2e9c1d7a44)."""
    return bind.dialect.name == "sqlite"


def _load(raw, units: bool) -> Decimal:
    """A stored money value as a Decimal."""
    return Decimal(int(raw)).scaleb(-5) if units else Decimal(raw)


def _dump(value: Decimal, units: bool):
    """A Decimal as the money column stores it."""
    return int(value.scaleb(5)) if units else value


def upgrade():
    bind = op.get_bind()
    units = _units(bind)
    # A Core statement: "key" is a reserved word on MariaDB, quoted as each dialect quotes it.
    settings = sa.table("settings", sa.column("key", sa.String))
    op.execute(settings.delete().where(settings.c.key == "tax_decimal_places"))
    unbilled = dict(
        bind.execute(
            sa.text(
                "SELECT account_id, SUM(amount) FROM ledger_entries"
                " WHERE document_id IS NULL AND kind IN ('charge', 'usage', 'adjustment')"
                " GROUP BY account_id"
            )
        ).all()
    )
    now = datetime.now(UTC).replace(tzinfo=None)
    accounts = bind.execute(
        sa.text("SELECT id, currency, account_type, balance FROM accounts")
    ).all()
    for account_id, currency, account_type, raw_balance in accounts:
        balance = _load(raw_balance, units)
        postpaid = account_type == "postpaid"
        # A postpaid account's unbilled entries are rounded on the invoice that lists them.
        pending = _load(unbilled[account_id], units) if postpaid and account_id in unbilled else 0
        settled = balance - pending
        # Prepaid balance = funds (round up); postpaid balance = owed (round down).
        rounding = ROUND_FLOOR if postpaid else ROUND_CEILING
        delta = settled.quantize(quantum(currency), rounding) - settled
        if not delta:
            continue
        bind.execute(
            sa.text("UPDATE accounts SET balance = balance + :delta WHERE id = :id"),
            {"delta": _dump(delta, units), "id": account_id},
        )
        bind.execute(
            sa.text(
                "INSERT INTO ledger_entries (account_id, kind, amount, currency, description,"
                " created_at) VALUES (:id, 'rounding', :delta, :currency, :description, :now)"
            ),
            {
                "id": account_id,
                "delta": _dump(delta, units),
                "currency": currency,
                "description": DESCRIPTION,
                "now": now,
            },
        )
    invoices = bind.execute(
        sa.text(
            "SELECT id, currency, total, amount_paid FROM documents"
            " WHERE kind = 'invoice' AND status != 'paid'"
        )
    ).all()
    for document_id, currency, total, paid in invoices:
        if _load(total, units) - _load(paid, units) < quantum(currency):
            bind.execute(
                sa.text("UPDATE documents SET status = 'paid' WHERE id = :id"), {"id": document_id}
            )


def downgrade():
    # The rounding entries stay (the balances include them), as the adjustments they are.
    op.execute("UPDATE ledger_entries SET kind = 'adjustment' WHERE kind = 'rounding'")
