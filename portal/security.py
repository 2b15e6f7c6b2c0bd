"""Role gates and tenant-scoped queries: every list and every lookup goes through here."""

import functools

from flask import abort
from flask_login import current_user, login_required
from sqlalchemy import Select, and_, false, select

from portal.extensions import db
from portal.models import Account, Product, RateGroup, Role, SipDevice, Subscription, Tax

STAFF = (Role.ADMIN, Role.SUBADMIN)
MANAGERS = (Role.ADMIN, Role.SUBADMIN, Role.RESELLER)
# Which roles each role may create (and so manage).
CREATABLE = {
    Role.ADMIN: (Role.CUSTOMER, Role.RESELLER, Role.SUBADMIN, Role.ADMIN),
    Role.SUBADMIN: (Role.CUSTOMER, Role.RESELLER),
    Role.RESELLER: (Role.CUSTOMER, Role.RESELLER),
    Role.CUSTOMER: (),
}


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
    """The owner of what `user` creates: NULL (the admins) for staff, the reseller itself."""
    return user.id if user.role == Role.RESELLER else None


def in_subtree(path: str):
    """SQL condition: the account's tenant_path starts with `path` (an indexed range)."""
    # Paths hold digits and "/" only, and "/" sorts just before "0": "12/" .. "120" is exactly
    # every path starting with "12/", and a plain range uses the index on every backend.
    return and_(Account.tenant_path >= path, Account.tenant_path < path[:-1] + "0")


def visible_accounts(user: Account) -> Select:
    """Undeleted accounts `user` may see and manage."""
    # Admins: everyone. Sub-admins: customers and resellers (not admins or sub-admins).
    # Resellers: their whole subtree, sub-resellers' customers included. Customers: themselves.
    query = select(Account).where(Account.deleted_at.is_(None))
    if user.role == Role.ADMIN:
        return query
    if user.role == Role.SUBADMIN:
        return query.where(Account.role.in_((Role.CUSTOMER, Role.RESELLER)))
    if user.role == Role.RESELLER:
        return query.where(in_subtree(user.subtree_path))
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


def get_sip_device_or_404(user: Account, device_id: int) -> SipDevice:
    """Load a SIP device of an account `user` may see, or 404."""
    accounts = visible_accounts(user).with_only_columns(Account.id)
    device = db.session.scalar(
        select(SipDevice).where(SipDevice.id == device_id, SipDevice.account_id.in_(accounts))
    )
    if device is None:
        abort(404)
    return device


def _owned_by(column, owner_id: int | None):
    """SQL condition: the row belongs to `owner_id` (NULL: the admins)."""
    return column.is_(None) if owner_id is None else column == owner_id


def rate_groups_of(owner_id: int | None) -> Select:
    """Rate groups owned by one tenant (admins: NULL; a reseller: its id)."""
    return select(RateGroup).where(_owned_by(RateGroup.reseller_id, owner_id))


def taxes_of(owner_id: int | None) -> Select:
    """Taxes owned by one tenant."""
    return select(Tax).where(_owned_by(Tax.reseller_id, owner_id))


def owned_rate_groups(user: Account) -> Select:
    """Rate groups of the caller's own tenant (what it offers on its forms)."""
    return rate_groups_of(owner_id_for(user))


def owned_taxes(user: Account) -> Select:
    """Taxes of the caller's own tenant."""
    return taxes_of(owner_id_for(user))


def visible_rate_groups(user: Account) -> Select:
    """Rate groups `user` may see and manage: staff all, a reseller its own."""
    if user.role in STAFF:
        return select(RateGroup)
    if user.role == Role.RESELLER:
        return rate_groups_of(user.id)
    return select(RateGroup).where(false())


def visible_taxes(user: Account) -> Select:
    """Taxes `user` may see and manage: staff all, a reseller its own."""
    if user.role in STAFF:
        return select(Tax)
    if user.role == Role.RESELLER:
        return taxes_of(user.id)
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


def visible_resellers(user: Account) -> Select:
    """Active resellers `user` may put accounts under."""
    return visible_accounts(user).where(Account.role == Role.RESELLER)


def products_of(owner_id: int | None) -> Select:
    """Products owned by one tenant (admins: NULL; a reseller: its id)."""
    return select(Product).where(_owned_by(Product.reseller_id, owner_id))


def visible_products(user: Account) -> Select:
    """Products `user` may manage: staff the admins' ones, a reseller its own."""
    if user.role in STAFF:
        return products_of(None)
    if user.role == Role.RESELLER:
        return products_of(user.id)
    return select(Product).where(false())


def get_product_or_404(user: Account, product_id: int) -> Product:
    """Load a product `user` may manage, or 404."""
    product = db.session.scalar(visible_products(user).where(Product.id == product_id))
    if product is None:
        abort(404)
    return product


def get_subscription_or_404(user: Account, account: Account, subscription_id: int) -> Subscription:
    """Load a subscription of `account` (already scoped to `user`), or 404."""
    subscription = db.session.scalar(
        select(Subscription).where(
            Subscription.id == subscription_id, Subscription.account_id == account.id
        )
    )
    if subscription is None:
        abort(404)
    return subscription
