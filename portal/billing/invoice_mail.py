"""A billing chunk's mail: its documents' mails, written when sent, and low balance alerts."""

from datetime import datetime
from types import SimpleNamespace

from flask import current_app
from sqlalchemy import select

from portal.billing.drafts import ChunkResult, Draft, display_name
from portal.bulkrows import among, insert_rows, update_rows
from portal.extensions import db
from portal.models import Account, InvoiceProfile, OutboxMessage, available_funds
from portal.settings.service import get_setting


def _render(template, **context) -> tuple[str, str]:
    """Subject and body of a mail template, split as mail.queue splits them."""
    subject, _, body = template.render(**context).partition("\n")
    return subject.removeprefix("Subject:").strip()[:200], body.lstrip("\n")


def _signers(resellers: set[int]) -> dict[int, str]:
    """Who signs the mail of these resellers' customers, and the portal company (key 0)."""
    names = {0: get_setting("company_name")}
    if resellers:
        for row in db.session.execute(
            select(
                Account.id,
                Account.company,
                Account.first_name,
                Account.last_name,
                Account.account_number,
            ).where(Account.id.in_(resellers))
        ):
            names[row.id] = row.company or display_name(row)
        # A reseller's invoice profile names it, as on its documents.
        for issuer, company_name in db.session.execute(
            select(InvoiceProfile.issuer_key, InvoiceProfile.company_name).where(
                InvoiceProfile.issuer_key.in_(resellers), InvoiceProfile.company_name != ""
            )
        ):
            names[issuer] = company_name
    return names


def queue_mail(made: list[Draft], now: datetime, result: ChunkResult) -> None:
    """The invoice and statement mails (written by the sender, from the document), alerts."""
    # No text rendered here: a document's mail is written when it is sent (mail.text_of),
    # which took a third of a chunk's time when each of 1,000 mails was rendered in the chunk.
    messages = [
        (draft.kind.value, draft.account.email, "", "", draft.account.id, draft.document_id)
        for draft in made
        if draft.account.email
    ]
    template = current_app.jinja_env.get_template("mail/low_balance.txt")
    messages.extend(_low_balance(made, template))
    if not messages:
        return
    queued = insert_rows(
        db.session.connection(),
        OutboxMessage.__table__,
        [
            {
                "kind": kind,
                "recipient": recipient,
                "subject": subject,
                "body": body,
                "account_id": account_id,
                "document_id": document_id,
                "created_at": now,
            }
            for kind, recipient, subject, body, account_id, document_id in messages
        ],
        returning=("id",),
    )
    result.mail_ids.extend(row.id for row in queued)


def _low_balance(made: list[Draft], template) -> list[tuple]:
    """One alert when the document's taxes bring the funds to the alert level (as after a post)."""
    rows = db.session.execute(
        select(
            Account.id,
            Account.account_number,
            Account.first_name,
            Account.last_name,
            Account.company,
            Account.email,
            Account.currency,
            Account.reseller_id,
            Account.balance,
            Account.credit_limit,
            Account.low_balance_alert,
            Account.email_alerts,
            Account.low_balance_alerted,
            Account.account_type,
        ).where(among(Account.id, [draft.account.id for draft in made]))
    ).all()
    changes, alerts = [], []
    for row in rows:
        available = available_funds(row.account_type, row.balance, row.credit_limit)
        if available > row.low_balance_alert:
            if row.low_balance_alerted:
                changes.append({"id": row.id, "low_balance_alerted": False})
        elif row.email_alerts and row.email and not row.low_balance_alerted:
            changes.append({"id": row.id, "low_balance_alerted": True})
            alerts.append((row, available))
    signers = _signers({row.reseller_id for row, _ in alerts} - {None}) if alerts else {}
    messages = []
    for row, available in alerts:
        account = SimpleNamespace(
            name=display_name(row),
            account_number=row.account_number,
            currency=row.currency,
            low_balance_alert=row.low_balance_alert,
        )
        subject, body = _render(
            template,
            account=account,
            available=available,
            company_name=signers.get(row.reseller_id or 0) or signers[0],
        )
        messages.append(("low_balance", row.email, subject, body, row.id, None))
    update_rows(db.session.connection(), Account.__table__, "id", changes)
    return messages
