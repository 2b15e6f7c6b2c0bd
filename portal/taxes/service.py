"""Tax operations."""

from decimal import Decimal

from portal.extensions import db
from portal.models import Account, Status, Tax
from portal.security import owner_id_for

PRECISION = Decimal("0.00001")


def create_tax(
    actor: Account,
    name: str,
    rate: Decimal,
    fixed_amount: Decimal,
    priority: int,
    status: Status,
) -> Tax:
    """Create a tax owned by the actor's tenant."""
    for label, value in (("rate", rate), ("fixed_amount", fixed_amount)):
        if value != value.quantize(PRECISION):
            raise ValueError(f"{label}: use at most 5 decimal places.")
    tax = Tax(
        name=name.strip(),
        rate=rate,
        fixed_amount=fixed_amount,
        priority=priority,
        status=status,
        reseller_id=owner_id_for(actor),
    )
    db.session.add(tax)
    try:
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return tax
