"""What a new account's omitted fields become: the create form's defaults, for every caller."""

from portal.accounts.records import form_defaults
from portal.accounts.validation import new_account_number, new_pin
from portal.extensions import db
from portal.models import RateGroup, Role, Status
from portal.rules.identifiers import generate_password
from portal.security import rate_groups_of
from portal.settings.service import get_settings


def single_rate_group(owner_id: int | None, currency: str) -> RateGroup | None:
    """The owner's one active rate group in `currency`, if there is exactly one."""
    groups = list(
        db.session.scalars(
            rate_groups_of(owner_id)
            .where(RateGroup.status == Status.ACTIVE, RateGroup.currency == currency)
            .limit(2)
        )
    )
    return groups[0] if len(groups) == 1 else None


def with_defaults(role: Role, data: dict, owner_id: int | None) -> dict:
    """`data` completed as the create form pre-fills it: settings, generated secrets, rate group."""
    # NumberSpaceExhausted propagates: the caller reports it on account_number.
    filled = dict(data)
    filled.setdefault("status", Status.ACTIVE.value)
    if not filled.get("account_number"):
        filled["account_number"] = new_account_number()
    if not filled.get("password"):
        filled["password"] = generate_password()
    if role not in (Role.CUSTOMER, Role.RESELLER):
        filled.setdefault("timezone", get_settings(["default_timezone"])["default_timezone"])
        return filled
    for field, value in form_defaults().items():
        filled.setdefault(field, value)
    if role == Role.CUSTOMER and not filled.get("pin"):
        filled["pin"] = new_pin()
    if filled.get("rate_group_id") is None:
        group = single_rate_group(owner_id, str(filled.get("currency")))
        if group is not None:
            filled["rate_group_id"] = group.id
    return filled
