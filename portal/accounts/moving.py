"""Moving a customer, or a reseller with its whole subtree, to another owner: one transaction."""

from sqlalchemy import func, literal, or_, select, update

from portal import audit
from portal.accounts.validation import owner_taxes
from portal.calls.writers import one_writer
from portal.extensions import db
from portal.ids import to_id
from portal.models import Account, RateGroup, Role, Status
from portal.security import STAFF, in_subtree, rate_groups_of, visible_resellers
from portal.transactions import ValidationFailed, transaction

MOVABLE = (Role.CUSTOMER, Role.RESELLER)
PATH_LENGTH = Account.__table__.c.tenant_path.type.length
LIVE_CALLS = "Calls of this account or of its subtree are live: move it once they have ended."


def _subtree(account: Account):
    """SQL condition: the account itself or any account below it (deleted ones included)."""
    return or_(Account.id == account.id, in_subtree(account.subtree_path))


def move_targets(actor: Account, account: Account) -> list[tuple[int | None, str]]:
    """(owner id, label) of every owner `actor` may move `account` to (None: the admins)."""
    # Staff: the admins and every reseller; a reseller: itself and its sub-resellers. Never
    # the account itself, nor anything below it (it would own itself), nor its current owner.
    targets: list[tuple[int | None, str]] = []
    if actor.role in STAFF:
        targets.append((None, "Admins (no reseller)"))
    else:
        targets.append((actor.id, f"{actor.name} ({actor.account_number}, you)"))
    resellers = db.session.scalars(
        visible_resellers(actor)
        .where(Account.status == Status.ACTIVE, ~_subtree(account))
        .order_by(Account.company, Account.first_name, Account.id)
    )
    targets += [(r.id, f"{r.name} ({r.account_number})") for r in resellers]
    return [(owner, label) for owner, label in targets if owner != account.reseller_id]


def target_owner(actor: Account, raw) -> Account | None:
    """The owner a posted target names (None: the admins); LookupError if `actor` cannot see it."""
    if raw in (None, "") and actor.role in STAFF:
        return None
    owner_id = to_id(raw)
    if owner_id is None:
        raise ValidationFailed({"reseller_id": "Choose the new owner from the list."})
    if actor.role not in STAFF and owner_id == actor.id:
        return actor
    owner = db.session.scalar(visible_resellers(actor).where(Account.id == owner_id))
    if owner is None:
        raise LookupError(raw)
    return owner


def check_move(account: Account, owner: Account | None, data: dict) -> dict:
    """The cleaned move (rate group, taxes), or ValidationFailed with each field's error."""
    errors: dict[str, str] = {}
    if account.role not in MOVABLE:
        errors["reseller_id"] = "Only customers and resellers can be moved."
    if owner is not None:
        if owner.id == account.id or owner.tenant_path.startswith(account.subtree_path):
            errors["reseller_id"] = "An account cannot be moved under itself or its own subtree."
        elif owner.role != Role.RESELLER or owner.status != Status.ACTIVE:
            errors["reseller_id"] = "Choose an active reseller."
    if "reseller_id" not in errors and (owner.id if owner else None) == account.reseller_id:
        errors["reseller_id"] = "The account already belongs there: choose another owner."
    owner_id = owner.id if owner else None
    rate_group = None
    rate_group_id = to_id(data.get("rate_group_id"))
    if rate_group_id is not None:
        rate_group = db.session.scalar(
            rate_groups_of(owner_id).where(
                RateGroup.id == rate_group_id, RateGroup.status == Status.ACTIVE
            )
        )
    if rate_group is None:
        errors["rate_group_id"] = "Choose a rate group of the new owner."
    elif rate_group.currency != account.currency:
        # Rates are never converted: the account is billed in its rate group's currency.
        errors["rate_group_id"] = (
            f'Rate group "{rate_group.name}" is priced in {rate_group.currency}, '
            f"not in the account's {account.currency}."
        )
    taxes = owner_taxes(owner_id, data.get("tax_ids"))
    if taxes is None:
        errors["tax_ids"] = "Choose taxes of the new owner from the list."
    if errors:
        raise ValidationFailed(errors)
    return {"rate_group": rate_group, "taxes": taxes}


def _check_subtree(account: Account, new_subtree_path: str) -> None:
    """No live call anywhere in the subtree, and every new path fits its column."""
    # Read inside the move's transaction, the rows locked on PostgreSQL: an authorization
    # reserving meanwhile either committed before (its live call is seen here) or waits.
    rows = db.session.execute(
        select(Account.live_calls, func.length(Account.tenant_path))
        .where(_subtree(account))
        .with_for_update()
    ).all()
    if any(live_calls > 0 for live_calls, _length in rows):
        raise ValidationFailed({"reseller_id": LIVE_CALLS})
    longest = max((length for _live, length in rows), default=0)
    if longest - len(account.subtree_path) + len(new_subtree_path) > PATH_LENGTH:
        raise ValidationFailed({"reseller_id": "The new owner's tree is too deep for this move."})


def move_account(actor: Account | None, account: Account, owner: Account | None, data: dict):
    """Move `account` (and its whole subtree) under `owner` (None: the admins)."""
    clean = check_move(account, owner, data)
    old_owner = account.reseller
    old_subtree = account.subtree_path
    new_path = owner.subtree_path if owner else ""
    new_subtree = f"{new_path}{account.id}/"
    before = {
        "owner": _label(old_owner),
        "rate_group": account.rate_group.name if account.rate_group else None,
        "taxes": sorted(tax.name for tax in account.taxes),
    }
    with one_writer() as writer, transaction():
        writer.acquire()
        _check_subtree(account, new_subtree)
        moved = 0
        if account.role == Role.RESELLER:
            # Every path below keeps its tail: "old subtree/rest" becomes "new subtree/rest".
            moved = db.session.execute(
                update(Account)
                .where(in_subtree(old_subtree))
                .values(
                    tenant_path=literal(new_subtree)
                    + func.substr(Account.tenant_path, len(old_subtree) + 1)
                )
                .execution_options(synchronize_session=False)
            ).rowcount
        account.reseller_id = owner.id if owner else None
        account.reseller = owner
        account.tenant_path = new_path
        account.rate_group_id = clean["rate_group"].id
        account.rate_group = clean["rate_group"]
        account.taxes = clean["taxes"]
        after = {
            "owner": _label(owner),
            "rate_group": clean["rate_group"].name,
            "taxes": sorted(tax.name for tax in clean["taxes"]),
        }
        changes = audit.diff(before, after)
        if moved:
            changes["accounts moved with it"] = [None, moved]
        audit.record(
            actor,
            "move",
            account.role.value,
            account,
            changes=changes,
            label=account.account_number,
            account=account,
        )
    db.session.expire_all()  # the subtree's rows were rewritten in SQL
    return account


def _label(owner: Account | None) -> str:
    """How an owner is named in the audit trail."""
    return f"{owner.name} ({owner.account_number})" if owner else "Admins"
