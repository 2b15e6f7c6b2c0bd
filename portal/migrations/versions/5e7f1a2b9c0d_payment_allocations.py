"""Payment allocations: an invoice's paid amount and status come from allocation rows.

Documents lose `amount_paid` and `status` (edited in place until now); an invoice's paid amount
is the sum of its allocations, and a receipt is paid when issued. Existing data: each account's
payments are allocated to its invoices that had `amount_paid` > 0, both oldest first (by id),
each payment used up before the next, so every invoice keeps exactly the amount it had. Which
payment paid which invoice was never stored; the old settlement took payments in that same
order, and only the per-invoice sums were ever shown. Credit left over stays unallocated, as the
old "payments minus amount_paid" figure did.

Downgrade: the columns come back, filled from the allocations (receipts paid in full); receipts
of postpaid payments issued meanwhile stay, as the documents they are.

Revision ID: 5e7f1a2b9c0d
Revises: b8c9d0e1f2a3
Create Date: 2026-12-03 04:00:00

"""

from collections import defaultdict

import sqlalchemy as sa
from alembic import op

from portal.rules.allocation import pair_oldest_first
from portal.rules.currency import quantum

revision = "5e7f1a2b9c0d"
down_revision = "b8c9d0e1f2a3"
branch_labels = None
depends_on = None


def _units(bind) -> bool:
    """SQLite keeps money as integer hundred-thousandths (see 5b2e9c1d7a44)."""
    return bind.dialect.name == "sqlite"


def upgrade():
    op.create_table(
        "allocations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("payment_entry_id", sa.Integer(), nullable=False),
        sa.Column("document_id", sa.Integer(), nullable=False),
        sa.Column("amount", sa.Numeric(precision=18, scale=5), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint("amount > 0", name=op.f("ck_allocations_amount_positive")),
        sa.ForeignKeyConstraint(
            ["document_id"], ["documents.id"], name=op.f("fk_allocations_document_id_documents")
        ),
        sa.ForeignKeyConstraint(
            ["payment_entry_id"],
            ["ledger_entries.id"],
            name=op.f("fk_allocations_payment_entry_id_ledger_entries"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_allocations")),
        sa.UniqueConstraint("payment_entry_id", "document_id", name="uq_allocations_pair"),
    )
    with op.batch_alter_table("allocations", schema=None) as batch:
        batch.create_index("ix_allocations_document", ["document_id"], unique=False)

    bind = op.get_bind()
    # Raw stored values on both sides (integer units on SQLite, NUMERIC elsewhere): the pairing
    # only compares and subtracts them, so no conversion is needed.
    invoices = defaultdict(list)
    for account_id, document_id, paid, issued_at in bind.execute(
        sa.text(
            "SELECT account_id, id, amount_paid, issued_at FROM documents"
            " WHERE kind = 'invoice' AND amount_paid > 0 ORDER BY id"
        ).columns(issued_at=sa.DateTime())
    ):
        invoices[account_id].append((document_id, paid, issued_at))
    payments = defaultdict(list)
    for account_id, entry_id, amount, created_at in bind.execute(
        sa.text(
            "SELECT account_id, id, amount, created_at FROM ledger_entries"
            " WHERE kind = 'payment' AND amount < 0 ORDER BY id"
        ).columns(created_at=sa.DateTime())
    ):
        if account_id in invoices:  # postpaid payments are negative entries
            payments[account_id].append((entry_id, -amount, created_at))
    rows = []
    for account_id, paid_invoices in invoices.items():
        made = {entry_id: when for entry_id, _, when in payments[account_id]}
        issued = {document_id: when for document_id, _, when in paid_invoices}
        pairs = pair_oldest_first(
            [(entry_id, rest) for entry_id, rest, _ in payments[account_id]],
            [(document_id, paid) for document_id, paid, _ in paid_invoices],
        )
        for entry_id, document_id, amount in pairs:
            # When the old settlement could have applied it: the later of payment and invoice.
            when = max(made[entry_id], issued[document_id])
            rows.append(
                {"entry": entry_id, "document": document_id, "amount": amount, "when": when}
            )
    if rows:
        bind.execute(
            sa.text(
                "INSERT INTO allocations (payment_entry_id, document_id, amount, created_at)"
                " VALUES (:entry, :document, :amount, :when)"
            ).bindparams(sa.bindparam("when", type_=sa.DateTime())),
            rows,
        )
    with op.batch_alter_table("documents", schema=None) as batch:
        batch.drop_column("status")
        batch.drop_column("amount_paid")


def downgrade():
    bind = op.get_bind()
    status = sa.Enum(
        "unpaid", "partial", "paid", name="documentstatus", native_enum=False, length=16
    )
    with op.batch_alter_table("documents", schema=None) as batch:
        batch.add_column(sa.Column("amount_paid", sa.Numeric(precision=18, scale=5)))
        batch.add_column(sa.Column("status", status))
    bind.execute(
        sa.text(
            "UPDATE documents SET amount_paid = CASE WHEN kind = 'receipt' THEN total ELSE"
            " COALESCE((SELECT SUM(amount) FROM allocations"
            " WHERE allocations.document_id = documents.id), 0) END"
        )
    )
    currencies = bind.execute(sa.text("SELECT DISTINCT currency FROM documents")).scalars()
    for currency in list(currencies):
        smallest = quantum(currency)
        bind.execute(
            sa.text(
                "UPDATE documents SET status = CASE WHEN total - amount_paid < :smallest"
                " THEN 'paid' WHEN amount_paid > 0 THEN 'partial' ELSE 'unpaid' END"
                " WHERE currency = :currency"
            ),
            {
                "smallest": int(smallest.scaleb(5)) if _units(bind) else smallest,
                "currency": currency,
            },
        )
    with op.batch_alter_table("documents", schema=None) as batch:
        batch.alter_column("amount_paid", existing_type=sa.Numeric(18, 5), nullable=False)
        batch.alter_column("status", existing_type=status, nullable=False)
    op.drop_table("allocations")
