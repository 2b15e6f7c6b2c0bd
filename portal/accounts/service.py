"""Account operations for every role: one function and one transaction per operation."""

import re
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import delete, exists, select

from portal import audit, mail
from portal.accounts.validation import (
    BILLED_ROLES,
    check_account,
    clean_account,
    expiry_for,
    new_account_number,
    new_pin,
)
from portal.extensions import db
from portal.models import (
    Account,
    AccountSearchToken,
    LedgerEntry,
    Role,
    SipDevice,
    Status,
    utcnow,
)
from portal.passwords import hash_password
from portal.rules.identifiers import NumberSpaceExhausted, generate_sip_password
from portal.transactions import ValidationFailed, transaction

IDENTITY_FIELDS = ("email", "first_name", "last_name", "telephone", "timezone", "status")
BILLING_FIELDS = (
    "company",
    "country",
    "max_channels",
    "number_translation",
    "valid_days",
    "rate_group",
    "billing_schedule",
    "billing_day",
    "currency",
    "account_type",
    "credit_limit",
    "taxes",
    "low_balance_alert",
    "email_alerts",
)
__all__ = ["check_account", "expiry_for", "new_account_number", "new_pin"]


class ServiceError(Exception):
    """A single-field failure (used by the CLI)."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass
class CreatedAccount:
    """A new account and the secrets shown once: the portal password and the SIP password."""

    account: Account
    password: str
    sip_password: str | None
    mail: list = field(default_factory=list)


def stored_fields(role: Role) -> list[str]:
    """The editable columns of an account of `role`."""
    fields = list(IDENTITY_FIELDS)
    if role in BILLED_ROLES:
        fields += BILLING_FIELDS
    if role == Role.CUSTOMER:
        fields.append("pin")
    return fields


def search_tokens(account: Account) -> set[str]:
    """Lowercase words an account is found by: number, names, company, e-mail and its parts."""
    words = {account.account_number}
    for text in (account.first_name, account.last_name, account.company):
        words.update(w for w in re.split(r"[\s,;]+", (text or "").lower()) if w)
    if account.email:
        local, _, domain = account.email.partition("@")
        words.update({account.email, local, domain})
    return {w[:254] for w in words if w}


def store_search_tokens(account: Account) -> None:
    """Replace the account's search tokens (inside the caller's transaction)."""
    if account.id is not None:
        db.session.execute(
            delete(AccountSearchToken).where(AccountSearchToken.account_id == account.id)
        )
    db.session.add_all(
        AccountSearchToken(account_id=account.id, token=token) for token in search_tokens(account)
    )


# Which UNIQUE index a violation names -> the field and message the user sees.
_UNIQUE_FIELDS = (
    ("sip_devices", "create_sip_device", "A SIP device with this account number already exists."),
    ("email", "email", "Another account already uses this e-mail address."),
    ("account_number", "account_number", "This account number is already in use; regenerate it."),
)


def _transaction():
    """The account transaction, with its UNIQUE indexes mapped to fields."""
    return transaction(_UNIQUE_FIELDS)


def create_account(actor: Account | None, role: Role, data: dict) -> CreatedAccount:
    """Create an account of `role` (with its taxes and SIP device, if any) in one transaction."""
    clean = clean_account(actor, role, data)
    now = utcnow()
    owner = clean.get("owner")
    account = Account(
        account_number=clean["account_number"],
        role=role,
        reseller_id=owner.id if owner else None,
        tenant_path=owner.subtree_path if owner else "",
        password_hash=hash_password(clean["password"]),
        created_at=now,
        balance=Decimal(0),
        **{field: clean[field] for field in stored_fields(role)},
    )
    if role in BILLED_ROLES:
        account.expiry_date = now + timedelta(days=clean["valid_days"])
    sip_password = None
    with _transaction():
        db.session.add(account)
        if clean.get("create_sip_device"):
            sip_password = generate_sip_password()
            account.sip_devices.append(
                SipDevice(
                    username=account.account_number,
                    password=sip_password,
                    context="default",
                    caller_id_name=account.account_number,
                    caller_id_number=account.account_number,
                    status=account.status,
                )
            )
        db.session.flush()
        store_search_tokens(account)
        changes = {f: [None, v] for f, v in audit.snapshot(account, stored_fields(role)).items()}
        changes["password"] = None
        if sip_password:
            changes["sip_device"] = [None, account.account_number]
        welcome = []
        if data.get("send_welcome") and account.email:
            # The password goes out only when the creator asked for it explicitly.
            password = clean["password"] if data.get("send_password") else None
            welcome.append(
                mail.queue(
                    "welcome",
                    account.email,
                    "welcome",
                    account,
                    password=password,
                    login_url=mail.login_url(),
                )
            )
        audit.record(
            actor,
            "create",
            role.value,
            account,
            changes=changes,
            label=account.account_number,
            account=account,
        )
    return CreatedAccount(account, clean["password"], sip_password, welcome)


def create_customer(actor: Account, data: dict) -> CreatedAccount:
    """Create a customer (see create_account)."""
    return create_account(actor, Role.CUSTOMER, data)


def _check_money_meaning(account: Account, clean: dict) -> None:
    """Once money is booked, type and currency stay: they give the balance its meaning."""
    # Prepaid 50 is 50 of funds, postpaid 50 is 50 owed; 50 USD is not 50 EUR.
    changed = [
        field
        for field in ("account_type", "currency")
        if field in clean and clean[field] != getattr(account, field)
    ]
    if changed and db.session.scalar(select(exists().where(LedgerEntry.account_id == account.id))):
        raise ValidationFailed(
            dict.fromkeys(changed, "Cannot be changed once money has been booked on the account.")
        )


def update_account(actor: Account | None, account: Account, data: dict) -> Account:
    """Update an account; a changed Valid Days resets the expiry; First Used never changes."""
    clean = clean_account(actor, account.role, data, account)
    _check_money_meaning(account, clean)
    fields = stored_fields(account.role)
    before = audit.snapshot(account, fields)
    with _transaction():
        changes = {}
        if clean.get("password"):
            account.password_hash = hash_password(clean["password"])
            changes["password"] = None
        for field in fields:
            if field == "valid_days":
                continue
            setattr(account, field, clean[field])
        if "valid_days" in clean and clean["valid_days"] != account.valid_days:
            account.valid_days = clean["valid_days"]
            account.expiry_date = expiry_for(clean["valid_days"])
        store_search_tokens(account)
        changes.update(audit.diff(before, audit.snapshot(account, fields)))
        if changes:
            audit.record(
                actor,
                "update",
                account.role.value,
                account,
                changes=changes,
                label=account.account_number,
                account=account,
            )
    return account


def update_customer(actor: Account, account: Account, data: dict) -> Account:
    """Update a customer (see update_account)."""
    return update_account(actor, account, data)


def set_status(actor: Account | None, account: Account, status: Status) -> None:
    """Activate or deactivate an account (its SIP devices follow)."""
    with _transaction():
        old = account.status
        account.status = status
        for device in account.sip_devices:
            device.status = status
        if old != status:
            action = "activate" if status == Status.ACTIVE else "deactivate"
            audit.record(
                actor,
                action,
                account.role.value,
                account,
                changes={"status": [old.value, status.value]},
                label=account.account_number,
                account=account,
            )


def soft_delete(actor: Account | None, account: Account) -> None:
    """Delete an account softly: it disappears everywhere but its number is never reused."""
    with _transaction():
        account.deleted_at = utcnow()
        account.status = Status.INACTIVE
        for device in account.sip_devices:
            device.status = Status.INACTIVE
        audit.record(
            actor,
            "delete",
            account.role.value,
            account,
            label=account.account_number,
            account=account,
        )


def first_admin_exists() -> bool:
    """True once any administrator exists."""
    return bool(db.session.scalar(select(exists().where(Account.role == Role.ADMIN))))


def create_admin(email: str | None, password: str) -> Account:
    """Create an administrator from the command line, through the same rules as the form."""
    try:
        number = new_account_number()
    except NumberSpaceExhausted as exhausted:
        raise ServiceError("account_number", str(exhausted)) from exhausted
    data = {
        "account_number": number,
        "password": password,
        "email": email,
        "first_name": "Administrator",
        "timezone": "UTC",
        "status": Status.ACTIVE.value,
    }
    try:
        return create_account(None, Role.ADMIN, data).account
    except ValidationFailed as failed:
        field, message = next(iter(failed.errors.items()))
        raise ServiceError(field, message) from failed


def reset_sip_password(actor: Account | None, device: SipDevice) -> SipDevice:
    """Give a SIP device a new random password (shown to whoever reset it)."""
    with _transaction():
        device.password = generate_sip_password()
        audit.record(
            actor,
            "update",
            device.account.role.value,
            device.account,
            label=device.account.account_number,
            account=device.account,
            changes={f"SIP password of {device.username}": None},
        )
    return device
