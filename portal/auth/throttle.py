"""Failed logins and current-password checks, counted in the database per key and client IP."""

import hashlib
import math
from collections.abc import Iterator
from datetime import timedelta

from flask import current_app, request
from limits import RateLimitItem, parse_many
from sqlalchemy import case, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from portal.auth.service import normalize_identifier
from portal.extensions import db
from portal.models import Account, LoginFailureCounter, utcnow

# (setting, scope, value): each counter an attempt is checked and counted against.
Counter = tuple[str, str, str]


def identifier_key(identifier: str) -> str:
    """The counter value of an identifier: hashed, so the table holds no e-mail addresses."""
    # Keyed on what was typed, never on a found account: unknown identifiers count the same.
    return hashlib.sha256(normalize_identifier(identifier).encode()).hexdigest()


def _address() -> str:
    """The client address (behind PROXY_COUNT proxies: the one they forwarded)."""
    return request.remote_addr or "unknown"


def login_counters(identifier: str) -> list[Counter]:
    """A login counts against the identifier typed and against the client address."""
    return [
        ("LOGIN_LIMIT_PER_ACCOUNT", "login-account", identifier_key(identifier)),
        ("LOGIN_LIMIT_PER_IP", "login-ip", _address()),
    ]


def password_check_counters(account: Account) -> list[Counter]:
    """A current-password check counts against the account and, like a login, the address."""
    # The address shares the login's counter: a guess is a guess, on either page.
    return [
        ("LOGIN_LIMIT_PER_ACCOUNT", "password-account", str(account.id)),
        ("LOGIN_LIMIT_PER_IP", "login-ip", _address()),
    ]


def _keys(counters: list[Counter]) -> Iterator[tuple[RateLimitItem, str]]:
    """Each configured limit of each counter with the row key it counts under."""
    for setting, scope, value in counters:
        for item in parse_many(current_app.config[setting]):
            raw = f"{scope}\x00{value}\x00{item.amount}/{item.get_expiry()}"
            yield item, hashlib.sha256(raw.encode()).hexdigest()


def seconds_until_retry(counters: list[Counter]) -> int:
    """0 when the attempt may be made now, else the seconds until it may."""
    limits = {key: item for item, key in _keys(counters)}
    now = utcnow()
    wait = 0
    rows = db.session.execute(
        select(
            LoginFailureCounter.key, LoginFailureCounter.count, LoginFailureCounter.window_end
        ).where(LoginFailureCounter.key.in_(limits), LoginFailureCounter.window_end > now)
    )
    for key, count, window_end in rows:
        if count >= limits[key].amount:
            wait = max(wait, math.ceil((window_end - now).total_seconds()), 1)
    return wait


def _count(key: str, period: timedelta) -> None:
    """Add one failure to the row of `key`; an ended window starts again at 1 (fixed window)."""
    now = utcnow()
    ended = LoginFailureCounter.window_end <= now
    # One statement: concurrent failures in other workers are each counted (row lock).
    # window_end is set last: MariaDB evaluates SET left to right, later ones seeing new values.
    counted = db.session.execute(
        update(LoginFailureCounter)
        .where(LoginFailureCounter.key == key)
        .ordered_values(
            (LoginFailureCounter.count, case((ended, 1), else_=LoginFailureCounter.count + 1)),
            (
                LoginFailureCounter.window_start,
                case((ended, now), else_=LoginFailureCounter.window_start),
            ),
            (
                LoginFailureCounter.window_end,
                case((ended, now + period), else_=LoginFailureCounter.window_end),
            ),
        )
    )
    if counted.rowcount:
        return
    db.session.execute(
        insert(LoginFailureCounter).values(
            key=key, window_start=now, window_end=now + period, count=1
        )
    )


def record_failure(counters: list[Counter]) -> None:
    """Count one failed attempt against each counter (committed at once)."""
    for item, key in _keys(counters):
        period = timedelta(seconds=item.get_expiry())
        try:
            _count(key, period)
            db.session.commit()
        except IntegrityError:
            # Another worker inserted the first row of this key meanwhile: count on it.
            db.session.rollback()
            _count(key, period)
            db.session.commit()


def purge_ended_windows() -> int:
    """Delete counters whose window has ended (the daily purge); how many."""
    result = db.session.execute(
        delete(LoginFailureCounter).where(LoginFailureCounter.window_end <= utcnow())
    )
    db.session.commit()
    return result.rowcount


def retry_message(seconds: int) -> str:
    """The field error shown while attempts are refused."""
    minutes = max(1, math.ceil(seconds / 60))
    unit = "minute" if minutes == 1 else "minutes"
    return f"Too many failed attempts. Try again in {minutes} {unit}."
