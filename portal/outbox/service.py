"""What the staff do with undelivered mail."""

from portal import audit, mail
from portal.models import Account, OutboxMessage
from portal.transactions import transaction


def retry_failed(actor: Account, message: OutboxMessage) -> bool:
    """Queue a failed message for one more try, audited; False when it had not failed."""
    if message.failed_at is None:
        return False
    with transaction():
        mail.retry(message)
        audit.record(
            actor,
            "update",
            "outbox_message",
            message,
            changes={"status": ["failed", "waiting"]},
            label=f"{message.kind} to {message.recipient}",
            account=message.account,
        )
    return True
