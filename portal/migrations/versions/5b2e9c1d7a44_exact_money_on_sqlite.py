"""Exact money on SQLite: amounts stored as integer hundred-thousandths instead of floats.

Revision ID: 5b2e9c1d7a44
Revises: 0a7085c4dc41
Create Date: 2026-11-26 20:10:00

"""

from alembic import op

revision = "5b2e9c1d7a44"
down_revision = "0a7085c4dc41"
branch_labels = None
depends_on = None

# Every NUMERIC(18, 5) money column (portal.models.account.ExactMoney).
MONEY_COLUMNS = {
    "accounts": ["credit_limit", "balance", "low_balance_alert"],
    "calls": ["connect_cost", "cost_per_minute", "reserved", "cost"],
    "documents": ["subtotal", "tax_total", "total", "amount_paid"],
    "taxes": ["rate", "fixed_amount"],
    "document_lines": ["amount"],
    "ledger_entries": ["amount"],
    "rates": ["connect_cost", "cost_per_minute"],
}


def _convert(expression: str) -> None:
    """Rewrite every money column with `expression` (SQLite only; others keep NUMERIC)."""
    if op.get_bind().dialect.name != "sqlite":
        return
    for table, columns in MONEY_COLUMNS.items():
        assignments = ", ".join(f"{column} = {expression.format(column)}" for column in columns)
        op.execute(f"UPDATE {table} SET {assignments}")  # noqa: S608  (fixed names above)


def upgrade():
    # CAST(... AS INTEGER) of a NULL stays NULL; ROUND first so 0.1-style floats land exactly.
    _convert("CAST(ROUND({0} * 100000) AS INTEGER)")


def downgrade():
    _convert("{0} / 100000.0")
