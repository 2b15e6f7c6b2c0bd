"""Outbox secrets: a message that carries a password has its text deleted once it is sent.

`holds_secret` marks such a message (a welcome mail with the password). Welcome mails already
sent keep no password either: their text is replaced by the same note.

Revision ID: b4c5d6e7f8a9
Revises: a3b4c5d6e7f8
Create Date: 2026-12-01 07:20:00

"""

import sqlalchemy as sa
from alembic import op

revision = "b4c5d6e7f8a9"
down_revision = "a3b4c5d6e7f8"
branch_labels = None
depends_on = None

# The same words as portal.mail.PURGED_BODY (a migration does not import the app).
PURGED_BODY = "(The text of this message held a password: it was deleted once sent.)"


def upgrade():
    with op.batch_alter_table("outbox", schema=None) as batch:
        batch.add_column(
            sa.Column("holds_secret", sa.Boolean(), nullable=False, server_default=sa.false())
        )
    outbox = sa.table(
        "outbox",
        sa.column("kind", sa.String),
        sa.column("body", sa.Text),
        sa.column("sent_at", sa.DateTime),
        sa.column("holds_secret", sa.Boolean),
    )
    welcome = (outbox.c.kind == "welcome") & outbox.c.body.like("%Password: %")
    op.execute(outbox.update().where(welcome).values(holds_secret=True))
    op.execute(
        outbox.update()
        .where(outbox.c.holds_secret, outbox.c.sent_at.is_not(None))
        .values(body=PURGED_BODY)
    )


def downgrade():
    with op.batch_alter_table("outbox", schema=None) as batch:
        batch.drop_column("holds_secret")
