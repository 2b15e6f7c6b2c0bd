"""Call records of an account, and a reseller's resold calls with their margin."""

from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import Select, func, literal, select

from portal.extensions import db
from portal.listing import Sorting
from portal.models import Account, Call, CallCharge, CallStatus
from portal.models.account import Money
from portal.web import newest_first

# The sortable columns of an account's paged call list; a call not rated yet sorts as 0.
CALL_SORTING = Sorting(
    columns={
        "started": Call.started_at,
        "duration": func.coalesce(Call.duration_seconds, 0),
        "cost": func.coalesce(Call.cost, literal(0, Money)),
    },
    default="-started",
    unique=Call.id,
)


def account_calls(account: Account) -> Select:
    """The account's calls (refused attempts left out), for a paged list."""
    return select(Call).where(Call.account_id == account.id, Call.status != CallStatus.REFUSED)


@dataclass(frozen=True)
class ResoldCall:
    """A call of a reseller's subtree: what the level below paid it, what it paid, the margin."""

    call: Call
    caller: str
    revenue: Decimal | None
    revenue_currency: str
    cost: Decimal
    cost_currency: str

    @property
    def margin(self) -> Decimal | None:
        """Revenue minus cost; None when they are in different currencies (never converted)."""
        if self.revenue is None or self.revenue_currency != self.cost_currency:
            return None
        return self.revenue - self.cost


def resold_calls(
    reseller: Account, before: int | None, per_page: int
) -> tuple[list[ResoldCall], int | None]:
    """The reseller's rated calls, newest first: its cost, the level below's, the margin."""
    charges, next_before = newest_first(
        select(CallCharge).where(
            CallCharge.account_id == reseller.id, CallCharge.cost.is_not(None)
        ),
        CallCharge.id,
        before,
        per_page,
    )
    call_ids = [charge.call_id for charge in charges]
    calls = {c.id: c for c in db.session.scalars(select(Call).where(Call.id.in_(call_ids)))}
    # The level below a reseller at level n is the charge at n - 1, or the caller at level 1.
    below = {
        (c.call_id, c.level): c
        for c in db.session.scalars(select(CallCharge).where(CallCharge.call_id.in_(call_ids)))
    }
    payer_ids = {c.account_id for c in calls.values()} | {c.account_id for c in below.values()}
    payers = {
        row.id: row
        for row in db.session.execute(
            select(Account.id, Account.account_number, Account.currency).where(
                Account.id.in_(payer_ids)
            )
        )
    }
    rows = []
    for charge in charges:
        call = calls[charge.call_id]
        lower = below.get((charge.call_id, charge.level - 1))
        payer = payers[lower.account_id if lower else call.account_id]
        rows.append(
            ResoldCall(
                call=call,
                caller=payers[call.account_id].account_number,
                revenue=lower.cost if lower else call.cost,
                revenue_currency=payer.currency,
                cost=charge.cost,
                cost_currency=reseller.currency,
            )
        )
    return rows, next_before
