"""Account operations for every role: one function and one transaction per operation."""

from dataclasses import dataclass, field

from sqlalchemy import exists, select

from portal import audit, mail
from portal.accounts.records import (
    add_sip_device,
    form_defaults,
    new_account,
    record_created,
    search_tokens,
    store_search_tokens,
    stored_fields,
)
from portal.accounts.validation import (
    check_account,
    clean_account,
    expiry_for,
    new_account_number,
    new_pin,
)
from portal.auth.sessions import end_all_sessions
from portal.extensions import db
from portal.models import (
    Account,
    LedgerEntry,
    Role,
    SipDevice,
    Status,
    utcnow,
)
from portal.passwords import hash_password
from portal.products.subscriptions import account_today, add_subscription, record_subscribed
from portal.rules.identifiers import NumberSpaceExhausted, generate_sip_password
from portal.transactions import ValidationFailed, transaction

__all__ = [
    "check_account",
    "form_defaults",
    "expiry_for",
    "new_account_number",
    "new_pin",
    "search_tokens",
    "store_search_tokens",
    "stored_fields",
]


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
    account = new_account(role, clean, hash_password(clean["password"]), utcnow())
    sip_password = None
    with _transaction():
        db.session.add(account)
        if clean.get("create_sip_device"):
            sip_password = add_sip_device(account)
        db.session.flush()
        store_search_tokens(account)
        if clean.get("product") is not None:
            subscription = add_subscription(account, clean["product"], account_today(account))
            record_subscribed(actor, subscription, account)
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
        record_created(actor, account, sip_password)
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
            changes["password"] = None
        change_access(account, password=clean.get("password"), status=clean.get("status"))
        for field in fields:
            if field in ("valid_days", "status"):
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


def change_access(
    account: Account,
    *,
    password: str | None = None,
    status: Status | None = None,
    delete: bool = False,
) -> None:
    """Set a new password, status or deletion: the one way they change (caller's transaction)."""
    # A password change or reset by anyone, a deactivation and a deletion end every login
    # session of the account, remember-me cookies included; a reactivation revives none.
    ends = False
    if password:
        account.password_hash = hash_password(password)
        ends = True
    if status is not None and status != account.status:
        account.status = status
        ends = ends or status == Status.INACTIVE
    if delete:
        account.deleted_at = utcnow()
        account.status = Status.INACTIVE
        ends = True
    if ends:
        end_all_sessions(account)


def set_status(actor: Account | None, account: Account, status: Status) -> None:
    """Activate or deactivate an account (its SIP devices follow)."""
    with _transaction():
        old = account.status
        change_access(account, status=status)
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
        change_access(account, delete=True)
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
