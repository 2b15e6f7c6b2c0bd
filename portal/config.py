"""Configuration: defaults, then the environment, then test overrides."""

import os
import secrets
from pathlib import Path

from babel import Locale, UnknownLocaleError
from limits import parse_many

from portal.private import private_directory

# What is worth compressing: text. Images (PNG, ICO) and fonts in WOFF2 are compressed already.
COMPRESSED_TYPES = [
    "text/html",
    "text/css",
    "text/csv",
    "text/plain",
    "text/javascript",
    "application/javascript",
    "application/json",
    "image/svg+xml",
]


def _secret_key(instance_path: str) -> str:
    """Return SECRET_KEY from the environment, else from instance/secret_key (made once)."""
    from_env = os.environ.get("SECRET_KEY")
    if from_env:
        return from_env
    path = Path(instance_path) / "secret_key"
    try:
        # O_EXCL: when several gunicorn workers start at once only one writes the key.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as handle:
        key = secrets.token_hex(32)
        handle.write(key)
    return key


def _database_url(instance_path: str) -> str:
    """Return DATABASE_URL (PostgreSQL via psycopg 3, MariaDB via PyMySQL), else SQLite."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        return "sqlite:///" + str(Path(instance_path) / "portal.sqlite3")
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    for prefix in ("mysql://", "mariadb://"):
        if url.startswith(prefix):
            return "mysql+pymysql://" + url[len(prefix) :]
    return url


def _flag(name: str, default: str = "0") -> bool:
    """A 0/1 environment switch."""
    return os.environ.get(name, default) == "1"


def _list(name: str) -> list[str] | None:
    """A comma-separated list from the environment, or None when unset or empty."""
    items = [item.strip() for item in os.environ.get(name, "").split(",") if item.strip()]
    return items or None


def _rate_limit(name: str, default: str) -> str:
    """A rate limit such as "5 per 15 minutes" from the environment, checked at start-up."""
    value = os.environ.get(name, default)
    try:
        parse_many(value)
    except ValueError as error:
        raise ValueError(f"{name}={value!r} is not a rate limit like {default!r}") from error
    return value


def _locale(name: str, default: str) -> str:
    """A Babel locale such as "en" or "de_DE" from the environment, checked at start-up."""
    value = os.environ.get(name, default)
    try:
        Locale.parse(value)
    except (ValueError, UnknownLocaleError) as error:
        raise ValueError(f"{name}={value!r} is not a locale like {default!r}") from error
    return value


def load_config(instance_path: str) -> dict:
    """Build the configuration mapping for an app whose instance folder is instance_path."""
    private_directory(Path(instance_path))
    session_cookie_secure = _flag("SESSION_COOKIE_SECURE")
    return {
        "SECRET_KEY": _secret_key(instance_path),
        "SQLALCHEMY_DATABASE_URI": _database_url(instance_path),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": session_cookie_secure,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        # Follows SESSION_COOKIE_SECURE unless set: behind HTTPS both cookies stay on TLS.
        "REMEMBER_COOKIE_SECURE": _flag(
            "REMEMBER_COOKIE_SECURE", "1" if session_cookie_secure else "0"
        ),
        "LOGIN_LIMIT_PER_ACCOUNT": _rate_limit("LOGIN_LIMIT_PER_ACCOUNT", "5 per 15 minutes"),
        "LOGIN_LIMIT_PER_IP": _rate_limit("LOGIN_LIMIT_PER_IP", "30 per 15 minutes"),
        "WTF_CSRF_TIME_LIMIT": None,
        "ACCOUNTS_PER_PAGE": 25,
        # How many reverse proxies (nginx, a load balancer) sit in front and set X-Forwarded-*.
        "PROXY_COUNT": int(os.environ.get("PROXY_COUNT", "0")),
        "PASSWORD_HASH_METHOD": "scrypt",
        # Mail: without MAIL_SERVER messages wait in the outbox for `flask mail send`.
        "MAIL_SERVER": os.environ.get("MAIL_SERVER", ""),
        "MAIL_PORT": int(os.environ.get("MAIL_PORT", "25")),
        "MAIL_USERNAME": os.environ.get("MAIL_USERNAME", ""),
        "MAIL_PASSWORD": os.environ.get("MAIL_PASSWORD", ""),
        "MAIL_USE_TLS": os.environ.get("MAIL_USE_TLS", "0") == "1",
        "MAIL_USE_SSL": os.environ.get("MAIL_USE_SSL", "0") == "1",
        "MAIL_FROM": os.environ.get("MAIL_FROM", "billing@localhost"),
        "MAIL_TIMEOUT": float(os.environ.get("MAIL_TIMEOUT", "10")),
        "MAIL_SEND_AT_ONCE": os.environ.get("MAIL_SEND_AT_ONCE", "1") == "1",
        "MAIL_MESSAGE_ID_DOMAIN": os.environ.get("MAIL_MESSAGE_ID_DOMAIN", "portal.local"),
        # A message still refused this long after it was queued is marked failed (3 days).
        "MAIL_GIVE_UP_HOURS": float(os.environ.get("MAIL_GIVE_UP_HOURS", "72")),
        # The portal's public address, for links in e-mails (`make run` sets it from HOST and
        # PORT when unset). Without it a link uses the request's host only if that host is in
        # TRUSTED_HOSTS (which then refuses any other Host with a 400); else it is a bare path.
        "PORTAL_URL": os.environ.get("PORTAL_URL", "").rstrip("/"),
        "TRUSTED_HOSTS": _list("TRUSTED_HOSTS"),
        # How amounts read on pages, documents and e-mails (Babel: separators, code position).
        "PORTAL_LOCALE": _locale("PORTAL_LOCALE", "en"),
        "INVOICE_DUE_DAYS": int(os.environ.get("INVOICE_DUE_DAYS", "15")),
        # Accounts a billing run bills per transaction (one job each, for any consumer).
        "BILLING_CHUNK_SIZE": int(os.environ.get("BILLING_CHUNK_SIZE", "1000")),
        # A call reserves at most this many seconds of credit; longer calls re-authorize.
        "CALL_RESERVE_SECONDS": int(os.environ.get("CALL_RESERVE_SECONDS", "3600")),
        "CALL_REAP_GRACE_SECONDS": int(os.environ.get("CALL_REAP_GRACE_SECONDS", "300")),
        # Authorizations (reservations, refusals) commit without waiting for the disk: a crash
        # of the database server may lose the last moment's ones, never a ledger entry.
        "CALLS_ASYNC_COMMIT": _flag("CALLS_ASYNC_COMMIT", "1"),
        # Where FreeSWITCH bridges an authorized call: the dialled number is appended.
        "FREESWITCH_GATEWAY": os.environ.get("FREESWITCH_GATEWAY", "sofia/gateway/carrier/"),
        # Response compression (Flask-Compress): gzip when the client accepts it, for answers
        # of at least COMPRESS_MIN_SIZE bytes (tiny JSON answers stay as they are) and for
        # streamed CSV downloads. COMPRESS_RESPONSES=0 turns it off (a proxy compresses).
        "COMPRESS_REGISTER": _flag("COMPRESS_RESPONSES", "1"),
        "COMPRESS_ALGORITHM": ["gzip"],
        "COMPRESS_ALGORITHM_STREAMING": ["gzip"],
        "COMPRESS_LEVEL": int(os.environ.get("COMPRESS_LEVEL", "6")),
        "COMPRESS_MIN_SIZE": 500,
        "COMPRESS_MIMETYPES": COMPRESSED_TYPES,
        # Rate files up to 10 MB plus form overhead; plain form fields stay capped by
        # Werkzeug's MAX_FORM_MEMORY_SIZE (500 kB).
        "MAX_CONTENT_LENGTH": 12 * 1024 * 1024,
    }
