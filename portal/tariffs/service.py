"""Rate group operations."""

from sqlalchemy import exists, select

from portal.extensions import db
from portal.models import Account, RateGroup, Status
from portal.security import owned_rate_groups, owner_id_for


class DuplicateName(ValueError):
    """The tenant already has a rate group with this name."""


def create_rate_group(actor: Account, name: str, status: Status) -> RateGroup:
    """Create a rate group owned by the actor's tenant; names are unique per tenant."""
    name = name.strip()
    taken = db.session.scalar(
        select(exists(owned_rate_groups(actor).where(RateGroup.name == name).subquery()))
    )
    if taken:
        raise DuplicateName("You already have a rate group with this name.")
    group = RateGroup(name=name, status=status, reseller_id=owner_id_for(actor))
    db.session.add(group)
    try:
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return group
