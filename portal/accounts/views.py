"""Account pages for every role: lists with live search, create, show, edit, status, delete."""

from flask import abort, current_app, flash, render_template, request, url_for
from flask_login import current_user

from portal import mail
from portal.accounts import bp
from portal.accounts.forms import FORMS, choices, edit_form_data
from portal.accounts.queries import search_accounts
from portal.accounts.service import (
    check_account,
    create_account,
    expiry_for,
    form_defaults,
    new_account_number,
    new_pin,
    reset_sip_password,
    set_status,
    soft_delete,
    update_account,
)
from portal.billing.queries import money_context
from portal.extensions import db
from portal.htmx import redirect_to, render_fragment, render_page_or_fragment
from portal.ids import to_id
from portal.models import Account, Role
from portal.rules.identifiers import NumberSpaceExhausted, generate_password
from portal.security import (
    CREATABLE,
    MANAGERS,
    STAFF,
    get_account_or_404,
    get_sip_device_or_404,
    roles_required,
    visible_accounts,
    visible_resellers,
)
from portal.templating import datetime_text, local_date_text
from portal.transactions import ValidationFailed
from portal.web import apply_errors, posted_status, query_id

KINDS = {
    "customer": Role.CUSTOMER,
    "reseller": Role.RESELLER,
    "subadmin": Role.SUBADMIN,
    "admin": Role.ADMIN,
}
TITLES = {
    Role.CUSTOMER: "Create Customer Account",
    Role.RESELLER: "Create Reseller",
    Role.SUBADMIN: "Create Sub-admin",
    Role.ADMIN: "Create Admin",
}


def _expiry_text(valid_days) -> str:
    """The expiry date a number of valid days gives, for display."""
    if not isinstance(valid_days, int) or not 1 <= valid_days <= 36500:
        return ""
    return local_date_text(expiry_for(valid_days))


def _apply_defaults(form) -> None:
    """Pre-fill a new account from the global configuration's and the form's defaults."""
    for field, value in form_defaults().items():
        if field in form:
            form[field].data = value
    if "rate_group_id" in form:
        # One rate group in the default currency: choose it, so the form is ready to save.
        matching = [g for g in form.rate_groups if g.currency == form.currency.data]
        if len(matching) == 1:
            form.rate_group_id.data = str(matching[0].id)


def _chosen_owner_id(raw) -> int | None:
    """The reseller staff chose on the form, if it is one they may use (else the admins)."""
    if current_user.role not in STAFF:
        return current_user.id
    reseller_id = to_id(raw)
    if reseller_id is None:
        return None
    found = db.session.scalar(
        visible_resellers(current_user)
        .where(Account.id == reseller_id)
        .with_only_columns(Account.id)
    )
    return found


def _list(roles: tuple[Role, ...], title: str, kinds: tuple[str, ...]):
    """One list page of accounts of `roles`, newest first, searchable, keyset-paginated."""
    query = request.args.get("q", "").strip()[:100]
    before = query_id("before")
    page = search_accounts(
        visible_accounts(current_user).where(Account.role.in_(roles)),
        query,
        before,
        current_app.config["ACCOUNTS_PER_PAGE"],
    )
    creatable = [k for k in kinds if KINDS[k] in CREATABLE[current_user.role]]
    return render_page_or_fragment(
        "accounts/index.html",
        "accounts/_table.html",
        page=page,
        query=query,
        title=title,
        kinds=creatable,
        titles=TITLES,
        kind_roles=KINDS,
        list_endpoint=request.endpoint,
        staff_list=Role.ADMIN in roles,
    )


@bp.route("/")
@roles_required(*MANAGERS)
def index():
    """Customer accounts."""
    return _list((Role.CUSTOMER,), "Customer accounts", ("customer",))


@bp.route("/resellers/")
@roles_required(*MANAGERS)
def resellers():
    """Resellers (a reseller sees its sub-resellers)."""
    return _list((Role.RESELLER,), "Resellers", ("reseller",))


