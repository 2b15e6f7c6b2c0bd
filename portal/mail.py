"""E-mail through an outbox: queued in the operation's transaction, delivered by SMTP, retried."""

import smtplib
import ssl
from email.message import EmailMessage

from flask import current_app, has_request_context, render_template, url_for
from sqlalchemy import select

from portal.extensions import db
from portal.models import Account, OutboxMessage, utcnow
from portal.settings.service import get_setting

MAX_ATTEMPTS = 20


def queue(kind: str, recipient: str, template: str, account: Account | None = None, **context):
    """Add a mail to the outbox, in the caller's transaction: it is sent only if that commits."""
    context.setdefault("company_name", get_setting("company_name"))
    text = render_template(f"mail/{template}.txt", account=account, **context)
    subject, _, body = text.partition("\n")
    message = OutboxMessage(
        kind=kind,
        recipient=recipient,
        subject=subject.removeprefix("Subject:").strip()[:200],
        body=body.lstrip("\n"),
        account_id=account.id if account else None,
    )
    db.session.add(message)
    return message


def login_url() -> str:
    """The portal's login page for links in mail: PORTAL_URL, else this request's host."""
    base = current_app.config["PORTAL_URL"]
    if base:
        return base + url_for("auth.login")
    if has_request_context():
        return url_for("auth.login", _external=True)
    return url_for("auth.login")  # a relative link is all a command-line run can know


def _smtp_send(messages: list[OutboxMessage]) -> None:
    """Deliver messages over one SMTP connection (raises on a connection failure)."""
    config = current_app.config
    if config["MAIL_USE_SSL"]:
        server = smtplib.SMTP_SSL(
            config["MAIL_SERVER"],
            config["MAIL_PORT"],
            timeout=config["MAIL_TIMEOUT"],
            context=ssl.create_default_context(),
        )
    else:
        server = smtplib.SMTP(
            config["MAIL_SERVER"], config["MAIL_PORT"], timeout=config["MAIL_TIMEOUT"]
        )
    with server:
        if config["MAIL_USE_TLS"] and not config["MAIL_USE_SSL"]:
            server.starttls(context=ssl.create_default_context())
        if config["MAIL_USERNAME"]:
            server.login(config["MAIL_USERNAME"], config["MAIL_PASSWORD"])
        for message in messages:
            email = EmailMessage()
            email["From"] = config["MAIL_FROM"]
            email["To"] = message.recipient
            email["Subject"] = message.subject
            email["Message-ID"] = f"<outbox-{message.id}@{config['MAIL_MESSAGE_ID_DOMAIN']}>"
            email.set_content(message.body)
            message.attempts += 1
            try:
                server.send_message(email)
            except smtplib.SMTPException as error:  # this recipient refused; the others go on
                message.last_error = str(error)[:500]
            else:
                message.sent_at = utcnow()
                message.last_error = ""
            db.session.commit()  # each delivery is recorded at once: never sent twice


def send_pending(ids: list[int] | None = None, limit: int = 500) -> tuple[int, int]:
    """Try to deliver unsent mail (all, or just `ids`): (sent, still pending)."""
    query = select(OutboxMessage).where(
        OutboxMessage.sent_at.is_(None), OutboxMessage.attempts < MAX_ATTEMPTS
    )
    if ids is not None:
        query = query.where(OutboxMessage.id.in_(ids))
    messages = list(db.session.scalars(query.order_by(OutboxMessage.id).limit(limit)))
    if not messages or not current_app.config["MAIL_SERVER"]:
        return 0, len(messages)
    try:
        _smtp_send(messages)
    except (OSError, smtplib.SMTPException) as error:  # server down: everything stays queued
        db.session.rollback()
        for message in messages:
            if message.sent_at is None:
                message.attempts += 1
                message.last_error = f"{type(error).__name__}: {error}"[:500]
        db.session.commit()
    sent = sum(1 for message in messages if message.sent_at is not None)
    return sent, len(messages) - sent


def deliver_now(messages: list[OutboxMessage]) -> None:
    """After a commit: try to send these at once; failures stay in the outbox for `mail send`."""
    if messages and current_app.config["MAIL_SEND_AT_ONCE"]:
        send_pending([message.id for message in messages])
