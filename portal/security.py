"""Role gates and tenant-scoped queries: every lookup goes through here."""

import functools

from flask import abort
from flask_login import current_user, login_required
from sqlalchemy import Select, false, select

from portal.extensions import db
from portal.models import Account, RateGroup, Role, Tax

STAFF = (Role.ADMIN, Role.SUBADMIN)
MANAGERS = (Role.ADMIN, Role.SUBADMIN, Role.RESELLER)


def roles_required(*roles: Role):
    """Allow the view only to logged-in accounts with one of `roles` (others get 403)."""

    def decorator(view):
        @functools.wraps(view)
        @login_required
        def wrapped(*args, **kwargs):
            if current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


def owner_id_for(user: Account) -> int | None:
    """The owner key of records a user creates or manages: NULL for staff, the reseller's own id."""
    return user.id if user.role == Role.RESELLER else None


def visible_accounts(user: Account) -> Select:
    """Undeleted accounts `user` may see: staff all, a reseller its own, a customer itself."""
    query = select(Account).where(Account.deleted_at.is_(None))
    if user.role in STAFF:
        return query
    if user.role == Role.RESELLER:
        return query.where(Account.reseller_id == user.id)
    return query.where(Account.id == user.id)


def visible_customers(user: Account) -> Select:
    """Customer accounts `user` may see."""
    return visible_accounts(user).where(Account.role == Role.CUSTOMER)


def get_account_or_404(user: Account, account_id: int) -> Account:
    """Load an account `user` may see, or 404 (another tenant's record is simply not found)."""
    account = db.session.scalar(visible_accounts(user).where(Account.id == account_id))
    if account is None:
        abort(404)
    return account


def _owned_by(column, user: Account):
    """SQL condition: the row belongs to the caller's tenant."""
    owner = owner_id_for(user)
    return column.is_(None) if owner is None else column == owner


def owned_rate_groups(user: Account) -> Select:
    """Rate groups owned by the caller's tenant (admins share theirs; a reseller its own)."""
    return select(RateGroup).where(_owned_by(RateGroup.reseller_id, user))


def owned_taxes(user: Account) -> Select:
    """Taxes owned by the caller's tenant."""
    return select(Tax).where(_owned_by(Tax.reseller_id, user))


def visible_rate_groups(user: Account) -> Select:
    """Rate groups `user` may see and manage: staff all, a reseller its own."""
    if user.role in STAFF:
        return select(RateGroup)
    if user.role == Role.RESELLER:
        return select(RateGroup).where(RateGroup.reseller_id == user.id)
    return select(RateGroup).where(false())


def visible_taxes(user: Account) -> Select:
    """Taxes `user` may see and manage: staff all, a reseller its own."""
    if user.role in STAFF:
        return select(Tax)
    if user.role == Role.RESELLER:
        return select(Tax).where(Tax.reseller_id == user.id)
    return select(Tax).where(false())


def get_rate_group_or_404(user: Account, rate_group_id: int) -> RateGroup:
    """Load a rate group `user` may see, or 404."""
    group = db.session.scalar(visible_rate_groups(user).where(RateGroup.id == rate_group_id))
    if group is None:
        abort(404)
    return group


def get_tax_or_404(user: Account, tax_id: int) -> Tax:
    """Load a tax `user` may see, or 404."""
    tax = db.session.scalar(visible_taxes(user).where(Tax.id == tax_id))
    if tax is None:
        abort(404)
    return tax
