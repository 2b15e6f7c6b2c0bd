"""Mail outbox: unsent messages newest first (never their text), and Retry now for failed ones."""

from flask import abort, flash, request, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import defer

from portal import mail
from portal.extensions import db
from portal.htmx import redirect_to, render_page_or_fragment
from portal.models import OutboxMessage, utcnow
from portal.outbox import bp
from portal.outbox.service import retry_failed
from portal.security import STAFF, roles_required
from portal.web import newest_first, query_id

PER_PAGE = 50
# Which unsent messages a page shows: ?state=failed or ?state=waiting, else both.
STATES = {
    "failed": OutboxMessage.failed_at.is_not(None),
    "waiting": OutboxMessage.failed_at.is_(None),
}


def _unsent():
    """Unsent messages of the whole system: the staff run the operator's mail."""
    return select(OutboxMessage).where(OutboxMessage.sent_at.is_(None))


@bp.route("/")
@roles_required(*STAFF)
def index():
    """Mail waiting for a retry and mail given up, newest first, keyset-paginated."""
    state = request.args.get("state", "")
    state = state if state in STATES else ""
    before = query_id("before")
    # Never the text, not even loaded: a welcome mail may hold a password.
    query = _unsent().options(defer(OutboxMessage.body))
    if state:
        query = query.where(STATES[state])
    messages, next_before = newest_first(query, OutboxMessage.id, before, PER_PAGE)
    return render_page_or_fragment(
        "outbox/index.html",
        "outbox/_messages.html",
        messages=messages,
        next_before=next_before,
        before=before,
        state=state,
        now=utcnow(),
        failed=mail.undeliverable_count(),
    )


@bp.route("/<int:message_id>/retry", methods=["POST"])
@roles_required(*STAFF)
def retry(message_id: int):
    """Try a failed message again now (and, if it fails, keep it failed with the new error)."""
    message = db.session.scalar(_unsent().where(OutboxMessage.id == message_id))
    if message is None:
        abort(404)
    if not retry_failed(current_user, message):
        flash(f"The mail to {message.recipient} has not failed; it is retried on its own.", "info")
        return redirect_to(url_for("outbox.index"))
    mail.deliver_now([message])
    db.session.refresh(message)
    if message.sent_at is not None:
        flash(f"The mail to {message.recipient} was sent.", "success")
    elif message.failed_at is not None:
        flash(f"The mail to {message.recipient} was refused again: {message.last_error}", "info")
    else:
        flash(f"The mail to {message.recipient} is queued for the next delivery run.", "info")
    return redirect_to(url_for("outbox.index"))
