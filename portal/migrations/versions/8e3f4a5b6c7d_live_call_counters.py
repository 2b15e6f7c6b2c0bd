"""Live calls and reserved credit kept on the account row, filled from the live calls.

The calls index by account and status served counting live calls per authorization, which the
counters replace; an index by status and id serves the reaper instead.

Revision ID: 8e3f4a5b6c7d
Revises: 7c1d2e3f4a5b
Create Date: 2026-11-27 01:30:00

"""

import sqlalchemy as sa
from alembic import op

revision = "8e3f4a5b6c7d"
down_revision = "7c1d2e3f4a5b"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("live_calls", sa.Integer(), nullable=False, server_default="0"))
        # NUMERIC(18, 5) as every money column; SQLite stores the integer units in it.
        batch.add_column(
            sa.Column("reserved", sa.Numeric(18, 5), nullable=False, server_default="0")
        )
    # Both money columns hold the same representation (units on SQLite), so the sum is exact.
    with op.batch_alter_table("calls") as batch:
        batch.drop_index("ix_calls_live")
        batch.create_index("ix_calls_status", ["status", "id"])
    op.execute(
        "UPDATE accounts SET"
        " live_calls = (SELECT COUNT(*) FROM calls"
        "  WHERE calls.account_id = accounts.id AND calls.status = 'live'),"
        " reserved = (SELECT COALESCE(SUM(calls.reserved), 0) FROM calls"
        "  WHERE calls.account_id = accounts.id AND calls.status = 'live')"
    )


def downgrade():
    with op.batch_alter_table("calls") as batch:
        batch.drop_index("ix_calls_status")
        batch.create_index("ix_calls_live", ["account_id", "status"])
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("reserved")
        batch.drop_column("live_calls")
