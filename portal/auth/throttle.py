"""Failed logins counted per account identifier and per client IP in the limiter's storage."""

import hashlib
import logging
import math
import time
from collections.abc import Iterator

from flask import current_app, request
from limits import RateLimitItem, parse_many

from portal.auth.service import normalize_identifier
from portal.extensions import limiter

log = logging.getLogger(__name__)


def identifier_key(identifier: str) -> str:
    """The counter key of an identifier: hashed, so storage holds no e-mail addresses."""
    # Keyed on what was typed, never on a found account: unknown identifiers count the same.
    return hashlib.sha256(normalize_identifier(identifier).encode()).hexdigest()


def _counters(identifier: str) -> Iterator[tuple[RateLimitItem, tuple[str, ...]]]:
    """Each configured limit with the key it counts under: the identifier's, then the IP's."""
    config = current_app.config
    # The prefix comes from this app's config: the shared Limiter keeps the first app's own.
    prefix = config["RATELIMIT_KEY_PREFIX"]
    address = request.remote_addr or "unknown"
    for setting, scope, key in (
        ("LOGIN_LIMIT_PER_ACCOUNT", "login-account", identifier_key(identifier)),
        ("LOGIN_LIMIT_PER_IP", "login-ip", address),
    ):
        for item in parse_many(config[setting]):
            yield item, (prefix, scope, key)


def seconds_until_retry(identifier: str) -> int:
    """0 when a login with `identifier` may be tried now, else the seconds until it may."""
    wait = 0
    try:
        for item, keys in _counters(identifier):
            if not limiter.limiter.test(item, *keys):
                reset_at, _remaining = limiter.limiter.get_window_stats(item, *keys)
                wait = max(wait, math.ceil(reset_at - time.time()), 1)
    except limiter.storage.base_exceptions:
        # Storage down (Redis): logins keep working unthrottled rather than all failing.
        log.exception("Login throttle storage unavailable; not throttling")
        return 0
    return wait


def record_failure(identifier: str) -> None:
    """Count one failed login against the identifier and against the client IP."""
    try:
        for item, keys in _counters(identifier):
            limiter.limiter.hit(item, *keys)
    except limiter.storage.base_exceptions:
        log.exception("Login throttle storage unavailable; failure not counted")


def retry_message(seconds: int) -> str:
    """The field error shown while logins are refused."""
    minutes = max(1, math.ceil(seconds / 60))
    unit = "minute" if minutes == 1 else "minutes"
    return f"Too many failed attempts. Try again in {minutes} {unit}."
