"""Tax operations: create, edit, (de)activate; the arithmetic lives in rules.tax."""

from decimal import Decimal

from portal import audit
from portal.extensions import db
from portal.models import Account, Status, Tax
from portal.rules.currency import minor_units
from portal.rules.money import parse_amount
from portal.rules.tax import TaxBreakdown, tax_lines
from portal.security import owner_id_for
from portal.transactions import ValidationFailed, transaction

TAX_FIELDS = ("name", "rate", "fixed_amount", "priority", "status")


def _amount(value, field: str, maximum: Decimal, errors: dict[str, str]) -> Decimal | None:
    """An amount from 0 to `maximum`, or None with an error on `field`."""
    amount, error = parse_amount(value, maximum=maximum)
    if error:
        errors[field] = error
    return amount


def clean_tax(data: dict) -> dict:
    """Validate a tax's fields or raise ValidationFailed."""
    errors: dict[str, str] = {}
    name = str(data.get("name") or "").strip()
    if not name:
        errors["name"] = "This field is required."
    elif len(name) > 100:
        errors["name"] = "At most 100 characters."
    rate = _amount(data.get("rate"), "rate", Decimal(100), errors)
    fixed = _amount(data.get("fixed_amount"), "fixed_amount", Decimal(1000000), errors)
    priority = data.get("priority")
    if not isinstance(priority, int) or isinstance(priority, bool) or not 1 <= priority <= 100:
        errors["priority"] = "Must be between 1 and 100."
    try:
        status = Status(data.get("status"))
    except ValueError:
        errors["status"] = "Choose Active or Inactive."
        status = None
    if errors:
        raise ValidationFailed(errors)
    return {
        "name": name,
        "rate": rate,
        "fixed_amount": fixed,
        "priority": priority,
        "status": status,
    }


def create_tax(actor: Account, data: dict) -> Tax:
    """Create a tax owned by the actor's tenant."""
    tax = Tax(reseller_id=owner_id_for(actor), **clean_tax(data))
    with transaction():
        db.session.add(tax)
        db.session.flush()
        changes = {f: [None, v] for f, v in audit.snapshot(tax, TAX_FIELDS).items()}
        audit.record(actor, "create", "tax", tax, changes=changes)
    return tax


def update_tax(actor: Account | None, tax: Tax, data: dict) -> Tax:
    """Change a tax (accounts that have it keep it)."""
    values = clean_tax(data)
    before = audit.snapshot(tax, TAX_FIELDS)
    with transaction():
        for field, value in values.items():
            setattr(tax, field, value)
        changes = audit.diff(before, audit.snapshot(tax, TAX_FIELDS))
        if changes:
            audit.record(actor, "update", "tax", tax, changes=changes)
    return tax


def set_tax_status(actor: Account | None, tax: Tax, status: Status) -> None:
    """Activate or deactivate: an inactive tax is not offered for new accounts."""
    with transaction():
        old = tax.status
        tax.status = status
        if old != status:
            action = "activate" if status == Status.ACTIVE else "deactivate"
            audit.record(actor, action, "tax", tax, changes={"status": [old.value, status.value]})


def taxes_on(amount: Decimal, taxes, currency: str) -> TaxBreakdown:
    """The tax lines of `amount`, each rounded half-up at the minor unit of `currency`."""
    return tax_lines(amount, taxes, minor_units(currency))
