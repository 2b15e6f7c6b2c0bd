"""Account pages: list with live search, create, show, edit, deactivate, delete, htmx partials."""

from flask import abort, current_app, flash, render_template, request, url_for
from flask_login import current_user

from portal.accounts import bp
from portal.accounts.forms import CustomerForm, choices, edit_form_data
from portal.accounts.queries import search_customers
from portal.accounts.service import (
    ValidationFailed,
    check_customer,
    create_customer,
    expiry_for,
    new_account_number,
    new_pin,
    set_status,
    soft_delete,
    update_customer,
)
from portal.htmx import redirect_to, render_fragment, render_page_or_fragment
from portal.rules.identifiers import NumberSpaceExhausted, generate_password
from portal.security import (
    MANAGERS,
    get_account_or_404,
    roles_required,
    visible_customers,
)
from portal.settings.service import get_settings
from portal.web import apply_errors, posted_status

DEFAULT_FIELDS = {
    "country": "default_country",
    "timezone": "default_timezone",
    "currency": "default_currency",
    "valid_days": "default_valid_days",
    "create_sip_device": "default_create_sip_device",
    "account_type": "default_account_type",
    "billing_schedule": "default_billing_schedule",
}


def _customer_or_404(account_id: int):
    """A customer the caller may see, or 404."""
    account = get_account_or_404(current_user, account_id)
    if account.role.value != "customer":
        abort(404)
    return account


def _expiry_text(valid_days) -> str:
    """The expiry date a number of valid days gives, for display."""
    if not isinstance(valid_days, int) or not 1 <= valid_days <= 36500:
        return ""
    return expiry_for(valid_days).strftime("%Y-%m-%d")


def _apply_defaults(form: CustomerForm) -> None:
    """Pre-fill a new account from the global configuration's defaults."""
    defaults = get_settings(DEFAULT_FIELDS.values())
    for field, key in DEFAULT_FIELDS.items():
        form[field].data = defaults[key]
    # One rate group in the default currency: choose it, so the form is ready to save.
    matching = [group for group in form.rate_groups if group.currency == form.currency.data]
    if len(matching) == 1:
        form.rate_group_id.data = str(matching[0].id)


@bp.route("/")
@roles_required(*MANAGERS)
def index():
    """List the caller's customers, newest first, with search as you type."""
    query = request.args.get("q", "").strip()[:100]
    before = request.args.get("before", type=int)
    page = search_customers(
        visible_customers(current_user),
        query,
        before,
        current_app.config["ACCOUNTS_PER_PAGE"],
    )
    return render_page_or_fragment(
        "accounts/index.html", "accounts/_table.html", page=page, query=query
    )


@bp.route("/new", methods=["GET", "POST"])
@roles_required(*MANAGERS)
def new():
    """Show and submit the Create Customer Account form."""
    form = CustomerForm()
    form.load_choices(current_user)
    if request.method == "GET":
        try:
            form.account_number.data = new_account_number()
        except NumberSpaceExhausted as exhausted:
            form.account_number.errors = [str(exhausted)]
        form.password.data = generate_password()
        form.pin.data = new_pin()
        form.billing_day.data = 1
        _apply_defaults(form)
    else:
        if form.validate():
            try:
                created = create_customer(current_user, form.service_data())
            except ValidationFailed as failed:
                apply_errors(form, failed.errors)
            else:
                flash(f"Account {created.account.account_number} created.", "success")
                response = current_app.make_response(
                    render_template(
                        "accounts/show.html",
                        account=created.account,
                        password=created.password,
                        sip_password=created.sip_password,
                    )
                )
                # The secrets are shown in this answer only; the address bar shows the
                # account page so a reload shows the account without them.
                response.headers["HX-Push-Url"] = url_for(
                    "accounts.show", account_id=created.account.id
                )
                return response
        else:
            apply_errors(form, check_customer(current_user, form.service_data()))
    form.first_used.data = "Not used yet"
    form.expiry_date.data = _expiry_text(form.valid_days.data)
    status = 422 if request.method == "POST" else 200
    return render_template("accounts/form.html", form=form, account=None), status


