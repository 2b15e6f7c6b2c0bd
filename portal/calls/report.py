"""Call detail records: the calls a viewer may see, filtered, totalled, paged and exported."""

from dataclasses import asdict, dataclass, field
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Select, and_, case, func, literal, select, type_coerce
from sqlalchemy.orm import aliased

from portal.extensions import db
from portal.listing import Sorting
from portal.models import Account, Call, CallCharge, CallStatus, Role
from portal.models.account import Money
from portal.security import in_subtree, visible_accounts

# The status filter's choices. "Completed" (the default) is what was billed: ended calls and
# those the reaper closed; refused attempts and live calls only when asked for.
STATUSES = {
    "completed": ("Completed (ended and reaped)", (CallStatus.ENDED, CallStatus.REAPED)),
    "ended": ("Ended", (CallStatus.ENDED,)),
    "reaped": ("Reaped", (CallStatus.REAPED,)),
    "refused": ("Refused", (CallStatus.REFUSED,)),
    "live": ("Live", (CallStatus.LIVE,)),
    "all": ("All", tuple(CallStatus)),
    # Billed at hang-up without an authorization (portal.calls.unrecorded): to review.
    "unauthorized": ("Not authorized", tuple(CallStatus)),
}
DEFAULT_STATUS = "completed"
UNAUTHORIZED = "unauthorized"

# A reseller's own charge on a call, the charge of the level below it, and who paid that one.
_OWN = aliased(CallCharge, name="own_charge")
_BELOW = aliased(CallCharge, name="below_charge")
_BELOW_PAYER = aliased(Account, name="below_payer")

SORTING = Sorting(
    columns={
        "started": Call.started_at,
        "duration": func.coalesce(Call.duration_seconds, 0),
        "cost": func.coalesce(Call.cost, literal(Decimal(0), Money)),
        "account": Account.account_number,
        "destination": Call.destination,
    },
    default="-started",
    unique=Call.id,
)


@dataclass(frozen=True)
class CallFilter:
    """What the Calls page shows: a UTC time window and the optional narrowing filters."""

    start: datetime  # naive UTC, included
    end: datetime  # naive UTC, excluded
    status: str = DEFAULT_STATUS
    account_id: int | None = None
    reseller_id: int | None = None
    prefix: str = ""
    min_duration: int | None = None

    def to_json(self) -> dict:
        """The filter as a job keeps it (times as ISO text)."""
        values = asdict(self)
        values["start"] = self.start.isoformat()
        values["end"] = self.end.isoformat()
        return values

    @classmethod
    def from_json(cls, values: dict) -> "CallFilter":
        """The filter a job kept."""
        start = datetime.fromisoformat(values["start"])
        end = datetime.fromisoformat(values["end"])
        return cls(**{**values, "start": start, "end": end})


def is_reseller(viewer: Account) -> bool:
    """Whether the viewer sees its own cost and margin on each call."""
    return viewer.role == Role.RESELLER


def _scope(viewer: Account):
    """SQL condition on the calling account: one the viewer may see (visible_accounts)."""
    return visible_accounts(viewer).whereclause


def _conditions(viewer: Account, wanted: CallFilter, ended: bool = True) -> list:
    """The WHERE conditions of the filtered set, scope first (`ended`: with its end bound)."""
    conditions = [
        _scope(viewer),
        Call.started_at >= wanted.start,
        Call.status.in_(STATUSES[wanted.status][1]),
    ]
    if ended:
        conditions.append(Call.started_at < wanted.end)
    if wanted.account_id is not None:
        conditions.append(Call.account_id == wanted.account_id)
    if wanted.reseller_id is not None:
        reseller = db.session.get(Account, wanted.reseller_id)
        conditions.append(in_subtree(reseller.subtree_path))
    if wanted.prefix:
        # Digits and an optional leading + only (the form checks): no LIKE wildcard gets here.
        conditions.append(Call.destination.startswith(wanted.prefix))
    if wanted.min_duration:
        conditions.append(Call.duration_seconds >= wanted.min_duration)
    if wanted.status == UNAUTHORIZED:
        conditions.append(Call.unauthorized)
    return conditions


