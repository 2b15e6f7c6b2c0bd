"""Payments and charges on an account, its ledger and documents; printable receipts and invoices."""

from flask import Response, abort, flash, make_response, render_template, url_for
from flask_login import current_user, login_required
from sqlalchemy import or_, select

from portal import mail
from portal.billing import bp
from portal.billing.forms import MoneyForm
from portal.billing.pdf import PDF_TYPE, document_context, pdf_filename, render_pdf
from portal.billing.profile import logo_of, logo_response
from portal.billing.queries import WITH_ALLOCATIONS, money_context
from portal.billing.service import add_charge, add_payment
from portal.extensions import db
from portal.htmx import is_htmx, redirect_to, render_fragment
from portal.models import Account, Document, Role
from portal.security import MANAGERS, get_account_or_404, roles_required, visible_accounts
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
            if not is_htmx():
                flash(f"{done}.{note}", "success")
                return redirect_to(url_for("accounts.show", account_id=account.id))
            db.session.refresh(account)
            # Not flashed: the page's layout would show it again on the next full page load.
            context = money_context(account)
            # The summary above the panel shows the same balance: swapped in the same answer.
            return render_fragment(
                "billing/_money.html", notice=f"{done}.{note}", summary=True, **context
            )
    if is_htmx():
        response = render_fragment("billing/_money.html", **money_context(account, **forms))
    else:  # without JavaScript: the whole account page, with the errors in its money panel
        response = make_response(
            render_template(
                "accounts/show.html",
                password=None,
                sip_password=None,
                **money_context(account, **forms),
            )
        )
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


def _document_or_404(document_id: int, *options) -> Document:
    """A document of an account the caller may see, or of the caller itself; else 404."""
    visible = visible_accounts(current_user).with_only_columns(Account.id)
    # A reseller is billed too, but is not inside its own subtree: it reads its own documents.
    found = db.session.scalar(
        select(Document)
        .where(
            Document.id == document_id,
            or_(Document.account_id.in_(visible), Document.account_id == current_user.id),
        )
        .options(*options)
    )
    if found is None:
        abort(404)
    return found


@bp.route("/documents/<int:document_id>")
@login_required
def document(document_id: int):
    """A printable receipt or invoice, for whoever may see its account, and for its own account."""
    found = _document_or_404(document_id, *WITH_ALLOCATIONS)
    # The issuer it was numbered for: the operator, or the reseller its account belonged to.
    context = document_context(found)
    logo = url_for("billing.document_logo", document_id=found.id)
    return render_template(
        "billing/document.html",
        logo_src=logo if context["issuer"].has_logo else None,
        zone=None,
        pdf=False,
        **context,
    )


@bp.route("/documents/<int:document_id>.pdf")
@login_required
def document_pdf(document_id: int):
    """The same receipt or invoice as a PDF download, for those who may read the document."""
    found = _document_or_404(document_id, *WITH_ALLOCATIONS)
    response = Response(render_pdf(found), mimetype=PDF_TYPE)
    response.headers["Content-Disposition"] = f"attachment; filename={pdf_filename(found)}"
    return response


@bp.route("/documents/<int:document_id>/logo")
@login_required
def document_logo(document_id: int):
    """The issuer's logo on a document: for those who may read the document, nobody else."""
    found = _document_or_404(document_id)
    logo = logo_of(found.issuer_key)
    if logo is None:
        abort(404)
    return logo_response(*logo)
