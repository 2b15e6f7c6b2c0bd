"""Ledger indexes that hold only what is looked for: unbilled entries, and payments' receipts.

`ix_ledger_entries_unbilled` becomes (account_id, created_at) WHERE document_id IS NULL: a
billing run that marks an entry billed takes it out of this index instead of adding to it,
and the index stays the size of what is unbilled. A new partial index on document_id for
payment entries finds a receipt's payment without scanning the ledger.

Revision ID: e1f2a3b4c5d6
Revises: d0e1f2a3b4c5
Create Date: 2026-12-01 07:50:00

"""

import sqlalchemy as sa
from alembic import op

revision = "e1f2a3b4c5d6"
down_revision = "d0e1f2a3b4c5"
branch_labels = None
depends_on = None

UNBILLED = sa.text("document_id IS NULL")
PAYMENT = sa.text("kind = 'payment'")


def upgrade():
    with op.batch_alter_table("ledger_entries", schema=None) as batch:
        batch.drop_index("ix_ledger_entries_unbilled")
        batch.create_index(
            "ix_ledger_entries_unbilled",
            ["account_id", "created_at"],
            postgresql_where=UNBILLED,
            sqlite_where=UNBILLED,
        )
        batch.create_index(
            "ix_ledger_entries_payment_document",
            ["document_id"],
            postgresql_where=PAYMENT,
            sqlite_where=PAYMENT,
        )


def downgrade():
    if op.get_bind().dialect.name == "mysql":
        # MariaDB's foreign key on document_id needs an index that starts with it: the one it
        # made itself before this revision (and dropped for the payments' index) comes back.
        op.create_index(
            "fk_ledger_entries_document_id_documents", "ledger_entries", ["document_id"]
        )
    with op.batch_alter_table("ledger_entries", schema=None) as batch:
        batch.drop_index("ix_ledger_entries_payment_document")
        batch.drop_index("ix_ledger_entries_unbilled")
        batch.create_index("ix_ledger_entries_unbilled", ["account_id", "document_id"])
