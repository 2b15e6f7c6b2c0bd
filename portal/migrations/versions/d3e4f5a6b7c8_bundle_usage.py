"""Free-minute bundles: each period's draw, and what a call drew.

`bundle_usage` has one row per (subscription, period start): the free seconds used by ended
calls and those held by live ones. A call drawing on a bundle keeps its period row, the
seconds it holds while live, and, once ended, the seconds it got free.

Revision ID: d3e4f5a6b7c8
Revises: b1c2d3e4f5a6
Create Date: 2026-12-02 06:30:00

"""

import sqlalchemy as sa
from alembic import op

revision = "d3e4f5a6b7c8"
down_revision = "b1c2d3e4f5a6"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "bundle_usage",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("subscription_id", sa.Integer(), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("used_seconds", sa.Integer(), server_default="0", nullable=False),
        sa.Column("reserved_seconds", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(["subscription_id"], ["subscriptions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("subscription_id", "period_start", name="uq_bundle_usage_period"),
    )
    with op.batch_alter_table("calls", schema=None) as batch:
        batch.add_column(sa.Column("bundle_usage_id", sa.Integer(), nullable=True))
        batch.add_column(
            sa.Column("bundle_reserved_seconds", sa.Integer(), server_default="0", nullable=False)
        )
        batch.add_column(
            sa.Column("free_seconds", sa.Integer(), server_default="0", nullable=False)
        )
        batch.create_foreign_key(
            "fk_calls_bundle_usage_id_bundle_usage", "bundle_usage", ["bundle_usage_id"], ["id"]
        )


def downgrade():
    with op.batch_alter_table("calls", schema=None) as batch:
        batch.drop_constraint("fk_calls_bundle_usage_id_bundle_usage", type_="foreignkey")
        batch.drop_column("free_seconds")
        batch.drop_column("bundle_reserved_seconds")
        batch.drop_column("bundle_usage_id")
    op.drop_table("bundle_usage")