@bp.route("/staff/")
@roles_required(Role.ADMIN)
def staff():
    """Admins and sub-admins (admins only)."""
    return _list((Role.ADMIN, Role.SUBADMIN), "Admins and sub-admins", ("admin", "subadmin"))


def _render_form(form, role: Role, account: Account | None, status: int):
    """The create/edit page of an account of `role`."""
    if "first_used" in form:
        used = account.first_used if account else None
        form.first_used.data = datetime_text(used) if used else "Not used yet"
        if account and form.valid_days.data == account.valid_days and account.expiry_date:
            form.expiry_date.data = local_date_text(account.expiry_date)
        else:
            form.expiry_date.data = _expiry_text(form.valid_days.data)
    template = "accounts/staff_form.html" if role in STAFF else "accounts/form.html"
    title = f"Edit account {account.account_number}" if account else TITLES[role]
    return render_template(template, form=form, account=account, role=role, title=title), status


@bp.route("/new", defaults={"kind": "customer"}, methods=["GET", "POST"])
@bp.route("/new/<any(reseller, subadmin, admin):kind>", methods=["GET", "POST"])
@roles_required(*MANAGERS)
def new(kind: str):
    """Show and submit the create form of a customer, reseller, sub-admin or admin."""
    role = KINDS[kind]
    if role not in CREATABLE[current_user.role]:
        abort(403)
    form = FORMS[role]()
    form.load_choices(current_user, _chosen_owner_id(request.form.get("reseller_id")))
    if request.method == "GET":
        try:
            form.account_number.data = new_account_number()
        except NumberSpaceExhausted as exhausted:
            form.account_number.errors = [str(exhausted)]
        form.password.data = generate_password()
        if "pin" in form:
            form.pin.data = new_pin()
        _apply_defaults(form)
        return _render_form(form, role, None, 200)
    if form.validate():
        try:
            created = create_account(current_user, role, form.service_data())
        except ValidationFailed as failed:
            apply_errors(form, failed.errors)
        else:
            mail.deliver_now(created.mail)
            flash(f"Account {created.account.account_number} created.", "success")
            response = current_app.make_response(
                _render_show(created.account, created.password, created.sip_password)
            )
            # The secrets are shown in this answer only; the address bar shows the account
            # page, so a reload shows the account without them.
            response.headers["HX-Push-Url"] = url_for(
                "accounts.show", account_id=created.account.id
            )
            return response
    else:
        apply_errors(form, check_account(current_user, role, form.service_data()))
    return _render_form(form, role, None, 422)


def _render_show(account: Account, password=None, sip_password=None) -> str:
    """The account page (with its money panel for customers and resellers)."""
    context = {"account": account}
    if account.role in (Role.CUSTOMER, Role.RESELLER):
        context = money_context(account)
    return render_template(
        "accounts/show.html", password=password, sip_password=sip_password, **context
    )


@bp.route("/<int:account_id>")
@roles_required(*MANAGERS)
def show(account_id: int):
    """Show one account."""
    return _render_show(get_account_or_404(current_user, account_id))


@bp.route("/<int:account_id>/edit", methods=["GET", "POST"])
@roles_required(*MANAGERS)
def edit(account_id: int):
    """Edit an account; its number, owner and First Used never change."""
    account = get_account_or_404(current_user, account_id)
    form = FORMS[account.role](data=None if request.method == "POST" else edit_form_data(account))
    if "reseller_id" in form:
        del form.reseller_id
    form.load_choices(current_user, account.reseller_id)
    if "rate_group_id" in form:
        # A deactivated rate group stays visible on the account that still uses it.
        offered = {choice.value for choice in form.rate_group_id.choices}
        if account.rate_group and str(account.rate_group_id) not in offered:
            form.rate_group_id.choices += choices(
                [(account.rate_group_id, account.rate_group.name)]
            )
    form.account_number.data = account.account_number
    form.account_number.render_kw = {"readonly": True}
    if request.method == "GET":
        return _render_form(form, account.role, account, 200)
    if form.validate():
        try:
            update_account(current_user, account, form.service_data())
        except ValidationFailed as failed:
            apply_errors(form, failed.errors)
        else:
            flash("Account saved.", "success")
            return redirect_to(url_for("accounts.show", account_id=account.id))
    else:
        apply_errors(form, check_account(current_user, account.role, form.service_data(), account))
    return _render_form(form, account.role, account, 422)


