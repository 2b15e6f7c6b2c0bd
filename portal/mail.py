"""E-mail through an outbox: queued in the operation's transaction, delivered by SMTP, retried."""

import smtplib
import ssl
from collections.abc import Iterator
from email.message import EmailMessage

from flask import current_app, has_request_context, render_template, url_for
from sqlalchemy import select, update

from portal.extensions import db
from portal.models import Account, OutboxMessage, utcnow
from portal.settings.service import get_setting

MAX_ATTEMPTS = 20


def sender_name(account: Account | None) -> str:
    """Who signs mail to `account`: its reseller (as on its documents), else the portal company."""
    reseller = account.reseller if account is not None else None
    if reseller is not None:
        return reseller.company or reseller.name
    return get_setting("company_name")


def queue(kind: str, recipient: str, template: str, account: Account | None = None, **context):
    """Add a mail to the outbox, in the caller's transaction: it is sent only if that commits."""
    context.setdefault("company_name", sender_name(account))
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
    if not base and has_request_context():
        return url_for("auth.login", _external=True)
    # Built from the URL map: url_for() refuses outside a request unless SERVER_NAME is set,
    # and a command-line run knows no host (without PORTAL_URL the path is all it can give).
    adapter = current_app.url_map.bind("", script_name=current_app.config["APPLICATION_ROOT"])
    return base + adapter.build("auth.login")


def _connect() -> smtplib.SMTP:
    """An open, logged-in SMTP connection (raises when the server cannot be reached)."""
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
    try:
        if config["MAIL_USE_TLS"] and not config["MAIL_USE_SSL"]:
            server.starttls(context=ssl.create_default_context())
        if config["MAIL_USERNAME"]:
            server.login(config["MAIL_USERNAME"], config["MAIL_PASSWORD"])
    except BaseException:
        server.close()
        raise
    return server


def _email(message: OutboxMessage) -> EmailMessage:
    """The outbox row as an e-mail."""
    config = current_app.config
    email = EmailMessage()
    email["From"] = config["MAIL_FROM"]
    email["To"] = message.recipient
    email["Subject"] = message.subject
    email["Message-ID"] = f"<outbox-{message.id}@{config['MAIL_MESSAGE_ID_DOMAIN']}>"
    email.set_content(message.body)
    return email


def _claim(message_id: int) -> bool:
    """Mark one message as being sent, committed before sending: a concurrent sender skips it."""
    # `mail send` from cron and a web request sending the same new message at once would
    # otherwise both deliver it. A crash between claim and delivery loses that one message
    # rather than sending it twice.
    claimed = db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, OutboxMessage.sent_at.is_(None))
        .values(sent_at=utcnow(), attempts=OutboxMessage.attempts + 1, last_error="")
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    return claimed == 1


def _release(message_id: int, error: Exception) -> None:
    """Put a claimed message back in the queue with why it failed."""
    db.session.rollback()
    db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(sent_at=None, last_error=f"{type(error).__name__}: {error}"[:500])
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def _pending_batches(ids: list[int] | None, batch_size: int) -> Iterator[list[OutboxMessage]]:
    """Unsent messages (all, or those of `ids`) by id, `batch_size` at a time."""
    query = (
        select(OutboxMessage)
        .where(OutboxMessage.sent_at.is_(None), OutboxMessage.attempts < MAX_ATTEMPTS)
        .order_by(OutboxMessage.id)
    )
    if ids is not None:
        # In slices: a billing run's 100,000 ids in one IN (...) exceed the bind parameter
        # limit of PostgreSQL (65,535) and SQLite (32,766).
        wanted = sorted(set(ids))
        for start in range(0, len(wanted), batch_size):
            chunk = wanted[start : start + batch_size]
            yield list(db.session.scalars(query.where(OutboxMessage.id.in_(chunk))))
        return
    last_id = 0
    while True:
        batch = list(db.session.scalars(query.where(OutboxMessage.id > last_id).limit(batch_size)))
        if not batch:
            return
        last_id = batch[-1].id  # by id, so a refused message is not picked up again in this run
        yield batch


def _send_batch(messages: list[OutboxMessage]) -> tuple[int, bool]:
    """Deliver messages over one connection: (how many were sent, whether the server answered)."""
    by_id = {message.id: message for message in messages}
    db.session.commit()  # nothing of ours stays open while we talk to the server
    sent = 0
    untried = list(by_id)
    try:
        with _connect() as server:
            for message_id, message in by_id.items():
                untried.remove(message_id)
                if not _claim(message_id):
                    continue  # another sender has it
                try:
                    server.send_message(_email(message))
                except smtplib.SMTPServerDisconnected as error:  # the connection is gone
                    _release(message_id, error)
                    raise
                except smtplib.SMTPException as error:  # refused (SMTPException is an OSError)
                    _release(message_id, error)
                except OSError as error:  # the socket failed
                    _release(message_id, error)
                    raise
                except Exception as error:
                    # Not sendable (an address the server cannot take): this one waits, the
                    # others go on instead of being blocked behind it.
                    _release(message_id, error)
                except BaseException as error:
                    _release(message_id, error)
                    raise
                else:
                    sent += 1
    except (OSError, smtplib.SMTPException) as error:  # server down: the rest stay queued
        db.session.rollback()
        if untried:
            db.session.execute(
                update(OutboxMessage)
                .where(OutboxMessage.id.in_(untried), OutboxMessage.sent_at.is_(None))
                .values(
                    attempts=OutboxMessage.attempts + 1,
                    last_error=f"{type(error).__name__}: {error}"[:500],
                )
                .execution_options(synchronize_session=False)
            )
            db.session.commit()
        return sent, False
    return sent, True


def send_pending(ids: list[int] | None = None, batch_size: int = 500) -> tuple[int, int]:
    """Try to deliver unsent mail (all, or just `ids`): (sent now, still pending)."""
    sent = pending = 0
    reachable = bool(current_app.config["MAIL_SERVER"])
    for batch in _pending_batches(ids, batch_size):
        if not reachable:  # no server, or it failed on an earlier batch: the rest wait
            pending += len(batch)
            continue
        batch_sent, reachable = _send_batch(batch)
        sent += batch_sent
        pending += len(batch) - batch_sent
    db.session.expire_all()
    return sent, pending


def deliver_now(messages: list[OutboxMessage]) -> None:
    """After a commit: try to send these at once; failures stay in the outbox for `mail send`."""
    if not messages or not current_app.config["MAIL_SEND_AT_ONCE"]:
        return
    try:
        send_pending([message.id for message in messages])
    except Exception:  # the operation is committed: an error page would invite a second payment
        db.session.rollback()
        current_app.logger.exception("Mail kept in the outbox after an unexpected error")
