"""Login, logout and the landing page for each role."""

from urllib.parse import urlsplit

from flask import flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user

from portal.auth import bp
from portal.auth.forms import LoginForm
from portal.auth.service import WRONG_CREDENTIALS, authenticate
from portal.auth.sessions import end_all_sessions, end_session, start_session
from portal.auth.throttle import (
    login_counters,
    record_failure,
    retry_message,
    seconds_until_retry,
)
from portal.htmx import redirect_to
from portal.models import Role
from portal.transactions import transaction


def _safe_next(target: str | None) -> str | None:
    """Only same-site relative paths are followed after login (no open redirect)."""
    if not target or len(target) > 2000:  # longer than any address of the portal
        return None
    # A control character (CR/LF would split the Location header) or a backslash (browsers
    # read "/\\host" as "//host") is never part of a path this portal links to.
    if "\\" in target or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in target):
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


@bp.route("/")
@login_required
def home():
    """Staff and resellers land on their dashboard; a customer on its own portal."""
    if current_user.role == Role.CUSTOMER:
        return redirect(url_for("me.dashboard"))
    return redirect(url_for("dashboard.index"))


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Log in with account number or e-mail and password."""
    if current_user.is_authenticated:
        return redirect(url_for("auth.home"))
    form = LoginForm()
    if form.validate_on_submit():
        identifier = form.identifier.data
        wait = seconds_until_retry(login_counters(identifier))
        if wait:
            # Refused before the password is checked: the right one does not help either.
            form.password.errors = [retry_message(wait)]
            response = make_response(render_template("auth/login.html", form=form), 429)
            response.headers["Retry-After"] = str(wait)
            return response
        account, error = authenticate(identifier, form.password.data)
        if account is None:
            if error == WRONG_CREDENTIALS:
                record_failure(login_counters(identifier))
            form.password.errors = [error]
        else:
            start_session(account, form.remember.data, request.user_agent.string)
            login_user(account, remember=form.remember.data)
            return redirect_to(_safe_next(request.args.get("next")) or url_for("auth.home"))
    status = 422 if request.method == "POST" else 200
    return render_template("auth/login.html", form=form), status


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    """Log out (POST, so a link on another site cannot log you out); the session row goes."""
    # A copy of this browser's cookies (session or remember-me) opens nothing afterwards.
    end_session(current_user.login_id)
    logout_user()
    flash("You are logged out.", "info")
    return redirect_to(url_for("auth.login"))


@bp.route("/logout/everywhere", methods=["POST"])
@login_required
def logout_everywhere():
    """End every session of the logged-in account, on every browser and device."""
    with transaction():
        end_all_sessions(current_user._get_current_object())
    logout_user()
    flash("You are logged out on every browser and device.", "info")
    return redirect_to(url_for("auth.login"))
