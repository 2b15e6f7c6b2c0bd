"""The mail of a billing chunk: invoice mails rendered in bulk, and low balance alerts."""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

from flask import current_app
from sqlalchemy import bindparam, insert, select, update

from portal.billing.drafts import ChunkResult, Draft, display_name, executemany
from portal.extensions import db
from portal.models import Account, AccountType, OutboxMessage, available_funds
from portal.settings.service import get_setting


@dataclass
class _MailDocument:
    """What the invoice mail template reads of a document."""

    draft: Draft

    def __getattr__(self, name):
        return getattr(self.draft, name)

    @property
    def display_number(self) -> str:
        """INV-000042."""
        return f"INV-{self.draft.number:06d}"

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
    """The invoice mails (rendered here, cheaply) and any low balance alerts, in bulk."""
    environment = current_app.jinja_env
    invoice_template = environment.get_template("mail/invoice.txt")
    signers = _signers(made)
    messages = []
    for draft in made:
        account = draft.account
        if not account.email:
            continue
        mail_account = SimpleNamespace(
            name=display_name(account), account_number=account.account_number
        )
        subject, body = _render(
            invoice_template,
            account=mail_account,
            document=_MailDocument(draft),
            company_name=signers[account.reseller_id or 0],
        )
        messages.append(("invoice", account.email, subject, body, account.id))
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
                OutboxMessage.kind.in_(("invoice", "low_balance")),
            )
        )
    )


def _low_balance(made: list[Draft], signers: dict[int, str], template) -> list[tuple]:
    """One alert when the invoice's taxes bring the funds to the alert level (as after a post)."""
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
        ).where(Account.id.in_([draft.account.id for draft in made]))
    ).all()
    changes, messages = [], []
    for row in rows:
        available = available_funds(AccountType.POSTPAID, row.balance, row.credit_limit)
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
