"""Payments and charges on an account, its ledger and documents; printable receipts and invoices."""

from flask import abort, flash, render_template, url_for
from flask_login import current_user, login_required
from sqlalchemy import select

from portal import mail
from portal.billing import bp
from portal.billing.forms import MoneyForm
from portal.billing.queries import money_context
from portal.billing.service import add_charge, add_payment
from portal.extensions import db
from portal.htmx import is_htmx, redirect_to, render_fragment
from portal.models import Account, Document, Role
from portal.security import MANAGERS, get_account_or_404, roles_required, visible_accounts
from portal.settings.service import get_settings
from portal.transactions import ValidationFailed
from portal.web import apply_errors


def _billed_account_or_404(account_id: int) -> Account:
    """A customer or reseller the caller manages (staff accounts have no money)."""
    account = get_account_or_404(current_user, account_id)
    if account.role not in (Role.CUSTOMER, Role.RESELLER) or account.id == current_user.id:
        abort(404)
    return account


def _money_action(account_id: int, prefix: str, operation, done: str):
    """Validate the posted form, run the money operation, answer with the panel or a redirect."""
    account = _billed_account_or_404(account_id)
    form = MoneyForm(prefix=prefix)
    forms = {f"{prefix}_form": form}
    if form.validate_on_submit():
        try:
            posted = operation(current_user, account, form.amount.data, form.description.data)
        except ValidationFailed as failed:
            apply_errors(form, failed.errors)
        else:
            mail.deliver_now(posted.mail)
            note = f" {posted.document.display_number} issued." if posted.document else ""
            flash(f"{done}.{note}", "success")
            if not is_htmx():
                return redirect_to(url_for("accounts.show", account_id=account.id))
            db.session.refresh(account)
            return render_fragment("billing/_money.html", **money_context(account))
    response = render_fragment("billing/_money.html", **money_context(account, **forms))
    response.status_code = 422
    return response


@bp.route("/accounts/<int:account_id>/payments", methods=["POST"])
@roles_required(*MANAGERS)
def payment(account_id: int):
    """Add a payment or refill."""
    return _money_action(account_id, "payment", add_payment, "Payment recorded")


@bp.route("/accounts/<int:account_id>/charges", methods=["POST"])
@roles_required(*MANAGERS)
def charge(account_id: int):
    """Add a one-off charge."""
    return _money_action(account_id, "charge", add_charge, "Charge recorded")


@bp.route("/documents/<int:document_id>")
@login_required
def document(document_id: int):
    """A printable receipt or invoice, for whoever may see its account (a customer: its own)."""
    visible = visible_accounts(current_user).with_only_columns(Account.id)
    found = db.session.scalar(
        select(Document).where(Document.id == document_id, Document.account_id.in_(visible))
    )
    if found is None:
        abort(404)
    fields = ["company_name", "company_address", "company_tax_number", "company_email"]
    return render_template("billing/document.html", document=found, company=get_settings(fields))
