"""Rate group and rate operations: create, edit, (de)activate, rates, CSV import, lookup."""

from collections.abc import Callable, Iterator
from decimal import Decimal

from sqlalchemy import (
    Row,
    Select,
    String,
    bindparam,
    delete,
    exists,
    func,
    insert,
    select,
)

from portal import audit
from portal.downloads import counted, keyset_batches
from portal.extensions import db
from portal.models import Account, Rate, RateGroup, Status
from portal.rules.locale import is_currency
from portal.rules.money import parse_amount
from portal.rules.rating import MAX_PREFIX_LENGTH, RateRow, RateTable, candidate_prefixes
from portal.security import owner_id_for
from portal.tariffs.rate_csv import MAX_INCREMENT
from portal.transactions import ValidationFailed, transaction

GROUP_FIELDS = ("name", "currency", "status")
INSERT_CHUNK = 5000
DELETE_CHUNK = 500
RATE_UNIQUE = (("prefix", "prefix", "This rate group already has a rate for this prefix."),)
Progress = Callable[..., None]


def _owner_condition(owner_id: int | None):
    """Rate groups of the same owner."""
    return (
        RateGroup.reseller_id.is_(None) if owner_id is None else RateGroup.reseller_id == owner_id
    )


def _group_errors(data: dict, owner_id: int | None, group: RateGroup | None) -> dict[str, str]:
    """Rule errors of a rate group's name, currency and status."""
    errors = {}
    name = str(data.get("name") or "").strip()
    if not name:
        errors["name"] = "This field is required."
    elif len(name) > 100:
        errors["name"] = "At most 100 characters."
    else:
        clash = select(
            exists().where(
                _owner_condition(owner_id),
                RateGroup.name == name,
                RateGroup.id != (group.id if group else -1),
            )
        )
        if db.session.scalar(clash):
            errors["name"] = "You already have a rate group with this name."
    if not is_currency(str(data.get("currency") or "")):
        errors["currency"] = "Choose a currency from the list."
    elif group and data["currency"] != group.currency and accounts_using(group):
        errors["currency"] = (
            f"{accounts_using(group)} account(s) use this rate group in {group.currency}; "
            "its currency cannot change."
        )
    if data.get("status") not in (Status.ACTIVE.value, Status.INACTIVE.value):
        errors["status"] = "Choose Active or Inactive."
    return errors


def accounts_using(group: RateGroup) -> int:
    """How many undeleted accounts use this rate group."""
    return db.session.scalar(
        select(func.count())
        .select_from(Account)
        .where(Account.rate_group_id == group.id, Account.deleted_at.is_(None))
    )


def create_rate_group(actor: Account | None, data: dict) -> RateGroup:
    """Create a rate group owned by the actor's tenant; names are unique per owner."""
    owner_id = owner_id_for(actor)
    errors = _group_errors(data, owner_id, None)
    if errors:
        raise ValidationFailed(errors)
    group = RateGroup(
        name=data["name"].strip(),
        currency=data["currency"],
        status=Status(data["status"]),
        reseller_id=owner_id,
    )
    with transaction():
        db.session.add(group)
        db.session.flush()
        changes = {f: [None, v] for f, v in audit.snapshot(group, GROUP_FIELDS).items()}
        audit.record(actor, "create", "rate_group", group, changes=changes)
    return group


def update_rate_group(actor: Account | None, group: RateGroup, data: dict) -> RateGroup:
    """Rename, re-price (only while unused) or (de)activate a rate group."""
    errors = _group_errors(data, group.reseller_id, group)
    if errors:
        raise ValidationFailed(errors)
    before = audit.snapshot(group, GROUP_FIELDS)
    with transaction():
        group.name = data["name"].strip()
        group.currency = data["currency"]
        group.status = Status(data["status"])
        changes = audit.diff(before, audit.snapshot(group, GROUP_FIELDS))
        if changes:
            audit.record(actor, "update", "rate_group", group, changes=changes)
    return group


def set_rate_group_status(actor: Account | None, group: RateGroup, status: Status) -> None:
    """Activate or deactivate: an inactive group is not offered for new accounts."""
    with transaction():
        old = group.status
        group.status = status
        if old != status:
            action = "activate" if status == Status.ACTIVE else "deactivate"
            changes = {"status": [old.value, status.value]}
            audit.record(actor, action, "rate_group", group, changes=changes)


