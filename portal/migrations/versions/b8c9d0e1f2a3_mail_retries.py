"""Mail retries: a lease while a message is being sent, backoff between tries, failed for good.

A message is claimed with `claimed_until` instead of being marked sent before delivery, waits
until `next_attempt_at` after a failure, and gets `failed_at` once it is too old to retry.
Existing unsent rows stay pending (due at once), those given up after 20 tries included.

Revision ID: b8c9d0e1f2a3
Revises: a7b8c9d0e1f2
Create Date: 2026-12-02 09:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "b8c9d0e1f2a3"
down_revision = "a7b8c9d0e1f2"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("outbox", schema=None) as batch:
        batch.add_column(sa.Column("next_attempt_at", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("claimed_until", sa.DateTime(), nullable=True))
        batch.add_column(sa.Column("failed_at", sa.DateTime(), nullable=True))
        batch.drop_index("ix_outbox_pending")
        batch.create_index("ix_outbox_due", ["sent_at", "failed_at", "next_attempt_at", "id"])


def downgrade():
    with op.batch_alter_table("outbox", schema=None) as batch:
        batch.drop_index("ix_outbox_due")
        batch.create_index("ix_outbox_pending", ["sent_at", "id"])
        batch.drop_column("failed_at")
        batch.drop_column("claimed_until")
        batch.drop_column("next_attempt_at")
