"""E-mail through an outbox: queued in the operation's transaction, delivered by SMTP, retried."""

import smtplib
import ssl
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import NamedTuple

from flask import current_app, has_request_context, render_template, url_for
from sqlalchemy import and_, case, func, or_, select, update

from portal.background.engine import app_context, huey
from portal.extensions import db
from portal.models import Account, InvoiceProfile, OutboxMessage, utcnow
from portal.settings.service import get_setting

# After a failed try a message waits 1, 2, 4 ... minutes, then every hour until it is too old
# (MAIL_GIVE_UP_HOURS): an outage of a few hours costs a few dozen connection attempts.
RETRY_FIRST = timedelta(minutes=1)
RETRY_MOST = timedelta(hours=1)
# A claim outlives any send: several SMTP commands, each allowed MAIL_TIMEOUT (see _lease).
LEASE_LEAST = timedelta(minutes=5)
LEASE_TIMEOUTS = 10
# What a sent message that held a password keeps instead of its text.
PURGED_BODY = "(The text of this message held a password: it was deleted once sent.)"


class Attachment(NamedTuple):
    """A file sent with a mail."""

    filename: str
    media_type: str
    content: bytes


class AttachmentFailed(RuntimeError):
    """A document mail's attachment could not be written: the mail waits and is tried again."""


# Writes the attachment of a mail about a document (its PDF). Registered by the package that
# renders documents (portal.billing.pdf), which sits above mail and may not be imported here.
_document_attachment: list[Callable[[object], tuple[str, str, bytes]]] = []


def register_document_attachment(writer: Callable[[object], tuple[str, str, bytes]]) -> None:
    """Have every mail queued with a document carry `writer(document)`: (name, type, bytes)."""
    _document_attachment[:] = [writer]


class Delivery(NamedTuple):
    """What a run left: sent by it, waiting for a retry, failed for good (of the mail it covers)."""

    sent: int
    waiting: int
    failed: int


def sender_name(account: Account | None) -> str:
    """Who signs mail to `account`: its reseller's profile name (as on documents), or the portal."""
    reseller = account.reseller if account is not None else None
    if reseller is not None:
        profile_name = db.session.scalar(
            select(InvoiceProfile.company_name).where(InvoiceProfile.issuer_key == reseller.id)
        )
        return profile_name or reseller.company or reseller.name
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
        # A receipt's or invoice's mail carries its PDF, written when it is sent (_email).
        document_id=getattr(context.get("document"), "id", None),
        # A password in the text is kept only until the mail is sent (see _mark_sent).
        holds_secret=bool(context.get("password")),
    )
    db.session.add(message)
    return message


def login_url() -> str:
    """The portal's login page for links in mail: PORTAL_URL, else a trusted request host."""
    base = current_app.config["PORTAL_URL"]
    if not base and has_request_context() and current_app.config["TRUSTED_HOSTS"]:
        # Flask refuses (400) a request whose Host is not in TRUSTED_HOSTS before any view
        # runs; without that list the Host header is whatever the client sent
        # (Host: evil.example.com would put a phishing link in a genuine mail).
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


def text_of(message: OutboxMessage) -> tuple[str, str]:
    """(subject, body) as sent: a document's mail queued without text is written from it now."""
    if message.document_id is None or message.body:
        return message.subject, message.body
    document = message.document
    account = document.account
    text = render_template(
        f"mail/{message.kind}.txt",
        account=account,
        document=document,
        company_name=sender_name(account),
    )
    subject, _, body = text.partition("\n")
    return subject.removeprefix("Subject:").strip()[:200], body.lstrip("\n")


def _email(message: OutboxMessage) -> EmailMessage:
    """The outbox row as an e-mail; a text written now is kept on the row (what was sent)."""
    config = current_app.config
    message.subject, message.body = text_of(message)
    email = EmailMessage()
    email["From"] = config["MAIL_FROM"]
    email["To"] = message.recipient
    email["Subject"] = message.subject
    email["Message-ID"] = f"<outbox-{message.id}@{config['MAIL_MESSAGE_ID_DOMAIN']}>"
    email.set_content(message.body)
    if message.document_id is not None:
        attachment = _attachment(message)
        maintype, _, subtype = attachment.media_type.partition("/")
        email.add_attachment(
            attachment.content, maintype=maintype, subtype=subtype, filename=attachment.filename
        )
    return email


def _attachment(message: OutboxMessage) -> Attachment:
    """The document's attachment, or AttachmentFailed: a document mail never goes without it."""
    if not _document_attachment:
        raise AttachmentFailed("No writer of document attachments is registered.")
    try:
        return Attachment(*_document_attachment[0](message.document))
    except Exception as error:
        raise AttachmentFailed(
            f"The attachment could not be written: {_error_text(error)}"
        ) from error


def retry_delay(attempts: int) -> timedelta:
    """How long a message waits after its `attempts`-th failed try: 1, 2, 4 ... minutes, 1 hour."""
    doublings = min(max(attempts - 1, 0), 16)  # 2**16 minutes is past the cap already
    return min(RETRY_FIRST * 2**doublings, RETRY_MOST)


