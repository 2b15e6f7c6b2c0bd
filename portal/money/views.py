"""Invoices and Payments pages, and the paged ledger, documents and calls of one account."""

from flask import render_template, request, url_for
from flask_login import current_user, login_required

from portal.htmx import is_htmx
from portal.models import Account, Role, utcnow
from portal.money import bp
from portal.money.forms import InvoiceFilterForm, ReportFilterForm
from portal.money.lists import account_list
from portal.money.queries import find_reseller, invoices, payments
from portal.rules.times import local_day
from portal.security import MANAGERS, get_account_or_404, roles_required


def _me() -> Account:
    """The logged-in account itself (not the proxy)."""
    return current_user._get_current_object()


def _filters(form: ReportFilterForm) -> tuple[bool, dict, Account | None]:
    """Validate a report's filters: (valid, their values, the reseller asked for)."""
    me = _me()
    if me.role == Role.CUSTOMER:  # a customer's reports hold its own account only
        del form.account
        del form.reseller
    valid = form.validate()
    reseller = None
    number = (form.reseller.data or "").strip() if "reseller" in form else ""
    if valid and number:
        reseller = find_reseller(me, number)
        if reseller is None:
            form.reseller.errors = ["No reseller with this number among the accounts you see."]
            valid = False
    data = dict(form.data)
    if data.get("account"):
        data["account"] = data["account"].strip()
    return valid, data, reseller


def _report_page(template: str, form: ReportFilterForm, valid: bool, report, **context):
    """The report page, or with its filters' errors (422; 200 for an htmx swap)."""
    status = 200 if valid or is_htmx() else 422
    return render_template(template, form=form, report=report, **context), status


@bp.route("/invoices/")
@login_required
def invoices_index():
    """Invoices the viewer may see, filtered, sorted and paged, with totals per currency."""
    form = InvoiceFilterForm(formdata=request.args)
    valid, filters, reseller = _filters(form)
    # Overdue from the day after the due date, as the viewer's own calendar shows today.
    today = local_day(utcnow(), _me().timezone)
    report = invoices(_me(), filters, reseller, today) if valid else None
    return _report_page("money/invoices.html", form, valid, report, today=today)


@bp.route("/payments/")
@login_required
def payments_index():
    """Payments and refills the viewer may see, filtered, sorted and paged, totals per currency."""
    form = ReportFilterForm(formdata=request.args)
    valid, filters, reseller = _filters(form)
    report = payments(_me(), filters, reseller, _me().timezone) if valid else None
    return _report_page("money/payments.html", form, valid, report)


@bp.route("/accounts/<int:account_id>/ledger")
@roles_required(*MANAGERS)
def account_ledger(account_id: int):
    """Every ledger entry of an account the caller manages, a page at a time."""
    return _managed_list(account_id, "ledger")


@bp.route("/accounts/<int:account_id>/documents")
@roles_required(*MANAGERS)
def account_documents(account_id: int):
    """Every receipt and invoice of an account the caller manages, a page at a time."""
    return _managed_list(account_id, "documents")


@bp.route("/accounts/<int:account_id>/calls")
@roles_required(*MANAGERS)
def account_calls(account_id: int):
    """The calls of an account the caller manages, a page at a time."""
    return _managed_list(account_id, "calls")


def _managed_list(account_id: int, kind: str):
    """A list of an account the caller may see (another tenant's is not found)."""
    account = get_account_or_404(current_user, account_id)
    return account_list(
        account,
        kind,
        f"money.account_{kind}",
        {"account_id": account.id},
        url_for("accounts.show", account_id=account.id),
    )
