"""Login sessions kept on the server: one row per login, ended by logout or an access change."""

import hashlib
import secrets
from datetime import timedelta

from flask import current_app
from flask_login.config import COOKIE_DURATION
from sqlalchemy import delete, select, update

from portal.ancestors import stopped_by
from portal.extensions import db
from portal.models import Account, LoginSession, utcnow

USER_AGENT_LENGTH = 200
# last_seen_at is written at most this often per session, not on every request.
SEEN_EVERY = timedelta(minutes=1)


def _hash(token: str) -> str:
    """The stored form of a session token."""
    return hashlib.sha256(token.encode()).hexdigest()


def start_session(account: Account, remember: bool, user_agent: str = "") -> str:
    """Add a login session row for `account` (committed) and make it the account's login id."""
    token = secrets.token_urlsafe(32)
    row = LoginSession(
        account_id=account.id,
        token_hash=_hash(token),
        remember=remember,
        user_agent=(user_agent or "")[:USER_AGENT_LENGTH],
    )
    db.session.add(row)
    db.session.commit()
    account.login_id = f"{row.id}:{token}"
    return account.login_id


def _parse(login_id: str | None) -> tuple[int, str] | None:
    """(row id, token) of a login id "id:token", or None when it is not one."""
    row_id, _, token = (login_id or "").partition(":")
    if not row_id.isdigit() or len(row_id) > 10 or not token:
        return None
    return int(row_id), token


def load_session(login_id: str) -> Account | None:
    """The account of a live login session, or None (unknown row, wrong token, no access)."""
    parsed = _parse(login_id)
    if parsed is None:
        return None
    row_id, token = parsed
    found = db.session.execute(
        select(LoginSession, Account)
        .join(Account, Account.id == LoginSession.account_id)
        .where(LoginSession.id == row_id)
    ).first()
    if found is None:
        return None
    session, account = found
    if not secrets.compare_digest(session.token_hash, _hash(token)):
        return None
    if not account.is_active or account.is_expired:
        return None
    # A reseller above it was deactivated: refused, not ended, so a reactivation revives it.
    if stopped_by(db.session.connection(), account.tenant_path):
        return None
    now = utcnow()
    if now - session.last_seen_at >= SEEN_EVERY:
        db.session.execute(
            update(LoginSession).where(LoginSession.id == row_id).values(last_seen_at=now)
        )
        db.session.commit()
    account.login_id = login_id
    return account


def end_session(login_id: str | None) -> None:
    """Delete the session row of this login (committed): its cookies open nothing any more."""
    parsed = _parse(login_id)
    if parsed is not None:
        db.session.execute(delete(LoginSession).where(LoginSession.id == parsed[0]))
        db.session.commit()


def end_all_sessions(account: Account) -> int:
    """Delete every session row of `account` inside the caller's transaction; how many."""
    result = db.session.execute(delete(LoginSession).where(LoginSession.account_id == account.id))
    return result.rowcount


def sessions_of(account: Account) -> list[LoginSession]:
    """The account's live sessions, most recently seen first."""
    return list(
        db.session.scalars(
            select(LoginSession)
            .where(LoginSession.account_id == account.id)
            .order_by(LoginSession.last_seen_at.desc(), LoginSession.id.desc())
        )
    )


def purge_idle_sessions() -> int:
    """Delete sessions unseen for longer than a remember-me cookie lives (daily); how many."""
    # Browsers closed without logging out leave their rows; past the remember-me cookie's
    # lifetime (Flask-Login's REMEMBER_COOKIE_DURATION, 365 days) none of their cookies is kept.
    max_idle = current_app.config.get("REMEMBER_COOKIE_DURATION", COOKIE_DURATION)
    if not isinstance(max_idle, timedelta):
        max_idle = timedelta(seconds=max_idle)
    result = db.session.execute(
        delete(LoginSession).where(LoginSession.last_seen_at < utcnow() - max_idle)
    )
    db.session.commit()
    return result.rowcount


def current_session_id(account: Account) -> int | None:
    """The row id of the session this request runs under."""
    parsed = _parse(account.login_id)
    return parsed[0] if parsed else None
