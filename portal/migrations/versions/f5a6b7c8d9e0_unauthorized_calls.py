"""Calls billed without an authorization: flagged for review.

Revision ID: f5a6b7c8d9e0
Revises: c2d3e4f5a6b7
Create Date: 2026-12-02 11:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "f5a6b7c8d9e0"
down_revision = "c2d3e4f5a6b7"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("calls") as batch_op:
        batch_op.add_column(
            sa.Column("unauthorized", sa.Boolean(), server_default=sa.false(), nullable=False)
        )


def downgrade():
    with op.batch_alter_table("calls") as batch_op:
        batch_op.drop_column("unauthorized")
