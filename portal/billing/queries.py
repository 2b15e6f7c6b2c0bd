"""What the money panel of an account shows: recent ledger entries and documents."""

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from portal.billing.forms import MoneyForm
from portal.calls.queries import recent_calls
from portal.extensions import db
from portal.models import Account, Allocation, Document, LedgerEntry

RECENT = 20

# What a document's allocation notes read ("Paid by R-000012", "Applied to INV-000003"), for a
# whole list in two more queries instead of some per document.
WITH_ALLOCATIONS = (
    selectinload(Document.allocations)
    .joinedload(Allocation.payment)
    .joinedload(LedgerEntry.document),
    selectinload(Document.payment_entries)
    .selectinload(LedgerEntry.allocations)
    .joinedload(Allocation.document),
)


def activity(account: Account) -> dict:
    """The account's latest ledger entries and documents."""
    entries = db.session.scalars(
        select(LedgerEntry)
        .where(LedgerEntry.account_id == account.id)
        .order_by(LedgerEntry.id.desc())
        .limit(RECENT)
    )
    documents = db.session.scalars(
        select(Document)
        .where(Document.account_id == account.id)
        .order_by(Document.id.desc())
        .limit(RECENT)
        .options(*WITH_ALLOCATIONS)
    )
    return {
        "account": account,
        "entries": list(entries),
        "documents": list(documents),
        "calls": recent_calls(account),
    }


def money_context(account: Account, payment_form=None, charge_form=None) -> dict:
    """What the money panel of an account shows: its activity and the payment and charge forms."""
    return {
        **activity(account),
        "payment_form": payment_form or MoneyForm(formdata=None, prefix="payment"),
        "charge_form": charge_form or MoneyForm(formdata=None, prefix="charge"),
    }
