"""The "Test a call" panel: every authorization check explained, nothing written."""

import re

from flask import request
from flask_login import current_user

from portal.calls import bp
from portal.calls.service import authorize
from portal.htmx import render_page_or_fragment
from portal.security import MANAGERS, get_account_or_404, roles_required

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
            decision = authorize(
                current_user,
                "test",
                destination,
                account_number=account.account_number,
                dry_run=True,
                explain=True,
            )
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
