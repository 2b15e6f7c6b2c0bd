"""Own pages (customers; resellers' and staff's My account); every lookup is the caller's own."""

from flask import abort, current_app, flash, make_response, render_template, request, url_for
from flask_login import current_user, login_user
from flask_login.config import COOKIE_NAME

from portal.accounts.service import reset_sip_password
from portal.auth.sessions import current_session_id, sessions_of, start_session
from portal.auth.throttle import (
    password_check_counters,
    record_failure,
    retry_message,
    seconds_until_retry,
)
from portal.billing.profile import (
    issuer_key_of,
    issuer_profile,
    logo_of,
    logo_response,
    save_invoice_profile,
)
from portal.billing.profile import profile_form_data as invoice_profile_data
from portal.billing.queries import activity
from portal.calls.queries import resold_calls as resold
from portal.dashboard.figures import month_usage
from portal.htmx import is_htmx, redirect_to, render_fragment
from portal.me import bp
from portal.me.forms import (
    InvoiceProfileForm,
    PasswordForm,
    ProfileForm,
    ResellerProfileForm,
    profile_form_data,
)
from portal.me.service import (
    change_password,
    own_sip_device,
    update_profile,
)
from portal.models import Account, Role
from portal.models.profile import LOGO_MAX_BYTES
from portal.money.lists import account_list
from portal.security import roles_required
from portal.settings.service import get_setting
from portal.transactions import ValidationFailed
from portal.web import apply_errors, query_id, submit

LEDGER_PAGE = 50
# One byte more than a logo may have: enough to tell that an upload is too large.
LOGO_READ_LIMIT = LOGO_MAX_BYTES + 1


def _me() -> Account:
    """The logged-in account itself (not the proxy), the only one these pages show."""
    return current_user._get_current_object()


def _status() -> int:
    """422 for a refused form post, 200 for showing the form."""
    return 422 if request.method == "POST" else 200


@bp.route("/")
@roles_required(Role.CUSTOMER, Role.RESELLER)
def dashboard():
    """Balance, funds, this month's usage, plan, SIP devices, documents, ledger and calls."""
    me = _me()
    if me.role == Role.RESELLER:  # a reseller's own money lives on its My account page
        return redirect_to(url_for("me.account"))
    return render_template("me/dashboard.html", usage=month_usage(me), **activity(me))


@bp.route("/profile", methods=["GET", "POST"])
@roles_required(Role.CUSTOMER)
def profile():
    """Edit names, telephone, alert e-mail and the low balance alert."""
    account = _me()
    form = ProfileForm(data=None if request.method == "POST" else profile_form_data(account))
    if request.method == "POST" and submit(form, lambda data: update_profile(account, data)):
        flash("Your profile was saved.", "success")
        return redirect_to(url_for("me.profile"))
    return render_template("me/profile.html", form=form, account=account), _status()


def _password_page(template: str, done_endpoint: str, **context):
    """The password form (throttled current-password check) and the account's sessions."""
    account = _me()
    form = PasswordForm()
    min_length = get_setting("password_min_length")
    form.new_password.description = f"At least {min_length} characters, letters and digits."
    status, wait = _status(), 0
    if form.validate_on_submit():
        counters = password_check_counters(account)
        wait = seconds_until_retry(counters)
        if wait:
            # Refused before the current password is checked, as a throttled login is.
            form.old_password.errors = [retry_message(wait)]
            status = 429
        else:
            try:
                change_password(account, form.old_password.data, form.new_password.data)
            except ValidationFailed as failed:
                if "old_password" in failed.errors:
                    record_failure(counters)
                apply_errors(form, failed.errors)
            else:
                # Every session ended; this browser gets a new one (and a new remember-me
                # cookie when it had one).
                remember_name = current_app.config.get("REMEMBER_COOKIE_NAME", COOKIE_NAME)
                remember = remember_name in request.cookies
                start_session(account, remember, request.user_agent.string)
                login_user(account, remember=remember)
                flash("Your password was changed. Your other sessions were logged out.", "success")
                return redirect_to(url_for(done_endpoint))
    response = make_response(
        render_template(
            template,
            form=form,
            sessions=sessions_of(account),
            current_session=current_session_id(account),
            **context,
        ),
        status,
    )
    if wait:
        response.headers["Retry-After"] = str(wait)
    return response


