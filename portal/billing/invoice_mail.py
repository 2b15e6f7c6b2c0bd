"""The mail of a billing chunk: invoice and statement mails rendered in bulk, low balance alerts."""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

from flask import current_app
from sqlalchemy import bindparam, insert, select, update

from portal.billing.drafts import ChunkResult, Draft, display_name, executemany
from portal.extensions import db
from portal.models import Account, DocumentKind, OutboxMessage, available_funds
from portal.settings.service import get_setting


@dataclass
class _MailDocument:
    """What the invoice and receipt mail templates read of a document."""

    draft: Draft
    issued_at: datetime | None = None
    payment_entries: tuple = ()  # a statement documents no payment

    def __getattr__(self, name):
        return getattr(self.draft, name)

    @property
    def display_number(self) -> str:
        """INV-000042, or R-000042 for a statement."""
        prefix = "R" if self.draft.kind == DocumentKind.RECEIPT else "INV"
        return f"{prefix}-{self.draft.number:06d}"

    @property
    def currency(self) -> str:
        """The account's currency."""
        return self.draft.account.currency

    @property
    def due_date(self) -> date:
        """The billing date plus the payment term."""
        return self.draft.billing_date + timedelta(days=current_app.config["INVOICE_DUE_DAYS"])

    @property
    def lines(self) -> list:
        """Items, then taxes."""
        return [
            SimpleNamespace(description=text[:200], amount=amount)
            for text, amount, _ in self.draft.items + self.draft.taxes
        ]

    @property
    def balance_due(self) -> Decimal:
        """What is still to pay."""
        return self.draft.total - self.draft.amount_paid


def _render(template, **context) -> tuple[str, str]:
    """Subject and body of a mail template, split as mail.queue splits them."""
    subject, _, body = template.render(**context).partition("\n")
    return subject.removeprefix("Subject:").strip()[:200], body.lstrip("\n")


def _signers(made: list[Draft]) -> dict[int, str]:
    """Who signs each reseller's customers' mail, and the portal company (key 0)."""
    resellers = {draft.account.reseller_id for draft in made} - {None}
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
    return names


def queue_mail(made: list[Draft], now: datetime, result: ChunkResult) -> None:
    """The invoice and statement mails (rendered here, cheaply) and low balance alerts, in bulk."""
    environment = current_app.jinja_env
    templates = {
        DocumentKind.INVOICE: environment.get_template("mail/invoice.txt"),
        DocumentKind.RECEIPT: environment.get_template("mail/receipt.txt"),
    }
    signers = _signers(made)
    messages = []
    for draft in made:
        account = draft.account
        if not account.email:
            continue
        mail_account = SimpleNamespace(
            name=display_name(account),
            account_number=account.account_number,
            account_type=account.account_type,
            timezone=account.timezone,
            currency=account.currency,
            # As after the statement's own entries (read with the chunk, before them).
            available_funds=account.balance + draft.balance_effect,
        )
        subject, body = _render(
            templates[draft.kind],
            account=mail_account,
            document=_MailDocument(draft, issued_at=now),
            company_name=signers[account.reseller_id or 0],
        )
        messages.append((draft.kind.value, account.email, subject, body, account.id))
    messages.extend(_low_balance(made, signers, environment.get_template("mail/low_balance.txt")))
    if not messages:
        return
    executemany(
        insert(OutboxMessage),
        [
            {
                "kind": kind,
                "recipient": recipient,
                "subject": subject,
                "body": body,
                "account_id": account_id,
                "created_at": now,
            }
            for kind, recipient, subject, body, account_id in messages
        ],
    )
    # Read back rather than RETURNING in parameter order (an INSERT ... SELECT PostgreSQL
    # plans slowly): the chunk's accounts' mail of this instant.
    result.mail_ids.extend(
        db.session.scalars(
            select(OutboxMessage.id).where(
                OutboxMessage.account_id.in_({account_id for *_, account_id in messages}),
                OutboxMessage.created_at == now,
                OutboxMessage.kind.in_(("invoice", "receipt", "low_balance")),
            )
        )
    )


def _low_balance(made: list[Draft], signers: dict[int, str], template) -> list[tuple]:
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
        ).where(Account.id.in_([draft.account.id for draft in made]))
    ).all()
    changes, messages = [], []
    for row in rows:
        available = available_funds(row.account_type, row.balance, row.credit_limit)
        if available > row.low_balance_alert:
            if row.low_balance_alerted:
                changes.append({"account": row.id, "alerted": False})
        elif row.email_alerts and row.email and not row.low_balance_alerted:
            changes.append({"account": row.id, "alerted": True})
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
            messages.append(("low_balance", row.email, subject, body, row.id))
    if changes:
        executemany(
            update(Account)
            .where(Account.id == bindparam("account"))
            .values(low_balance_alerted=bindparam("alerted"))
            .execution_options(synchronize_session=False),
            changes,
        )
    return messages
