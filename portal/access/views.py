"""Blocked prefixes and IP trunks on the account and rate group pages."""

from flask import abort, flash, url_for
from flask_login import current_user

from portal.access import bp
from portal.access.forms import BlockedPrefixForm, IpTrunkForm
from portal.access.service import (
    account_blocked_prefixes,
    account_trunks,
    add_trunk,
    block_account_prefix,
    block_group_prefix,
    group_blocked_prefixes,
    remove_trunk,
    unblock_account_prefix,
    unblock_group_prefix,
)
from portal.extensions import db
from portal.htmx import is_htmx, redirect_to, render_page_or_fragment
from portal.models import AccountBlockedPrefix, IpTrunk, RateGroupBlockedPrefix, Role
from portal.security import MANAGERS, get_account_or_404, get_rate_group_or_404, roles_required
from portal.web import submit

CALLERS = (Role.CUSTOMER, Role.RESELLER)


@bp.app_template_global()
def blocked_prefixes_of(account):
    """The account's blocked prefixes (templates/accounts/_blocked_prefixes.html)."""
    return account_blocked_prefixes(account)


@bp.app_template_global()
def ip_trunks_of(account):
    """The account's IP trunks (templates/accounts/_ip_trunks.html)."""
    return account_trunks(account)


@bp.app_template_global()
def group_blocked_prefixes_of(group):
    """The rate group's blocked prefixes (templates/tariffs/_blocked_prefixes.html)."""
    return group_blocked_prefixes(group)


@bp.app_template_global()
def blocked_prefix_form():
    """An empty add-a-blocked-prefix form."""
    return BlockedPrefixForm(formdata=None)


@bp.app_template_global()
def ip_trunk_form():
    """An empty add-an-IP-trunk form."""
    return IpTrunkForm(formdata=None)


def _caller_or_404(account_id: int):
    """A customer or reseller the user manages; its own account's rules are its parent's."""
    account = get_account_or_404(current_user, account_id)
    if account.role not in CALLERS:
        abort(404)
    if account.id == current_user.id:
        abort(403)
    return account


def _account_answer(account, fragment: str, form_name: str, form=None, saved: str = ""):
    """The partial again (htmx), else the account page; a refused form on a page of its own."""
    if saved and not is_htmx():
        flash(saved, "success")
        return redirect_to(url_for("accounts.show", account_id=account.id))
    context = {"account": account, form_name: form, "notice": saved}
    response = render_page_or_fragment(
        "access/account_part.html", fragment, part=fragment, **context
    )
    if not is_htmx():
        response.status_code = 422
    return response


@bp.route("/accounts/<int:account_id>/blocked-prefixes", methods=["POST"])
@roles_required(*MANAGERS)
def block_prefix(account_id: int):
    """Block a prefix for the account."""
    account = _caller_or_404(account_id)
    form = BlockedPrefixForm()
    blocked = submit(form, lambda data: block_account_prefix(current_user, account, data["prefix"]))
    if blocked is None:
        return _account_answer(account, "accounts/_blocked_prefixes.html", "blocked_form", form)
    return _account_answer(
        account,
        "accounts/_blocked_prefixes.html",
        "blocked_form",
        saved=f"Calls to {blocked.prefix}… are now refused.",
    )


@bp.route("/accounts/<int:account_id>/blocked-prefixes/<int:blocked_id>/delete", methods=["POST"])
@roles_required(*MANAGERS)
def unblock_prefix(account_id: int, blocked_id: int):
    """Allow calls to a blocked prefix of the account again."""
    account = _caller_or_404(account_id)
    blocked = db.session.get(AccountBlockedPrefix, blocked_id)
    if blocked is None or blocked.account_id != account.id:
        abort(404)
    prefix = blocked.prefix
    unblock_account_prefix(current_user, blocked)
    return _account_answer(
        account,
        "accounts/_blocked_prefixes.html",
        "blocked_form",
        saved=f"Calls to {prefix}… are allowed again.",
    )


@bp.route("/accounts/<int:account_id>/ip-trunks", methods=["POST"])
@roles_required(*MANAGERS)
def add_ip_trunk(account_id: int):
    """Add an address or range to the account's IP trunks."""
    account = _caller_or_404(account_id)
    form = IpTrunkForm()
    trunk = submit(form, lambda data: add_trunk(current_user, account, data))
    if trunk is None:
        return _account_answer(account, "accounts/_ip_trunks.html", "trunk_form", form)
    return _account_answer(
        account, "accounts/_ip_trunks.html", "trunk_form", saved=f"IP trunk {trunk.network} added."
    )


@bp.route("/accounts/<int:account_id>/ip-trunks/<int:trunk_id>/delete", methods=["POST"])
@roles_required(*MANAGERS)
def delete_ip_trunk(account_id: int, trunk_id: int):
    """Remove one of the account's IP trunks."""
    account = _caller_or_404(account_id)
    trunk = db.session.get(IpTrunk, trunk_id)
    if trunk is None or trunk.account_id != account.id:
        abort(404)
    network = trunk.network
    remove_trunk(current_user, trunk)
    return _account_answer(
        account, "accounts/_ip_trunks.html", "trunk_form", saved=f"IP trunk {network} removed."
    )


def _group_answer(group, form=None, saved: str = ""):
    """The rate group's blocked prefixes again (htmx), else its page; a refused form alone."""
    if saved and not is_htmx():
        flash(saved, "success")
        return redirect_to(url_for("tariffs.show", group_id=group.id))
    fragment = "tariffs/_blocked_prefixes.html"
    context = {"group": group, "blocked_form": form, "notice": saved, "part": fragment}
    response = render_page_or_fragment("access/group_part.html", fragment, **context)
    if not is_htmx():
        response.status_code = 422
    return response


@bp.route("/tariff/rate-groups/<int:group_id>/blocked-prefixes", methods=["POST"])
@roles_required(*MANAGERS)
def block_group(group_id: int):
    """Block a prefix for every account of the rate group."""
    group = get_rate_group_or_404(current_user, group_id)
    form = BlockedPrefixForm()
    blocked = submit(form, lambda data: block_group_prefix(current_user, group, data["prefix"]))
    if blocked is None:
        return _group_answer(group, form)
    return _group_answer(group, saved=f"Calls to {blocked.prefix}… are now refused.")


@bp.route(
    "/tariff/rate-groups/<int:group_id>/blocked-prefixes/<int:blocked_id>/delete", methods=["POST"]
)
@roles_required(*MANAGERS)
def unblock_group(group_id: int, blocked_id: int):
    """Allow the rate group's calls to a blocked prefix again."""
    group = get_rate_group_or_404(current_user, group_id)
    blocked = db.session.get(RateGroupBlockedPrefix, blocked_id)
    if blocked is None or blocked.rate_group_id != group.id:
        abort(404)
    prefix = blocked.prefix
    unblock_group_prefix(current_user, blocked)
    return _group_answer(group, saved=f"Calls to {prefix}… are allowed again.")
