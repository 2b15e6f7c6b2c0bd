"""Login sessions and shared failed-login counters; accounts lose session_token.

Every login gets a row of its own (the cookie carries its id and a token whose sha256 the row
keeps), so a logout, a password change or reset, a deactivation and a deletion end sessions on
the server. Sessions made before this upgrade carried the account's session_token: they end at
the upgrade, and everyone logs in once more.

Failed logins (and failed current-password checks) are counted in the database, so every
worker and server sees the same counts without Redis.

Downgrade: the column comes back with a new random token per account (every session ends).

Revision ID: a3b4c5d6e7f8
Revises: f2a3b4c5d6e7
Create Date: 2026-12-01 07:00:00

"""

import secrets

import sqlalchemy as sa
from alembic import op

revision = "a3b4c5d6e7f8"
down_revision = "f2a3b4c5d6e7"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "login_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(), nullable=False),
        sa.Column("user_agent", sa.String(length=200), nullable=False),
        sa.Column("remember", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_login_sessions_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_sessions")),
    )
    op.create_index(
        op.f("ix_login_sessions_account_id"), "login_sessions", ["account_id"], unique=False
    )
    op.create_table(
        "login_failure_counters",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("window_start", sa.DateTime(), nullable=False),
        sa.Column("window_end", sa.DateTime(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_login_failure_counters")),
    )
    op.create_index(
        op.f("ix_login_failure_counters_window_end"),
        "login_failure_counters",
        ["window_end"],
        unique=False,
    )
    with op.batch_alter_table("accounts", schema=None) as batch:
        batch.drop_column("session_token")


def downgrade():
    with op.batch_alter_table("accounts", schema=None) as batch:
        batch.add_column(
            sa.Column("session_token", sa.String(length=32), server_default="", nullable=False)
        )
    bind = op.get_bind()
    accounts = sa.table("accounts", sa.column("id", sa.Integer), sa.column("session_token"))
    for (account_id,) in bind.execute(sa.select(accounts.c.id)).all():
        bind.execute(
            accounts.update()
            .where(accounts.c.id == account_id)
            .values(session_token=secrets.token_hex(16))
        )
    op.drop_table("login_failure_counters")
    op.drop_table("login_sessions")