@bp.route("/password", methods=["GET", "POST"])
@roles_required(Role.CUSTOMER)
def password():
    """Change the password; every other session of the account ends."""
    return _password_page("me/password.html", "me.dashboard")


@bp.route("/account", methods=["GET", "POST"])
@roles_required(Role.ADMIN, Role.SUBADMIN, Role.RESELLER)
def account():
    """Staff and resellers: the own password and sessions; a reseller also its own money."""
    me = _me()
    if me.role == Role.RESELLER:
        # What its parent bills it: the money panel of its account page, without the forms
        # (nobody posts to their own account), its documents and latest ledger entries.
        return _password_page("me/reseller_account.html", "me.account", **activity(me))
    return _password_page("me/account.html", "me.account")


@bp.route("/account/profile", methods=["GET", "POST"])
@roles_required(Role.RESELLER)
def account_profile():
    """A reseller edits its own names, company, telephone, e-mail and low balance alert."""
    account = _me()
    data = None if request.method == "POST" else profile_form_data(account)
    form = ResellerProfileForm(data=data)
    if request.method == "POST" and submit(form, lambda values: update_profile(account, values)):
        flash("Your profile was saved.", "success")
        return redirect_to(url_for("me.account_profile"))
    return render_template("me/profile.html", form=form, account=account), _status()


def _own_list(kind: str, endpoint: str):
    """One paged list of the caller's own account; back to its own account page."""
    me = _me()
    back = url_for("me.dashboard" if me.role == Role.CUSTOMER else "me.account")
    return account_list(me, kind, endpoint, {}, back)


@bp.route("/account/ledger")
@roles_required(Role.CUSTOMER, Role.RESELLER)
def ledger():
    """Every ledger entry of the caller's own account, sorted and paged."""
    return _own_list("ledger", "me.ledger")


@bp.route("/documents")
@roles_required(Role.CUSTOMER, Role.RESELLER)
def documents():
    """Every receipt and invoice of the caller's own account, sorted and paged."""
    return _own_list("documents", "me.documents")


@bp.route("/calls")
@roles_required(Role.CUSTOMER, Role.RESELLER)
def calls():
    """The calls of the caller's own account, sorted and paged."""
    return _own_list("calls", "me.calls")


@bp.route("/account/calls")
@roles_required(Role.RESELLER)
def resold_calls():
    """The rated calls of the reseller's subtree: what it was paid, what it paid, the margin."""
    account = _me()
    rows, next_before = resold(account, query_id("before"), LEDGER_PAGE)
    return render_template(
        "me/resold_calls.html", account=account, rows=rows, next_before=next_before
    )


@bp.route("/invoice-profile", methods=["GET", "POST"])
@roles_required(Role.ADMIN, Role.RESELLER)
def invoice_profile():
    """The issuer's own invoice profile: a reseller's, or for an admin the operator's."""
    me = _me()
    issuer = issuer_key_of(me)
    form = InvoiceProfileForm(
        data=None if request.method == "POST" else invoice_profile_data(issuer)
    )
    if form.validate_on_submit():
        upload = form.logo.data
        content = upload.read(LOGO_READ_LIMIT) if upload else None
        try:
            save_invoice_profile(me, form.service_data(), content, form.remove_logo.data)
        except ValidationFailed as failed:
            apply_errors(form, failed.errors)
        else:
            flash("Your invoice profile was saved.", "success")
            return redirect_to(url_for("me.invoice_profile"))
    return render_template(
        "me/invoice_profile.html", form=form, profile=issuer_profile(issuer)
    ), _status()


@bp.route("/invoice-profile/logo")
@roles_required(Role.ADMIN, Role.RESELLER)
def invoice_profile_logo():
    """The issuer's own logo, as its documents show it."""
    logo = logo_of(issuer_key_of(_me()))
    if logo is None:
        abort(404)
    return logo_response(*logo)


@bp.route("/sip-devices/<int:device_id>/reset-password", methods=["POST"])
@roles_required(Role.CUSTOMER)
def reset_device_password(device_id: int):
    """Give one of the customer's own SIP devices a new random password."""
    device = own_sip_device(_me(), device_id)
    if device is None:
        abort(404)
    reset_sip_password(current_user, device)
    if is_htmx():
        return render_fragment("me/_sip_device_row.html", device=device, was_reset=True)
    flash(f"The SIP password of {device.username} was reset.", "success")
    return redirect_to(url_for("me.dashboard"))
