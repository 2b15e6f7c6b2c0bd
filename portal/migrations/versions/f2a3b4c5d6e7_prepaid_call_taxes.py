"""Prepaid call taxes: a tax entry of a prepaid call names its statement line.

`ledger_entries.tax_line` (NULL for every existing entry) holds the tax's name and rate, e.g.
"VAT (21%)", on the TAX entries a prepaid call's hang-up posts; the periodic statement sums
them by it, one line per tax.

Revision ID: f2a3b4c5d6e7
Revises: e1f2a3b4c5d6
Create Date: 2026-12-04 07:00:00

"""

import sqlalchemy as sa
from alembic import op

revision = "f2a3b4c5d6e7"
down_revision = "e1f2a3b4c5d6"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("ledger_entries", schema=None) as batch:
        batch.add_column(sa.Column("tax_line", sa.String(length=120), nullable=True))


def downgrade():
    with op.batch_alter_table("ledger_entries", schema=None) as batch:
        batch.drop_column("tax_line")
