"""Recent call records of an account."""

from sqlalchemy import select

from portal.extensions import db
from portal.models import Account, Call, CallStatus

RECENT = 20


def recent_calls(account: Account) -> list[Call]:
    """The account's latest calls (refused attempts left out)."""
    return list(
        db.session.scalars(
            select(Call)
            .where(Call.account_id == account.id, Call.status != CallStatus.REFUSED)
            .order_by(Call.id.desc())
            .limit(RECENT)
        )
    )
