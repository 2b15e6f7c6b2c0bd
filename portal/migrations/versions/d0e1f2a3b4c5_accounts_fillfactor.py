"""PostgreSQL: account rows get room on their page for updates in place (fillfactor 80).

Every call authorization, hang-up, payment and invoice updates an account's balance or
counters, none of them indexed: with free space on the page PostgreSQL writes the new row
version there without touching the account's seven indexes (a HOT update). A full page
forces a new index entry in each of them for every update. Pages written from now on keep
20 % free; `VACUUM FULL accounts` applies it to existing ones. SQLite has no such setting.

Revision ID: d0e1f2a3b4c5
Revises: c9d0e1f2a3b4
Create Date: 2026-12-01 07:40:00

"""

from alembic import op

revision = "d0e1f2a3b4c5"
down_revision = "c9d0e1f2a3b4"
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE accounts SET (fillfactor = 80)")


def downgrade():
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE accounts RESET (fillfactor)")
