"""Call charges: what each reseller up a customer's chain pays for the call.

`call_charges` has one row per reseller level of a call made by a reseller's customer (level 1
is the customer's own reseller, level 2 its parent, ...), with the rate that level was
authorized at, its reservation while the call is live and its cost once the call ended. The
call row itself keeps the customer's rate and cost (level 0).

Revision ID: d7e8f9a0b1c2
Revises: c6d7e8f9a0b1
Create Date: 2026-12-01 23:10:00

"""

import sqlalchemy as sa
from alembic import op

revision = "d7e8f9a0b1c2"
down_revision = "c6d7e8f9a0b1"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "call_charges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("rate_prefix", sa.String(length=32), nullable=False),
        sa.Column("connect_cost", sa.Numeric(precision=18, scale=5), nullable=False),
        sa.Column("cost_per_minute", sa.Numeric(precision=18, scale=5), nullable=False),
        sa.Column("initial_increment", sa.Integer(), nullable=False),
        sa.Column("increment", sa.Integer(), nullable=False),
        sa.Column("reserved", sa.Numeric(precision=18, scale=5), nullable=False),
        sa.Column("cost", sa.Numeric(precision=18, scale=5), nullable=True),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"]),
        sa.ForeignKeyConstraint(["call_id"], ["calls.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("call_id", "level", name="uq_call_charges_call_level"),
    )
    with op.batch_alter_table("call_charges", schema=None) as batch:
        batch.create_index(batch.f("ix_call_charges_account_id"), ["account_id"], unique=False)


def downgrade():
    op.drop_table("call_charges")
