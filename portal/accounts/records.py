"""The rows of a new account: fields, search tokens, SIP device, audit entry (single and bulk)."""

import re
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import delete

from portal import audit
from portal.accounts.validation import BILLED_ROLES
from portal.extensions import db
from portal.models import Account, AccountSearchToken, Role, SipDevice
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


def new_account(role: Role, clean: dict, password_hash: str, now) -> Account:
    """The Account row of cleaned values (not yet in the session)."""
    owner = clean.get("owner")
    account = Account(
        account_number=clean["account_number"],
        role=role,
        reseller_id=owner.id if owner else None,
        tenant_path=owner.subtree_path if owner else "",
        password_hash=password_hash,
        created_at=now,
        balance=Decimal(0),
        **{field: clean[field] for field in stored_fields(role)},
    )
    if role in BILLED_ROLES:
        account.expiry_date = now + timedelta(days=clean["valid_days"])
    return account


def add_sip_device(account: Account) -> str:
    """Give a new account its SIP device (username = account number); return its SIP password."""
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
    return sip_password


def record_created(actor: Account | None, account: Account, sip_password: str | None) -> None:
    """The audit entry of a new (flushed) account: every stored field, secrets as changed."""
    fields = stored_fields(account.role)
    changes = {f: [None, v] for f, v in audit.snapshot(account, fields).items()}
    changes["password"] = None
    if sip_password:
        changes["sip_device"] = [None, account.account_number]
    audit.record(
        actor,
        "create",
        account.role.value,
        account,
        changes=changes,
        label=account.account_number,
        account=account,
    )
