"""Authentication: find the account by number or e-mail and check its password."""

from sqlalchemy import select
from werkzeug.security import generate_password_hash

from portal.extensions import db
from portal.models import Account
from portal.passwords import verify_password

WRONG_CREDENTIALS = "Unknown account or wrong password."

# Checked when no account matches, so a wrong identifier costs as long as a wrong password.
_DUMMY_HASH = generate_password_hash("not-a-real-password-0")


def normalize_identifier(identifier: str) -> str:
    """An account number as typed, or an e-mail in lowercase, without surrounding blanks."""
    identifier = identifier.strip()
    return identifier.lower() if "@" in identifier else identifier


def find_login_account(identifier: str) -> Account | None:
    """The undeleted account whose number or e-mail is `identifier`."""
    value = normalize_identifier(identifier)
    column = Account.email if "@" in value else Account.account_number
    return db.session.scalar(select(Account).where(column == value, Account.deleted_at.is_(None)))


def authenticate(identifier: str, password: str) -> tuple[Account | None, str | None]:
    """Return (account, None) on success, else (None, the message to show)."""
    account = find_login_account(identifier)
    if account is None:
        verify_password(_DUMMY_HASH, password)
        return None, WRONG_CREDENTIALS
    if not verify_password(account.password_hash, password):
        return None, WRONG_CREDENTIALS
    # Only after the right password: without it these look like unknown accounts.
    if not account.is_active:
        return None, "This account is inactive. Contact your provider."
    if account.is_expired:
        return None, f"This account expired on {account.expiry_date:%Y-%m-%d}."
    return account, None
