"""Own operations: profile and SIP passwords (customers), password (every role; ends sessions)."""

from sqlalchemy import select

from portal import audit
from portal.accounts.service import change_access, store_search_tokens
from portal.accounts.validation import email_in_use
from portal.extensions import db
from portal.models import Account, SipDevice
from portal.passwords import verify_password
from portal.rules.currency import parse_money
from portal.rules.email_address import normalize_email
from portal.rules.identifiers import password_error
from portal.rules.locale import to_e164
from portal.settings.service import get_setting
from portal.transactions import ValidationFailed, transaction

NAME_LIMIT = 80
COMPANY_LIMIT = 120
EMAIL_TAKEN = "Another account already uses this e-mail address."
NOT_CURRENT = "The current password is not correct."


def _clean_profile(account: Account, data: dict) -> dict:
    """The profile values to store, or ValidationFailed with a message per field."""
    errors: dict[str, str] = {}
    clean: dict = {}
    for field in ("first_name", "last_name"):
        value = str(data.get(field) or "").strip()
        if len(value) > NAME_LIMIT:
            errors[field] = f"At most {NAME_LIMIT} characters."
        clean[field] = value
    if "company" in data:  # a reseller's profile: the company its documents fall back to
        company = str(data.get("company") or "").strip()
        if len(company) > COMPANY_LIMIT:
            errors["company"] = f"At most {COMPANY_LIMIT} characters."
        clean["company"] = company

    telephone = str(data.get("telephone") or "").strip()
    clean["telephone"] = None
    if telephone:
        try:
            clean["telephone"] = to_e164(telephone, account.country)
        except ValueError as error:
            errors["telephone"] = str(error)

    amount, error = parse_money(
        str(data.get("low_balance_alert") or "").strip() or "0", account.currency
    )
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
    """Save the names (a reseller's company), telephone (E.164), alert e-mail and alert amount."""
    clean = _clean_profile(account, data)
    # The UNIQUE index still decides when another request took the e-mail meanwhile.
    before = audit.snapshot(account, clean)
    with transaction([("email", "email", EMAIL_TAKEN)]):
        for field, value in clean.items():
            setattr(account, field, value)
        store_search_tokens(account)
        changes = audit.diff(before, audit.snapshot(account, clean))
        if changes:
            audit.record(
                account,
                "update",
                account.role.value,
                account,
                label=account.account_number,
                account=account,
                changes=changes,
            )
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
        # Every session ends, this one too: the view logs this browser in again.
        change_access(account, password=new_password)
        audit.record(
            account,
            "update",
            account.role.value,
            account,
            label=account.account_number,
            account=account,
            changes={"password": None},
        )


def own_sip_device(account: Account, device_id: int) -> SipDevice | None:
    """The account's own SIP device with this id; another account's is simply not found."""
    return db.session.scalar(
        select(SipDevice).where(SipDevice.id == device_id, SipDevice.account_id == account.id)
    )
