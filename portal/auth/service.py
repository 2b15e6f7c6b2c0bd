"""Authentication: find the account by number or e-mail and check its password."""

from functools import cache

from flask import current_app
from sqlalchemy import select, update
from werkzeug.security import generate_password_hash

from portal.ancestors import stopped_by
from portal.extensions import db
from portal.models import Account
from portal.passwords import FAST_HASH_METHOD, hash_password, verify_password

WRONG_CREDENTIALS = "Unknown account or wrong password."


@cache
def _dummy_hash(method: str) -> str:
    """A hash of the configured method, checked when no account matches (made once)."""
    return generate_password_hash("not-a-real-password-0", method=method)


def _slow_dummy_check(password: str) -> None:
    """Spend what checking a password with the configured (slow) method costs."""
    verify_password(_dummy_hash(current_app.config["PASSWORD_HASH_METHOD"]), password)


def _fast_hashed(password_hash: str) -> bool:
    """True for a generated secret's fast hash when the configured method is another one."""
    fast = password_hash.startswith(FAST_HASH_METHOD + "$")
    return fast and current_app.config["PASSWORD_HASH_METHOD"] != FAST_HASH_METHOD


def normalize_identifier(identifier: str) -> str:
    """An account number as typed, or an e-mail in lowercase, without surrounding blanks."""
    identifier = identifier.strip()
    return identifier.lower() if "@" in identifier else identifier


def find_login_account(identifier: str) -> Account | None:
    """The undeleted account whose number or e-mail is `identifier`."""
    value = normalize_identifier(identifier)
    column = Account.email if "@" in value else Account.account_number
    return db.session.scalar(select(Account).where(column == value, Account.deleted_at.is_(None)))


def check_password(account: Account, password: str) -> bool:
    """Check an account's password at the cost of the configured method, whatever its hash."""
    # Bulk-created accounts have a fast hash (passwords.FAST_HASH_METHOD): without the dummy
    # check a wrong password would answer 15x faster than an unknown identifier, telling which
    # accounts exist. Their first right password is rehashed instead (as slow).
    fast = _fast_hashed(account.password_hash)
    if verify_password(account.password_hash, password):
        if fast:
            db.session.execute(
                update(Account)
                .where(Account.id == account.id, Account.password_hash == account.password_hash)
                .values(password_hash=hash_password(password))
            )
            db.session.commit()
        return True
    if fast:
        _slow_dummy_check(password)
    return False


def authenticate(identifier: str, password: str) -> tuple[Account | None, str | None]:
    """Return (account, None) on success, else (None, the message to show)."""
    account = find_login_account(identifier)
    if account is None:
        _slow_dummy_check(password)
        return None, WRONG_CREDENTIALS
    if not check_password(account, password):
        return None, WRONG_CREDENTIALS
    # Only after the right password: without it these look like unknown accounts.
    if not account.is_active:
        return None, "This account is inactive. Contact your provider."
    if stopped_by(db.session.connection(), account.tenant_path):
        # A reseller above it is inactive: its whole subtree is stopped until reactivated.
        return None, "This account is inactive. Contact your provider."
    if account.is_expired:
        return None, f"This account expired on {account.expiry_date:%Y-%m-%d}."
    return account, None