@bp.route("/<int:account_id>")
@roles_required(*MANAGERS)
def show(account_id: int):
    """Show one account."""
    account = _customer_or_404(account_id)
    return render_template("accounts/show.html", account=account, password=None, sip_password=None)


@bp.route("/<int:account_id>/edit", methods=["GET", "POST"])
@roles_required(*MANAGERS)
def edit(account_id: int):
    """Edit an account; Account Number and First Used cannot change."""
    account = _customer_or_404(account_id)
    form = CustomerForm(data=None if request.method == "POST" else edit_form_data(account))
    form.load_choices(current_user)
    # A deactivated rate group stays visible on the account that still uses it.
    offered = {choice.value for choice in form.rate_group_id.choices}
    if account.rate_group and str(account.rate_group_id) not in offered:
        form.rate_group_id.choices += choices([(account.rate_group_id, account.rate_group.name)])
    form.account_number.data = account.account_number
    form.account_number.render_kw = {"readonly": True}
    if request.method == "POST":
        if form.validate():
            try:
                update_customer(current_user, account, form.service_data())
            except ValidationFailed as failed:
                apply_errors(form, failed.errors)
            else:
                flash("Account saved.", "success")
                return redirect_to(url_for("accounts.show", account_id=account.id))
        else:
            apply_errors(form, check_customer(current_user, form.service_data(), account))
    form.first_used.data = (
        account.first_used.strftime("%Y-%m-%d %H:%M") if account.first_used else "Not used yet"
    )
    if form.valid_days.data == account.valid_days and account.expiry_date:
        form.expiry_date.data = account.expiry_date.strftime("%Y-%m-%d")
    else:
        form.expiry_date.data = _expiry_text(form.valid_days.data)
    status = 422 if request.method == "POST" else 200
    return render_template("accounts/form.html", form=form, account=account), status


@bp.route("/<int:account_id>/status", methods=["POST"])
@roles_required(*MANAGERS)
def change_status(account_id: int):
    """Activate or deactivate an account."""
    account = _customer_or_404(account_id)
    status = posted_status()
    set_status(account, status)
    flash(f"Account {account.account_number} is now {status.value}.", "success")
    return redirect_to(url_for("accounts.show", account_id=account.id))


@bp.route("/<int:account_id>/delete", methods=["POST"])
@roles_required(*MANAGERS)
def delete(account_id: int):
    """Soft-delete an account; its number is never reused."""
    account = _customer_or_404(account_id)
    soft_delete(account)
    flash(f"Account {account.account_number} deleted.", "success")
    return redirect_to(url_for("accounts.index"))


@bp.route("/partials/billing-day")
@roles_required(*MANAGERS)
def billing_day_partial():
    """The Billing Day field, present only for a monthly schedule."""
    form = CustomerForm(formdata=request.args, meta={"csrf": False})
    if not form.billing_day.raw_data:  # the field was hidden (Daily): offer the 1st again
        form.billing_day.data = 1
    return render_fragment("accounts/_billing_day.html", form=form)


@bp.route("/partials/credit-limit")
@roles_required(*MANAGERS)
def credit_limit_partial():
    """The Credit Limit field, present only for postpaid accounts."""
    form = CustomerForm(formdata=request.args, meta={"csrf": False})
    return render_fragment("accounts/_credit_limit.html", form=form)


@bp.route("/partials/expiry")
@roles_required(*MANAGERS)
def expiry_partial():
    """The Expiry Date that the entered Valid Days give."""
    form = CustomerForm(formdata=request.args, meta={"csrf": False})
    form.expiry_date.data = _expiry_text(form.valid_days.data)
    return render_fragment("accounts/_expiry.html", form=form)


@bp.route("/partials/generate/<any(account_number, password, pin):what>")
@roles_required(*MANAGERS)
def generate(what: str):
    """A freshly generated account number, password or PIN input (the regenerate controls)."""
    form = CustomerForm(formdata=None, meta={"csrf": False})
    try:
        value = {
            "account_number": new_account_number,
            "password": generate_password,
            "pin": new_pin,
        }[what]()
    except NumberSpaceExhausted as exhausted:
        form[what].errors = [str(exhausted)]
        value = ""
    form[what].data = value
    return render_fragment("accounts/_generated.html", field=form[what])
