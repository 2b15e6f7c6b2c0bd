"""The customer's own operations: profile, password (ending other sessions), SIP passwords."""

import secrets

from sqlalchemy import delete, exists, select

from portal.accounts.service import search_tokens
from portal.extensions import db
from portal.models import Account, AccountSearchToken, SipDevice
from portal.passwords import hash_password, verify_password
from portal.rules.email_address import normalize_email
from portal.rules.identifiers import generate_sip_password, password_error
from portal.rules.locale import to_e164
from portal.rules.money import parse_amount
from portal.settings.service import get_setting
from portal.transactions import ValidationFailed, transaction

NAME_LIMIT = 80
EMAIL_TAKEN = "Another account already uses this e-mail address."
NOT_CURRENT = "The current password is not correct."


def email_in_use(email: str, except_id: int) -> bool:
    """True if an account other than `except_id` (deleted ones included) has this e-mail."""
    query = select(exists().where(Account.email == email, Account.id != except_id))
    return bool(db.session.scalar(query))


def _store_search_tokens(account: Account) -> None:
    """Re-index the account for the staff search (inside the caller's transaction)."""
    db.session.execute(
        delete(AccountSearchToken).where(AccountSearchToken.account_id == account.id)
    )
    db.session.add_all(
        AccountSearchToken(account_id=account.id, token=token) for token in search_tokens(account)
    )


def _clean_profile(account: Account, data: dict) -> dict:
    """The profile values to store, or ValidationFailed with a message per field."""
    errors: dict[str, str] = {}
    clean: dict = {}
    for field in ("first_name", "last_name"):
        value = str(data.get(field) or "").strip()
        if len(value) > NAME_LIMIT:
            errors[field] = f"At most {NAME_LIMIT} characters."
        clean[field] = value

    telephone = str(data.get("telephone") or "").strip()
    clean["telephone"] = None
    if telephone:
        try:
            clean["telephone"] = to_e164(telephone, account.country)
        except ValueError as error:
            errors["telephone"] = str(error)

    amount, error = parse_amount(str(data.get("low_balance_alert") or "").strip() or "0")
    if error:
        errors["low_balance_alert"] = error
    clean["low_balance_alert"] = amount

    clean["email_alerts"] = bool(data.get("email_alerts"))
    email, error = normalize_email(data.get("email"))
    if error:
        errors["email"] = error
    elif email and email_in_use(email, account.id):
        errors["email"] = EMAIL_TAKEN
    elif clean["email_alerts"] and not email:
        errors["email"] = "E-mail alerts need an e-mail address."
    clean["email"] = email

    if errors:
        raise ValidationFailed(errors)
    return clean


def update_profile(account: Account, data: dict) -> Account:
    """Save the customer's names, telephone (E.164), alert e-mail and low balance alert."""
    clean = _clean_profile(account, data)
    # The UNIQUE index still decides when another request took the e-mail meanwhile.
    with transaction([("email", "email", EMAIL_TAKEN)]):
        for field, value in clean.items():
            setattr(account, field, value)
        _store_search_tokens(account)
    return account


def change_password(account: Account, old_password: str, new_password: str) -> None:
    """Check the current password and the policy, store the new hash, end every other session."""
    errors: dict[str, str] = {}
    if not verify_password(account.password_hash, old_password or ""):
        errors["old_password"] = NOT_CURRENT
    error = password_error(
        new_password or "", account.account_number, get_setting("password_min_length")
    )
    if error:
        errors["new_password"] = error
    if errors:
        raise ValidationFailed(errors)
    with transaction():
        account.password_hash = hash_password(new_password)
        # The token is part of every login id: sessions and remember-me cookies made with the
        # old one are refused by the user loader from now on.
        account.session_token = secrets.token_hex(16)


def own_sip_device(account: Account, device_id: int) -> SipDevice | None:
    """The account's own SIP device with this id; another account's is simply not found."""
    return db.session.scalar(
        select(SipDevice).where(SipDevice.id == device_id, SipDevice.account_id == account.id)
    )


def reset_sip_password(device: SipDevice) -> SipDevice:
    """Give the device a new random SIP password."""
    with transaction():
        device.password = generate_sip_password()
    return device
