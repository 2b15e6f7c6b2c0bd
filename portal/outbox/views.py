"""Mail outbox: waiting, failed and sent mail (never its text), and Retry now for failed mail."""

from flask import abort, flash, request, url_for
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import defer

from portal import mail
from portal.extensions import db
from portal.htmx import redirect_to, render_page_or_fragment
from portal.listing import Sorting, paginate
from portal.models import OutboxMessage, utcnow
from portal.outbox import bp
from portal.outbox.service import retry_failed
from portal.security import STAFF, roles_required

# Which messages a page shows: ?state=waiting, failed or sent, else all of them.
STATES = {
    "waiting": OutboxMessage.sent_at.is_(None) & OutboxMessage.failed_at.is_(None),
    "failed": OutboxMessage.sent_at.is_(None) & OutboxMessage.failed_at.is_not(None),
    "sent": OutboxMessage.sent_at.is_not(None),
}
SORTING = Sorting(
    columns={
        "created": OutboxMessage.created_at,
        "recipient": OutboxMessage.recipient,
        "kind": OutboxMessage.kind,
        "attempts": OutboxMessage.attempts,
    },
    default="-created",
    unique=OutboxMessage.id,
)


def _unsent():
    """Unsent messages of the whole system: the staff run the operator's mail."""
    return select(OutboxMessage).where(OutboxMessage.sent_at.is_(None))


def state_counts() -> dict[str, int]:
    """How many messages are in each state (the filter links show them)."""
    return {
        name: db.session.scalar(select(func.count()).where(condition))
        for name, condition in STATES.items()
    }


@bp.route("/")
@roles_required(*STAFF)
def index():
    """Waiting, failed and sent mail: filtered by state, sorted and paged, with the counts."""
    state = request.args.get("state", "")
    state = state if state in STATES else ""
    # Never the text, not even loaded: a welcome mail may hold a password.
    query = select(OutboxMessage).options(defer(OutboxMessage.body))
    if state:
        query = query.where(STATES[state])
    return render_page_or_fragment(
        "outbox/index.html",
        "outbox/_messages.html",
        page=paginate(query, SORTING),
        state=state,
        now=utcnow(),
        counts=state_counts(),
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
