"""Audit log: newest first, filterable by account number, keyset-paginated."""

from flask import request
from sqlalchemy import select

from portal.auditlog import bp
from portal.extensions import db
from portal.htmx import render_page_or_fragment
from portal.models import Account, AuditEntry, Role
from portal.security import roles_required
from portal.web import newest_first, query_id

PER_PAGE = 50


@bp.route("/")
@roles_required(Role.ADMIN)
def index():
    """Who changed what, when; ?account=<number> keeps one account's entries."""
    number = "".join(ch for ch in request.args.get("account", "") if ch.isdigit())[:20]
    before = query_id("before")
    query = select(AuditEntry)
    account = None
    if number:
        account = db.session.scalar(select(Account).where(Account.account_number == number))
        query = query.where(AuditEntry.account_id == (account.id if account else -1))
    entries, next_before = newest_first(query, AuditEntry.id, before, PER_PAGE)
    return render_page_or_fragment(
        "auditlog/index.html",
        "auditlog/_entries.html",
        entries=entries,
        next_before=next_before,
        number=number,
        account=account,
        before=before,
    )