def _decimal(value, field: str, errors: dict[str, str]) -> Decimal | None:
    """An amount, or None with an error on `field`."""
    amount, error = parse_amount(value)
    if error:
        errors[field] = error
    return amount


def clean_rate(data: dict) -> RateRow:
    """Validate one rate's fields (the same rules as a CSV row) or raise ValidationFailed."""
    errors: dict[str, str] = {}
    prefix = str(data.get("prefix") or "").strip()
    if len(prefix) > MAX_PREFIX_LENGTH:
        errors["prefix"] = f"At most {MAX_PREFIX_LENGTH} digits."
    elif prefix and not (prefix.isascii() and prefix.isdigit()):
        errors["prefix"] = "Digits only (or empty for any number)."
    destination = str(data.get("destination") or "").strip()
    if len(destination) > 100:
        errors["destination"] = "At most 100 characters."
    connect_cost = _decimal(data.get("connect_cost"), "connect_cost", errors)
    cost_per_minute = _decimal(data.get("cost_per_minute"), "cost_per_minute", errors)
    seconds = {}
    for field, minimum in (("initial_increment", 0), ("increment", 1)):
        value = data.get(field)
        if not isinstance(value, int) or isinstance(value, bool):
            errors[field] = "Enter a whole number of seconds."
        elif not minimum <= value <= MAX_INCREMENT:
            errors[field] = f"Must be from {minimum} to {MAX_INCREMENT} seconds."
        seconds[field] = value
    if errors:
        raise ValidationFailed(errors)
    return RateRow(
        prefix,
        destination,
        connect_cost,
        cost_per_minute,
        seconds["initial_increment"],
        seconds["increment"],
    )


def _prefix_taken(group: RateGroup, prefix: str, rate: Rate | None) -> bool:
    """True if another rate of the group has this prefix."""
    query = select(
        exists().where(
            Rate.rate_group_id == group.id,
            Rate.prefix == prefix,
            Rate.id != (rate.id if rate else -1),
        )
    )
    return bool(db.session.scalar(query))


def _rate_text(rate) -> str:
    """A rate in one line, for the audit log."""
    return (
        f"{rate.destination} {audit.readable(rate.connect_cost)} + "
        f"{audit.readable(rate.cost_per_minute)}/min {rate.initial_increment}/{rate.increment}s"
    )


def _record_rate(actor, group: RateGroup, prefix: str, old: str | None, new: str | None) -> None:
    """A rate change is a change of its rate group."""
    audit.record(
        actor, "update", "rate_group", group, changes={f"rate {prefix or 'any'}": [old, new]}
    )


def add_rate(actor: Account | None, group: RateGroup, data: dict) -> Rate:
    """Add one rate to a group; one rate per prefix."""
    row = clean_rate(data)
    if _prefix_taken(group, row.prefix, None):
        raise ValidationFailed({"prefix": RATE_UNIQUE[0][2]})
    rate = Rate(rate_group_id=group.id, **row.__dict__)
    with transaction(RATE_UNIQUE):
        db.session.add(rate)
        _record_rate(actor, group, rate.prefix, None, _rate_text(rate))
    return rate


def update_rate(actor: Account | None, rate: Rate, data: dict) -> Rate:
    """Change one rate."""
    row = clean_rate(data)
    group = db.session.get(RateGroup, rate.rate_group_id)
    if _prefix_taken(group, row.prefix, rate):
        raise ValidationFailed({"prefix": RATE_UNIQUE[0][2]})
    before = _rate_text(rate)
    with transaction(RATE_UNIQUE):
        for field, value in row.__dict__.items():
            setattr(rate, field, value)
        _record_rate(actor, group, rate.prefix, before, _rate_text(rate))
    return rate


def delete_rate(actor: Account | None, rate: Rate) -> None:
    """Remove one rate."""
    group = db.session.get(RateGroup, rate.rate_group_id)
    with transaction():
        _record_rate(actor, group, rate.prefix, _rate_text(rate), None)
        db.session.delete(rate)


