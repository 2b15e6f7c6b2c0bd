"""Call rollups: the dashboards' daily figures, kept at hang-up.

`call_rollups` has one row per (tenant, UTC day, currency, destination): the ended calls, the
answered ones, their seconds and the revenue the tenant received for them. Tenant 0 is the
operator; a reseller's rows count its whole subtree. The rows of calls that ended before this
migration are filled by `flask --app app reports rebuild-rollups`.

Revision ID: f9a0b1c2d3e4
Revises: d7e8f9a0b1c2
Create Date: 2026-12-02 02:30:00

"""

import sqlalchemy as sa
from alembic import op

revision = "f9a0b1c2d3e4"
down_revision = "d7e8f9a0b1c2"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "call_rollups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tenant_key", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("rate_prefix", sa.String(length=32), nullable=False),
        sa.Column("rate_destination", sa.String(length=100), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False),
        sa.Column("answered", sa.Integer(), nullable=False),
        sa.Column("seconds", sa.BigInteger(), nullable=False),
        sa.Column("revenue", sa.Numeric(precision=18, scale=5), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "tenant_key",
            "day",
            "currency",
            "rate_prefix",
            "rate_destination",
            name="uq_call_rollups_key",
        ),
    )


def downgrade():
    op.drop_table("call_rollups")