def _lease() -> timedelta:
    """How long a claimed message is left to its sender before another one may try it."""
    return max(LEASE_LEAST, timedelta(seconds=LEASE_TIMEOUTS * current_app.config["MAIL_TIMEOUT"]))


def _unsent():
    """SQL condition: neither accepted by the server nor given up."""
    return and_(OutboxMessage.sent_at.is_(None), OutboxMessage.failed_at.is_(None))


def _due(now: datetime):
    """SQL condition: unsent, its backoff over, and no sender holding it."""
    return and_(
        _unsent(),
        or_(OutboxMessage.next_attempt_at.is_(None), OutboxMessage.next_attempt_at <= now),
        or_(OutboxMessage.claimed_until.is_(None), OutboxMessage.claimed_until <= now),
    )


def _error_text(error: BaseException) -> str:
    """An exception as last_error keeps it."""
    return f"{type(error).__name__}: {error}"[:500]


def _after_failure(error: BaseException, attempts: int, created_at: datetime, now: datetime):
    """The columns of a message whose `attempts`-th try failed: a later retry, or failed."""
    too_old = now - timedelta(hours=current_app.config["MAIL_GIVE_UP_HOURS"])
    if created_at <= too_old:
        return {"last_error": _error_text(error), "failed_at": now, "next_attempt_at": None}
    return {"last_error": _error_text(error), "next_attempt_at": now + retry_delay(attempts)}


def _claim(message_id: int, now: datetime) -> bool:
    """Lease one due message to this sender, committed before sending (with what came before)."""
    # A concurrent sender (the periodic job, a web request sending what it just queued) skips
    # it until the lease ends; a sender killed mid-send leaves it to expire, and it is retried.
    claimed = db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id, _due(now))
        .values(claimed_until=now + _lease(), attempts=OutboxMessage.attempts + 1)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    return claimed == 1


def _mark_sent(message_id: int, now: datetime) -> None:
    """The server accepted the message (committed with the next claim, or at the end)."""
    db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .values(
            sent_at=now,
            claimed_until=None,
            next_attempt_at=None,
            last_error="",
            # The recipient has the password now: no copy stays in the database.
            body=case((OutboxMessage.holds_secret, PURGED_BODY), else_=OutboxMessage.body),
        )
        .execution_options(synchronize_session=False)
    )


def _retry_later(message: OutboxMessage, error: BaseException, now: datetime) -> None:
    """A claimed message was refused or cut off: release it to retry after its backoff."""
    db.session.refresh(message)  # its attempts as the claim counted them
    values = _after_failure(error, message.attempts, message.created_at, now)
    db.session.execute(
        update(OutboxMessage)
        .where(OutboxMessage.id == message.id)
        .values(claimed_until=None, **values)
        .execution_options(synchronize_session=False)
    )


class _Untried(NamedTuple):
    """What postponing a message needs, read before a commit expires the loaded rows."""

    id: int
    attempts: int
    created_at: datetime


def _untried(messages: list[OutboxMessage]) -> list[_Untried]:
    """The messages' ids, attempts and ages, as read."""
    return [_Untried(m.id, m.attempts, m.created_at) for m in messages]


def _postpone(messages: list[_Untried], error: BaseException, now: datetime) -> None:
    """Due messages not tried because the server could not be reached: each counts a try."""
    # One UPDATE per (attempts, too old) group; a row another sender took meanwhile no longer
    # matches its attempts or is no longer due, and is left alone.
    groups: dict[tuple[int, bool], tuple[dict, list[int]]] = {}
    for message in messages:
        values = _after_failure(error, message.attempts + 1, message.created_at, now)
        key = (message.attempts, "failed_at" in values)
        groups.setdefault(key, (values, []))[1].append(message.id)
    for (attempts, _too_old), (values, ids) in groups.items():
        db.session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id.in_(ids), OutboxMessage.attempts == attempts, _due(now))
            .values(attempts=attempts + 1, **values)
            .execution_options(synchronize_session=False)
        )
    db.session.commit()


def _id_slices(ids: list[int], size: int) -> Iterator[list[int]]:
    """`ids` sorted, without repeats, `size` at a time."""
    # A billing run's 100,000 ids in one IN (...) exceed the bind parameter limit of
    # PostgreSQL (65,535) and SQLite (32,766).
    wanted = sorted(set(ids))
    for start in range(0, len(wanted), size):
        yield wanted[start : start + size]


def _due_batches(
    ids: list[int] | None, batch_size: int, now: datetime
) -> Iterator[list[OutboxMessage]]:
    """Due messages (all, or those of `ids`) by id, `batch_size` at a time."""
    query = select(OutboxMessage).where(_due(now)).order_by(OutboxMessage.id)
    if ids is not None:
        for chunk in _id_slices(ids, batch_size):
            yield list(db.session.scalars(query.where(OutboxMessage.id.in_(chunk))))
        return
    last_id = 0
    while True:
        batch = list(db.session.scalars(query.where(OutboxMessage.id > last_id).limit(batch_size)))
        if not batch:
            return
        last_id = batch[-1].id  # by id, so a refused message is not picked up again in this run
        yield batch


