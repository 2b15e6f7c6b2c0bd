"""Mail of a document written when sent: the outbox row names its document.

A billing run queues each invoice mail as a row with its document and no text; the sender
writes subject and body from the invoice when it sends (and keeps them on the row).

Revision ID: c9d0e1f2a3b4
Revises: 5e7f1a2b9c0d
Create Date: 2026-12-01 07:30:00

"""

import sqlalchemy as sa
from alembic import op

revision = "c9d0e1f2a3b4"
down_revision = "5e7f1a2b9c0d"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("outbox", schema=None) as batch:
        batch.add_column(sa.Column("document_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            "fk_outbox_document_id_documents", "documents", ["document_id"], ["id"]
        )


def downgrade():
    with op.batch_alter_table("outbox", schema=None) as batch:
        batch.drop_constraint("fk_outbox_document_id_documents", type_="foreignkey")
        batch.drop_column("document_id")