def import_rates(
    actor: Account | None,
    group: RateGroup,
    rows: list[RateRow],
    replace: bool,
    progress: Progress | None = None,
) -> int:
    """Save validated rows in one transaction: replace all rates, or add/overwrite by prefix."""
    with transaction(RATE_UNIQUE):
        mode = "replaced all rates" if replace else "added or overwrote rates"
        audit.record(
            actor,
            "update",
            "rate_group",
            group,
            changes={"rates": [None, f"{mode}: {len(rows)} imported"]},
        )
        if replace:
            db.session.execute(delete(Rate).where(Rate.rate_group_id == group.id))
        else:
            prefixes = [row.prefix for row in rows]
            for start in range(0, len(prefixes), DELETE_CHUNK):
                chunk = prefixes[start : start + DELETE_CHUNK]
                db.session.execute(
                    delete(Rate).where(Rate.rate_group_id == group.id, Rate.prefix.in_(chunk))
                )
        # Bulk executemany in chunks: one round trip per chunk, not one INSERT per row.
        for start in range(0, len(rows), INSERT_CHUNK):
            db.session.execute(
                insert(Rate),
                [
                    {"rate_group_id": group.id, **row.__dict__}
                    for row in rows[start : start + INSERT_CHUNK]
                ],
            )
            if progress is not None:
                progress(min(start + INSERT_CHUNK, len(rows)), len(rows))
    return len(rows)


def count_rates(group: RateGroup) -> int:
    """How many rates the group has."""
    return db.session.scalar(
        select(func.count()).select_from(Rate).where(Rate.rate_group_id == group.id)
    )


def exported_rates(group: RateGroup, progress: Progress | None = None) -> Iterator[Row]:
    """The group's rates ordered by prefix, as plain rows read in batches while they are sent."""
    # The statement and engine are taken now; the rows are read as the response is sent, after
    # the request's session has closed (portal.downloads.keyset_batches).
    statement = select(
        Rate.prefix,
        Rate.destination,
        Rate.connect_cost,
        Rate.cost_per_minute,
        Rate.initial_increment,
        Rate.increment,
    ).where(Rate.rate_group_id == group.id)
    rows = (row for batch in keyset_batches(db.engine, statement, Rate.prefix) for row in batch)
    return iter(counted(rows, progress))


_PREFIX_BINDS = [f"prefix_{i}" for i in range(MAX_PREFIX_LENGTH + 1)]


def longest_prefix(*columns, group_id=None, fixed=False) -> Select:
    """The longest-prefix rate of a group: binds prefixes (candidate_prefixes) and group_id."""
    # One indexed query over the (rate_group_id, prefix) UNIQUE index, never a scan; the page's
    # "Test a number" and call authorization (as plain columns) both use it. group_id: the
    # group as an expression (a correlated column) instead of the bind. fixed: one bind per
    # possible prefix length, prefix_0 ... (prefix_binds), instead of a list expanded per
    # call, so the statement's text never changes (portal.calls.rawsql.Prepared).
    if fixed:
        candidates = [bindparam(name, type_=String()) for name in _PREFIX_BINDS]
    else:
        candidates = bindparam("prefixes", expanding=True)
    return (
        select(*columns)
        .where(
            Rate.rate_group_id == (bindparam("group_id") if group_id is None else group_id),
            Rate.prefix.in_(candidates),
        )
        .order_by(func.length(Rate.prefix).desc())
        .limit(1)
    )


def prefix_binds(number: str) -> dict:
    """The binds of a fixed longest_prefix() for `number` (the shortest candidate repeated)."""
    candidates = candidate_prefixes(number)
    candidates += [""] * (len(_PREFIX_BINDS) - len(candidates))  # '' is the shortest
    return dict(zip(_PREFIX_BINDS, candidates, strict=True))


def lookup_rate(group_id: int, number: str) -> Rate | None:
    """The longest-prefix rate of a group for `number`."""
    binds = {"group_id": group_id, "prefixes": candidate_prefixes(number)}
    return db.session.scalar(longest_prefix(Rate), binds)


def load_rate_table(group: RateGroup) -> RateTable:
    """All rates of a group in memory, for many lookups (find_rate)."""
    return RateTable(db.session.scalars(select(Rate).where(Rate.rate_group_id == group.id)))


def ensure_default_rate_group(currency: str) -> bool:
    """Create the admins' "Default" rate group if they have none; True if created."""
    count = db.session.scalar(
        select(func.count()).select_from(RateGroup).where(RateGroup.reseller_id.is_(None))
    )
    if count:
        return False
    with transaction():
        db.session.add(RateGroup(name="Default", currency=currency, status=Status.ACTIVE))
    return True
