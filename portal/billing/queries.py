"""What the money panel of an account shows: recent ledger entries and documents."""

from sqlalchemy import select

from portal.billing.forms import MoneyForm
from portal.calls.queries import recent_calls
from portal.extensions import db
from portal.models import Account, Document, LedgerEntry

RECENT = 20


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
