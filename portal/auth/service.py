"""Authentication: find the account by number or e-mail and check its password."""

from sqlalchemy import select
from werkzeug.security import generate_password_hash

from portal.extensions import db
from portal.models import Account
from portal.passwords import verify_password

# Checked when no account matches, so a wrong identifier costs as long as a wrong password.
_DUMMY_HASH = generate_password_hash("not-a-real-password-0")


def find_login_account(identifier: str) -> Account | None:
    """The undeleted account whose number or e-mail is `identifier`."""
    identifier = identifier.strip()
    column = Account.email if "@" in identifier else Account.account_number
    value = identifier.lower() if "@" in identifier else identifier
    return db.session.scalar(select(Account).where(column == value, Account.deleted_at.is_(None)))


def authenticate(identifier: str, password: str) -> tuple[Account | None, str | None]:
    """Return (account, None) on success, else (None, the message to show)."""
    account = find_login_account(identifier)
    if account is None:
        verify_password(_DUMMY_HASH, password)
        return None, "Unknown account or wrong password."
    if not verify_password(account.password_hash, password):
        return None, "Unknown account or wrong password."
    if not account.is_active:
        return None, "This account is inactive. Contact your provider."
    return account, None
