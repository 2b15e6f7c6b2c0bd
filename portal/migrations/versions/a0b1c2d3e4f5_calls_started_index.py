"""Calls by start time: the Calls page's window, its pages and its totals from one index.

The Calls page filters calls by a window of start times (the viewer's days), pages them by
(started_at, id) and totals the window's calls, minutes and cost. The index leads with
(started_at, id), so a page is a short walk of it, and carries status, account_id,
duration_seconds and cost, so the totals read the index alone (PostgreSQL: an index-only scan)
instead of every row of the window.

Revision ID: a0b1c2d3e4f5
Revises: f9a0b1c2d3e4
Create Date: 2026-12-02 02:40:00

"""

from alembic import op

revision = "a0b1c2d3e4f5"
down_revision = "f9a0b1c2d3e4"
branch_labels = None
depends_on = None

COLUMNS = ["started_at", "id", "status", "account_id", "duration_seconds", "cost"]


def upgrade():
    op.create_index("ix_calls_started", "calls", COLUMNS)


def downgrade():
    op.drop_index("ix_calls_started", table_name="calls")