def _margin_columns(viewer: Account) -> tuple:
    """A reseller's cost of a call and its margin (None across currencies: never converted)."""
    revenue = case((_OWN.level == 1, Call.cost), else_=_BELOW.cost)
    revenue_currency = case((_OWN.level == 1, Account.currency), else_=_BELOW_PAYER.currency)
    margin = case(
        (
            and_(revenue_currency == viewer.currency, _OWN.cost.is_not(None)),
            type_coerce(revenue - _OWN.cost, Money),
        ),
        else_=None,
    )
    return _OWN.cost.label("own_cost"), type_coerce(margin, Money).label("margin")


def _with_margin(query: Select, viewer: Account) -> Select:
    """`query` joined to the reseller's own charge and the charge of the level below."""
    return (
        query.outerjoin(_OWN, and_(_OWN.call_id == Call.id, _OWN.account_id == viewer.id))
        .outerjoin(_BELOW, and_(_BELOW.call_id == Call.id, _BELOW.level == _OWN.level - 1))
        .outerjoin(_BELOW_PAYER, _BELOW_PAYER.id == _BELOW.account_id)
    )


def call_rows(viewer: Account, wanted: CallFilter, ended: bool = True) -> Select:
    """The filtered calls as plain rows: the figures the page and the CSV show."""
    columns = [
        Call.id.label("id"),
        Call.started_at,
        Account.account_number,
        Account.currency,
        Call.destination,
        Call.translated_destination,
        Call.rate_destination,
        Call.status,
        Call.cause,
        Call.duration_seconds,
        Call.cost,
        Call.free_seconds,  # what a free-minute bundle covered
        Call.unauthorized,
    ]
    query = select(*columns).join(Account, Account.id == Call.account_id)
    if is_reseller(viewer):
        query = _with_margin(query, viewer).add_columns(*_margin_columns(viewer))
    return query.where(*_conditions(viewer, wanted, ended))


@dataclass
class CurrencyTotal:
    """The filtered calls of accounts billed in one currency."""

    currency: str
    calls: int
    cost: Decimal


@dataclass
class Totals:
    """Calls, minutes and cost of the filtered set (and a reseller's cost and margin)."""

    calls: int = 0
    seconds: int = 0
    by_currency: list[CurrencyTotal] = field(default_factory=list)
    own_cost: Decimal | None = None
    margin: Decimal | None = None

    @property
    def minutes(self) -> Decimal:
        """The duration in minutes, to the hundredth."""
        return (Decimal(self.seconds) / 60).quantize(Decimal("0.01"))


def totals(viewer: Account, wanted: CallFilter) -> Totals:
    """One aggregate query over the filtered set, per currency of the calling accounts."""
    columns = [
        Account.currency,
        func.count().label("calls"),
        func.coalesce(func.sum(Call.duration_seconds), 0).label("seconds"),
        func.sum(Call.cost).label("cost"),
    ]
    query = select(*columns).join(Account, Account.id == Call.account_id)
    if is_reseller(viewer):
        own_cost, margin = _margin_columns(viewer)
        query = _with_margin(query, viewer).add_columns(
            func.sum(own_cost).label("own_cost"), func.sum(margin).label("margin")
        )
    query = query.where(*_conditions(viewer, wanted)).group_by(Account.currency)
    result = Totals()
    if is_reseller(viewer):
        result.own_cost = result.margin = Decimal(0)
    for row in db.session.execute(query.order_by(Account.currency)):
        result.calls += row.calls
        result.seconds += int(row.seconds)
        result.by_currency.append(CurrencyTotal(row.currency, row.calls, row.cost or Decimal(0)))
        if is_reseller(viewer):
            result.own_cost += row.own_cost or 0
            result.margin += row.margin or 0
    return result


def live_calls(viewer: Account) -> Select:
    """Authorized calls not ended yet, of the accounts the viewer may see."""
    return (
        select(
            Call.id.label("id"),
            Call.started_at,
            Account.account_number,
            Account.currency,
            Call.destination,
            Call.rate_destination,
            Call.reserved,
            Call.max_duration_seconds,
        )
        .join(Account, Account.id == Call.account_id)
        .where(_scope(viewer), Call.status == CallStatus.LIVE)
    )


LIVE_SORTING = Sorting(
    columns={
        "started": Call.started_at,
        "reserved": Call.reserved,
        "account": Account.account_number,
    },
    default="started",
    unique=Call.id,
)