def _other_account_or_404(account_id: int) -> Account:
    """An account the caller may manage, never the caller itself (no locking yourself out)."""
    account = get_account_or_404(current_user, account_id)
    if account.id == current_user.id:
        abort(403)
    return account


@bp.route("/<int:account_id>/status", methods=["POST"])
@roles_required(*MANAGERS)
def change_status(account_id: int):
    """Activate or deactivate an account."""
    account = _other_account_or_404(account_id)
    status = posted_status()
    set_status(current_user, account, status)
    flash(f"Account {account.account_number} is now {status.value}.", "success")
    return redirect_to(url_for("accounts.show", account_id=account.id))


@bp.route("/<int:account_id>/delete", methods=["POST"])
@roles_required(*MANAGERS)
def delete(account_id: int):
    """Soft-delete an account; its number is never reused."""
    account = _other_account_or_404(account_id)
    soft_delete(current_user, account)
    flash(f"Account {account.account_number} deleted.", "success")
    listing = {Role.CUSTOMER: "accounts.index", Role.RESELLER: "accounts.resellers"}
    return redirect_to(url_for(listing.get(account.role, "accounts.staff")))


@bp.route("/<int:account_id>/sip-devices/<int:device_id>/reset-password", methods=["POST"])
@roles_required(*MANAGERS)
def reset_device_password(account_id: int, device_id: int):
    """Give one of the account's SIP devices a new password."""
    device = get_sip_device_or_404(current_user, device_id)
    if device.account_id != account_id:
        abort(404)
    reset_sip_password(current_user, device)
    flash(f"New SIP password set for {device.username}.", "success")
    return redirect_to(url_for("accounts.show", account_id=account_id))


@bp.route("/partials/owner")
@roles_required(*STAFF)
def owner_partial():
    """The Rate Group select and Tax boxes of the chosen reseller (htmx, swapped out of band)."""
    form = FORMS[Role.CUSTOMER](formdata=None, meta={"csrf": False})
    form.load_choices(current_user, _chosen_owner_id(request.args.get("reseller_id")))
    return render_fragment("accounts/_owner_choices.html", form=form)


@bp.route("/partials/billing-day")
@roles_required(*MANAGERS)
def billing_day_partial():
    """The Billing Day field, present only for a monthly schedule."""
    form = FORMS[Role.CUSTOMER](formdata=request.args, meta={"csrf": False})
    if not form.billing_day.raw_data:  # the field was hidden (Daily): offer the 1st again
        form.billing_day.data = 1
    return render_fragment("accounts/_billing_day.html", form=form)


@bp.route("/partials/credit-limit")
@roles_required(*MANAGERS)
def credit_limit_partial():
    """The Credit Limit field, present only for postpaid accounts."""
    form = FORMS[Role.CUSTOMER](formdata=request.args, meta={"csrf": False})
    return render_fragment("accounts/_credit_limit.html", form=form)


@bp.route("/partials/expiry")
@roles_required(*MANAGERS)
def expiry_partial():
    """The Expiry Date that the entered Valid Days give."""
    form = FORMS[Role.CUSTOMER](formdata=request.args, meta={"csrf": False})
    form.expiry_date.data = _expiry_text(form.valid_days.data)
    return render_fragment("accounts/_expiry.html", form=form)


@bp.route("/partials/generate/<any(account_number, password, pin):what>")
@roles_required(*MANAGERS)
def generate(what: str):
    """A freshly generated account number, password or PIN input (the regenerate controls)."""
    form = FORMS[Role.CUSTOMER](formdata=None, meta={"csrf": False})
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
