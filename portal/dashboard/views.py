"""The landing page of managers: counts of what they manage."""

from flask import render_template
from flask_login import current_user
from sqlalchemy import func, select

from portal import mail
from portal.dashboard import bp
from portal.extensions import db
from portal.models import Account, Role, Status
from portal.security import (
    MANAGERS,
    STAFF,
    roles_required,
    visible_accounts,
    visible_rate_groups,
    visible_taxes,
)


def _count(query) -> int:
    """COUNT(*) of a select."""
    return db.session.scalar(select(func.count()).select_from(query.subquery()))


@bp.route("/")
@roles_required(*MANAGERS)
def index():
    """Counts of the caller's accounts by role and status, rate groups and taxes; mail trouble."""
    accounts = visible_accounts(current_user).where(Account.id != current_user.id)
    rows = db.session.execute(
        select(Account.role, Account.status, func.count())
        .where(Account.id.in_(accounts.with_only_columns(Account.id)))
        .group_by(Account.role, Account.status)
    ).all()
    counts: dict[Role, dict[Status, int]] = {}
    for role, status, number in rows:
        counts.setdefault(role, {})[status] = number
    return render_template(
        "dashboard/index.html",
        counts=counts,
        roles=[
            r
            for r in (Role.CUSTOMER, Role.RESELLER, Role.SUBADMIN, Role.ADMIN)
            if r in counts or r in (Role.CUSTOMER, Role.RESELLER)
        ],
        rate_groups=_count(visible_rate_groups(current_user)),
        taxes=_count(visible_taxes(current_user)),
        # The staff run the operator's mail server: they see what it could not deliver.
        undeliverable=mail.undeliverable_count() if current_user.role in STAFF else 0,
    )