def _connection_lost(error: BaseException) -> bool:
    """Whether a send error ended the connection (a refusal of one message does not)."""
    # SMTPException is an OSError too: a refusal (4xx/5xx, no SMTPUTF8) leaves the session usable.
    if isinstance(error, smtplib.SMTPServerDisconnected):
        return True
    return isinstance(error, OSError) and not isinstance(error, smtplib.SMTPException)


def _send_batch(
    messages: list[OutboxMessage], clock: Callable[[], datetime]
) -> tuple[int, Exception | None]:
    """Deliver messages over one connection: (how many were sent, the error that stopped it)."""
    untried = _untried(messages)
    db.session.commit()  # nothing of ours stays open while we talk to the server
    try:
        server = _connect()
    except Exception as error:  # down, refused, or the TLS or login set-up failed
        _postpone(untried, error, clock())
        return 0, error
    sent = 0
    try:
        for index, message in enumerate(messages):
            if not _claim(message.id, clock()):
                continue  # sent, failed or taken by another sender since it was read
            try:
                server.send_message(_email(message))
            except Exception as error:
                # Refused, or not sendable here (an address this server cannot take): this one
                # waits, the others go on instead of being blocked behind it.
                _retry_later(message, error, clock())
                if _connection_lost(error):
                    _postpone(untried[index + 1 :], error, clock())  # commits
                    return sent, error
            except BaseException:  # interrupted: give the message back at once, then stop
                db.session.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id == message.id)
                    .values(claimed_until=None)
                    .execution_options(synchronize_session=False)
                )
                db.session.commit()
                raise
            else:
                _mark_sent(message.id, clock())
                sent += 1
        db.session.commit()
    finally:
        _close(server)
    return sent, None


def _close(server: smtplib.SMTP) -> None:
    """Say goodbye to the server; what was sent is committed, so a failing QUIT changes nothing."""
    try:
        server.quit()
    except (OSError, smtplib.SMTPException):
        pass
    finally:
        server.close()


def _left(ids: list[int] | None, batch_size: int) -> tuple[int, int]:
    """Unsent messages (all, or those of `ids`): (waiting for a retry, failed for good)."""
    query = select(func.count(), func.count(OutboxMessage.failed_at)).where(
        OutboxMessage.sent_at.is_(None)
    )
    chunks = [None] if ids is None else list(_id_slices(ids, batch_size))
    unsent = failed = 0
    for chunk in chunks:
        scoped = query if chunk is None else query.where(OutboxMessage.id.in_(chunk))
        chunk_unsent, chunk_failed = db.session.execute(scoped).one()
        unsent += chunk_unsent
        failed += chunk_failed
    return unsent - failed, failed


def send_pending(
    ids: list[int] | None = None, batch_size: int = 500, now: datetime | None = None
) -> Delivery:
    """Deliver the mail that is due (all, or just `ids`): (sent now, waiting, failed for good)."""
    # `now` fixes the clock (tests drive it forward); by default each step reads the time, so a
    # long run's leases are counted from when each message is claimed.
    clock = (lambda: now) if now is not None else utcnow
    sent = 0
    if current_app.config["MAIL_SERVER"]:  # else everything waits for a server to be set
        error = None
        for batch in _due_batches(ids, batch_size, clock()):
            if error is None:
                batch_sent, error = _send_batch(batch, clock)
                sent += batch_sent
            else:  # the server failed on an earlier batch: the rest count a try too
                _postpone(_untried(batch), error, clock())
    waiting, failed = _left(ids, batch_size)
    db.session.expire_all()
    return Delivery(sent, waiting, failed)


def undeliverable_count() -> int:
    """How many messages were given up (shown to the staff until retried)."""
    return db.session.scalar(
        select(func.count()).where(
            OutboxMessage.sent_at.is_(None), OutboxMessage.failed_at.is_not(None)
        )
    )


def retry(message: OutboxMessage) -> None:
    """Make a failed message due again (in the caller's transaction); one more try, at least."""
    message.failed_at = None
    message.next_attempt_at = None


@huey.task()
def send_task(ids: list[int]) -> None:
    """Deliver these messages on the job consumer (what fails waits for the periodic retry)."""
    with app_context():
        send_pending(ids)


def deliver_now(messages: list[OutboxMessage]) -> None:
    """After a commit: have the consumer send these at once; the periodic delivery retries."""
    # Queued, not sent here: a slow or unreachable mail server never holds a web worker.
    if not messages or not current_app.config["MAIL_SEND_AT_ONCE"]:
        return
    try:
        send_task([message.id for message in messages])
    except Exception:  # the operation is committed: an error page would invite a second payment
        db.session.rollback()
        current_app.logger.exception("Mail kept in the outbox for the periodic delivery")
