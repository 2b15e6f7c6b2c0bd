"""Invoice profiles: each issuer's company name, address, tax number, e-mail and logo.

One row per issuer, keyed as documents key their issuer (0: the operator, else the reseller's
id). The operator's text stays in the settings table (company_*); its row holds the logo.

Revision ID: c6d7e8f9a0b1
Revises: b4c5d6e7f8a9
Create Date: 2026-12-01 23:20:00

"""

import sqlalchemy as sa
from alembic import op

revision = "c6d7e8f9a0b1"
down_revision = "b4c5d6e7f8a9"
branch_labels = None
depends_on = None

LOGO_MAX_BYTES = 256 * 1024  # portal.models.profile.LOGO_MAX_BYTES


def upgrade():
    op.create_table(
        "invoice_profiles",
        sa.Column("issuer_key", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("reseller_id", sa.Integer(), nullable=True),
        sa.Column("company_name", sa.String(length=120), nullable=False),
        sa.Column("address", sa.String(length=500), nullable=False),
        sa.Column("tax_number", sa.String(length=50), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("logo", sa.LargeBinary(length=LOGO_MAX_BYTES), nullable=True),
        sa.Column("logo_type", sa.String(length=20), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.CheckConstraint(
            "issuer_key = COALESCE(reseller_id, 0)", name=op.f("ck_invoice_profiles_issuer")
        ),
        sa.ForeignKeyConstraint(
            ["reseller_id"],
            ["accounts.id"],
            name=op.f("fk_invoice_profiles_reseller_id_accounts"),
        ),
        sa.PrimaryKeyConstraint("issuer_key", name=op.f("pk_invoice_profiles")),
        sa.UniqueConstraint("reseller_id", name=op.f("uq_invoice_profiles_reseller_id")),
    )


def downgrade():
    op.drop_table("invoice_profiles")
