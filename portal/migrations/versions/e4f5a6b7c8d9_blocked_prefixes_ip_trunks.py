"""Blocked prefixes of accounts and rate groups, IP-authenticated trunks, a call's source IP.

Revision ID: e4f5a6b7c8d9
Revises: d3e4f5a6b7c8
Create Date: 2026-12-02 06:30:00

"""

import sqlalchemy as sa
from alembic import op

revision = "e4f5a6b7c8d9"
down_revision = "d3e4f5a6b7c8"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "account_blocked_prefixes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("prefix", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_account_blocked_prefixes_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_blocked_prefixes")),
        sa.UniqueConstraint("account_id", "prefix", name="uq_account_blocked_prefixes"),
    )
    op.create_table(
        "rate_group_blocked_prefixes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("rate_group_id", sa.Integer(), nullable=False),
        sa.Column("prefix", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["rate_group_id"],
            ["rate_groups.id"],
            name=op.f("fk_rate_group_blocked_prefixes_rate_group_id_rate_groups"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rate_group_blocked_prefixes")),
        sa.UniqueConstraint("rate_group_id", "prefix", name="uq_rate_group_blocked_prefixes"),
    )
    op.create_table(
        "ip_trunks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("network", sa.String(length=43), nullable=False),
        sa.Column("range_start", sa.String(length=32), nullable=False),
        sa.Column("range_end", sa.String(length=32), nullable=False),
        sa.Column("tech_prefix", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_ip_trunks_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ip_trunks")),
        sa.UniqueConstraint("range_start", name=op.f("uq_ip_trunks_range_start")),
    )
    op.create_index("ix_ip_trunks_account_id", "ip_trunks", ["account_id"])
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("source_ip", sa.String(length=45), server_default="", nullable=False)
        )


def downgrade():
    with op.batch_alter_table("calls", schema=None) as batch_op:
        batch_op.drop_column("source_ip")
    # The table's indexes go with it (MariaDB refuses to drop the one its foreign key uses).
    op.drop_table("ip_trunks")
    op.drop_table("rate_group_blocked_prefixes")
    op.drop_table("account_blocked_prefixes")
