"""The Calls page (filtered, totalled, exported), live calls, and the "Test a call" panel."""

import re

from flask import Blueprint, Response, request, url_for
from flask_login import current_user, login_required

from portal.background import records
from portal.calls import bundles
from portal.calls.export import export_calls
from portal.calls.forms import CallFilterForm, call_filter
from portal.calls.report import (
    LIVE_SORTING,
    SORTING,
    STATUSES,
    call_rows,
    is_reseller,
    live_calls,
    totals,
)
from portal.calls.service import try_call
from portal.htmx import redirect_to, render_page_or_fragment
from portal.listing import paginate
from portal.models import Role, utcnow
from portal.security import MANAGERS, STAFF, get_account_or_404, roles_required

FILTER_FIELDS = ("start", "end", "account", "reseller", "prefix", "status", "min_duration")

bp = Blueprint("calls", __name__)

DIALLED = re.compile(r"\+?[0-9*#]{1,32}")


@bp.route("/accounts/<int:account_id>/test-call")
@roles_required(*MANAGERS)
def test_call(account_id: int):
    """Why a call to a number would be allowed or refused right now (a dry run)."""
    account = get_account_or_404(current_user, account_id)
    destination = request.args.get("destination", "").strip()
    decision = None
    error = None
    if destination:
        if DIALLED.fullmatch(destination):
            decision = try_call(current_user, destination, account.account_number)
        else:
            error = "Enter 1 to 32 digits (and * or #), with an optional leading +."
            destination = destination[:40]
    # htmx swaps the result into the account page; without JavaScript the form opens this page.
    return render_page_or_fragment(
        "calls/test_call.html",
        "calls/_test_call.html",
        account=account,
        destination=destination,
        decision=decision,
        error=error,
    )


def _filtered():
    """The filter form read from the query string, and the filter it gives (None if invalid)."""
    form = CallFilterForm(formdata=request.args, meta={"csrf": False})
    return form, call_filter(form, current_user)


@bp.route("/calls/")
@login_required
def index():
    """The calls the viewer may see: filtered, totalled, sorted and paged."""
    form, wanted = _filtered()
    page = summary = None
    status = 200
    if wanted is None:
        status = 422
    else:
        summary = totals(current_user, wanted)
        page = paginate(
            call_rows(current_user, wanted), SORTING, total=summary.calls, scalars=False
        )
    response = render_page_or_fragment(
        "calls/index.html",
        "calls/_results.html",
        form=form,
        page=page,
        totals=summary,
        reseller=is_reseller(current_user),
        customer=current_user.role == Role.CUSTOMER,
        statuses=STATUSES,
    )
    return response, status


@bp.route("/calls/export", methods=["POST"])
@login_required
def export():
    """Export the filtered calls as CSV: a job for managers, a streamed download for customers."""
    form = CallFilterForm(formdata=request.form, meta={"csrf": False})
    wanted = call_filter(form, current_user)
    if wanted is None:
        return redirect_to(url_for("calls.index", **_kept(request.form)))
    if current_user.role == Role.CUSTOMER:
        # A customer has no Jobs page: its own calls stream at once (the download's GET).
        return redirect_to(url_for("calls.export_csv", **_kept(request.form)))
    rows = totals(current_user, wanted).calls
    job = records.start(
        current_user,
        "call_export",
        f"Export of {rows:,} calls",
        params={"filter": wanted.to_json()},
        total=rows,
    )
    return redirect_to(url_for("jobs.show", job_id=job.id))


@bp.route("/calls/export.csv")
@roles_required(Role.CUSTOMER)
def export_csv():
    """A customer's own filtered calls as CSV, read batch by batch as the response is sent."""
    _form, wanted = _filtered()
    if wanted is None:
        return redirect_to(url_for("calls.index", **_kept(request.args)))
    return Response(
        export_calls(current_user, wanted),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="calls.csv"'},
    )


def _kept(values) -> dict:
    """The filter fields of a posted export form, to show their errors on the page."""
    return {name: values.get(name) for name in FILTER_FIELDS if values.get(name)}


@bp.route("/calls/live")
@roles_required(*STAFF)
def live():
    """Calls authorized and not ended yet: their age and reservation, oldest first."""
    page = paginate(live_calls(current_user), LIVE_SORTING, scalars=False)
    return render_page_or_fragment("calls/live.html", "calls/_live.html", page=page, now=utcnow())


@bp.app_template_global("account_bundles")
def account_bundles(account) -> list[bundles.BundleBalance]:
    """The account's running free-minute bundles and what is left of them (templates)."""
    return bundles.balances(account)
