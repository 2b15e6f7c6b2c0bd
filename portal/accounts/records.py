"""The rows of a new account: fields, search tokens, SIP device, audit entry (single and bulk)."""

import re
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import delete

from portal import audit
from portal.accounts.validation import BILLED_ROLES
from portal.extensions import db
from portal.models import Account, AccountSearchToken, Role, SipDevice, Status
from portal.rules.identifiers import generate_sip_password
from portal.settings.service import get_settings

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


DEFAULT_FIELDS = {
    "country": "default_country",
    "timezone": "default_timezone",
    "currency": "default_currency",
    "valid_days": "default_valid_days",
    "create_sip_device": "default_create_sip_device",
    "account_type": "default_account_type",
    "billing_schedule": "default_billing_schedule",
}


def default_values() -> dict:
    """A new account's field values from the global configuration (what the form pre-fills)."""
    defaults = get_settings(DEFAULT_FIELDS.values())
    return {field: defaults[key] for field, key in DEFAULT_FIELDS.items()}


# The create form's own starting values, besides the configuration's defaults.
FORM_DEFAULTS = {"status": Status.ACTIVE.value, "max_channels": 0, "billing_day": 1}


def form_defaults() -> dict:
    """Every value a new account's form starts with (what an omitted field becomes)."""
    return {**default_values(), **FORM_DEFAULTS}


def account_values(role: Role, clean: dict, password_hash: str, now) -> dict:
    """The column values of a new account from cleaned input (its taxes are rows apart)."""
    owner = clean.get("owner")
    values = {
        "account_number": clean["account_number"],
        "role": role,
        "reseller_id": owner.id if owner else None,
        "tenant_path": owner.subtree_path if owner else "",
        "password_hash": password_hash,
        "created_at": now,
        "updated_at": now,
        "balance": Decimal(0),
    }
    for field in stored_fields(role):
        if field == "rate_group":
            values["rate_group_id"] = clean["rate_group"].id if clean["rate_group"] else None
        elif field != "taxes":
            values[field] = clean[field]
    if role in BILLED_ROLES:
        values["expiry_date"] = now + timedelta(days=clean["valid_days"])
    return values


def new_account(role: Role, clean: dict, password_hash: str, now) -> Account:
    """The Account of cleaned input (not yet in the session), with its rate group and taxes."""
    account = Account(**account_values(role, clean, password_hash, now))
    if role in BILLED_ROLES:
        account.rate_group = clean["rate_group"]
        account.taxes = clean["taxes"]
    return account


def sip_device_values(account_number: str, status) -> dict:
    """A new account's SIP device: username = account number, its own generated password."""
    return {
        "username": account_number,
        "password": generate_sip_password(),
        "context": "default",
        "caller_id_name": account_number,
        "caller_id_number": account_number,
        "status": status,
    }


def add_sip_device(account: Account) -> str:
    """Give a new account its SIP device; return its SIP password."""
    device = SipDevice(**sip_device_values(account.account_number, account.status))
    account.sip_devices.append(device)
    return device.password


def created_changes(account, sip_password: str | None) -> dict:
    """The audit changes of a new account: every stored field, secrets only as set."""
    fields = stored_fields(account.role)
    changes = {f: [None, v] for f, v in audit.snapshot(account, fields).items()}
    changes["password"] = None
    if sip_password:
        changes["sip_device"] = [None, account.account_number]
    return changes


def record_created(actor: Account | None, account: Account, sip_password: str | None) -> None:
    """The audit entry of a new (flushed) account."""
    audit.record(
        actor,
        "create",
        account.role.value,
        account,
        changes=created_changes(account, sip_password),
        label=account.account_number,
        account=account,
    )
