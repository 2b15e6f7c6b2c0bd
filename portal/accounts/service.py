"""Account operations: one function and one transaction per operation; every rule is here."""

import re
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import delete, exists, select

from portal.extensions import db
from portal.models import (
    Account,
    AccountSearchToken,
    AccountType,
    BillingSchedule,
    RateGroup,
    Role,
    SipDevice,
    Status,
    Tax,
    utcnow,
)
from portal.passwords import hash_password
from portal.rules.identifiers import (
    NumberSpaceExhausted,
    account_number_error,
    generate_account_number,
    generate_pin,
    generate_sip_password,
    password_error,
    pin_error,
)
from portal.rules.locale import is_country, is_currency, is_timezone, to_e164
from portal.rules.money import parse_amount
from portal.rules.translation import TranslationError, parse_rules
from portal.security import owned_rate_groups, owned_taxes, owner_id_for
from portal.settings.service import get_setting
from portal.transactions import ValidationFailed, transaction

MAX_MONEY = Decimal(10000000000000)  # Numeric(18, 5) holds 13 digits before the point
MAX_VALID_DAYS = 36500
TEXT_LIMITS = {"first_name": 80, "last_name": 80, "company": 120}


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


def account_number_taken(number: str) -> bool:
    """True if any account, deleted ones included, has this number."""
    return bool(db.session.scalar(select(exists().where(Account.account_number == number))))


def new_account_number() -> str:
    """Draw a free account number of the configured length."""
    return generate_account_number(get_setting("account_number_length"), account_number_taken)


def new_pin() -> str:
    """Draw a calling-card PIN of the configured length."""
    return generate_pin(get_setting("pin_length"))


def expiry_for(valid_days: int):
    """Expiry date of an account valid for `valid_days` from now."""
    return utcnow() + timedelta(days=valid_days)


def _normalise_email(raw: str | None) -> tuple[str | None, str | None]:
    """Return (normalised lowercase e-mail or None, error or None)."""
    raw = (raw or "").strip()
    if not raw:
        return None, None
    try:
        result = validate_email(raw, check_deliverability=False)
    except EmailNotValidError as error:
        return None, str(error)
    if len(result.normalized) > 254:
        return None, "The e-mail address is too long."
    return result.normalized.lower(), None


def _money(value, field: str, errors: dict[str, str]) -> Decimal:
    """An amount (empty = 0), recording an error on `field` when it is not one."""
    amount, error = parse_amount(value if value not in (None, "") else "0")
    if error:
        errors[field] = error
    return amount if amount is not None else Decimal(0)


def _to_int(value) -> int | None:
    """An id from a form or JSON value, or None when it is not a whole number."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _sip_username_taken(username: str) -> bool:
    """True if a SIP device already has this username."""
    return bool(db.session.scalar(select(exists().where(SipDevice.username == username))))


def _email_in_use(email: str, except_id: int | None) -> bool:
    """True if another account already has this e-mail."""
    query = select(exists().where(Account.email == email, Account.id != (except_id or -1)))
    return bool(db.session.scalar(query))


def _clean(actor: Account, data: dict, account: Account | None) -> dict:
    """Check a customer's fields against every rule: the values to store, or ValidationFailed."""
    errors: dict[str, str] = {}
    clean: dict = {}

    if account is None:
        number = str(data.get("account_number") or "").strip()
        error = account_number_error(number, get_setting("account_number_length"))
        if error is None and account_number_taken(number):
            error = "This account number is already in use; regenerate it."
        if error:
            errors["account_number"] = error
        clean["account_number"] = number
    number = account.account_number if account else clean["account_number"]

    password = data.get("password") or ""
    if account is None or password:
        error = password_error(password, number, get_setting("password_min_length"))
        if error:
            errors["password"] = error
        clean["password"] = password

    pin = str(data.get("pin") or "").strip()
    error = pin_error(pin, get_setting("pin_length"))
    if error:
        errors["pin"] = error
    clean["pin"] = pin

    for field, limit in TEXT_LIMITS.items():
        value = str(data.get(field) or "").strip()
        if len(value) > limit:
            errors[field] = f"At most {limit} characters."
        clean[field] = value

    country = str(data.get("country") or "")
    if not is_country(country):
        errors["country"] = "Choose a country from the list."
    clean["country"] = country

    telephone = str(data.get("telephone") or "").strip()
    clean["telephone"] = None
    if telephone:
        try:
            clean["telephone"] = to_e164(telephone, country if is_country(country) else None)
        except ValueError as error:
            errors["telephone"] = str(error)

    timezone_name = str(data.get("timezone") or "")
    if not is_timezone(timezone_name):
        errors["timezone"] = "Choose a timezone from the list."
    clean["timezone"] = timezone_name

    try:
        clean["status"] = Status(data.get("status"))
    except ValueError:
        errors["status"] = "Choose Active or Inactive."

    max_channels = data.get("max_channels")
    if not isinstance(max_channels, int) or max_channels < 0 or max_channels > 100000:
        errors["max_channels"] = "Enter a whole number from 0 (unlimited) to 100000."
    clean["max_channels"] = max_channels

    translation = str(data.get("number_translation") or "").strip()
    try:
        parse_rules(translation)
    except TranslationError as error:
        errors["number_translation"] = str(error)
    if len(translation) > 500:
        errors["number_translation"] = "At most 500 characters."
    clean["number_translation"] = translation

    valid_days = data.get("valid_days")
    if not isinstance(valid_days, int) or not 1 <= valid_days <= MAX_VALID_DAYS:
        errors["valid_days"] = f"Enter a number of days from 1 to {MAX_VALID_DAYS}."
    clean["valid_days"] = valid_days

    rate_group_id = _to_int(data.get("rate_group_id"))
    rate_group = None
    if rate_group_id is not None:
        rate_group = db.session.scalar(
            owned_rate_groups(actor).where(
                RateGroup.id == rate_group_id, RateGroup.status == Status.ACTIVE
            )
        )
    if rate_group is None:
        errors["rate_group_id"] = "Choose a rate group: without one the customer cannot call."
    clean["rate_group"] = rate_group

    try:
        schedule = BillingSchedule(data.get("billing_schedule"))
    except ValueError:
        errors["billing_schedule"] = "Choose Daily or Monthly."
        schedule = None
    clean["billing_schedule"] = schedule
    clean["billing_day"] = None
    if schedule == BillingSchedule.MONTHLY:
        billing_day = data.get("billing_day")
        if billing_day in (None, ""):
            errors["billing_day"] = "A monthly schedule needs a billing day (1 to 28)."
        elif not isinstance(billing_day, int) or not 1 <= billing_day <= 28:
            errors["billing_day"] = "The billing day must be from 1 to 28."
        else:
            clean["billing_day"] = billing_day

    currency = str(data.get("currency") or "")
    if not is_currency(currency):
        errors["currency"] = "Choose a currency from the list."
    clean["currency"] = currency
    if rate_group is not None and is_currency(currency) and rate_group.currency != currency:
        # Rates are never converted: the account is billed in its rate group's currency.
        errors["rate_group_id"] = (
            f'Rate group "{rate_group.name}" is priced in {rate_group.currency}, '
            f"not {currency}: choose a {currency} rate group or change the currency."
        )

    try:
        account_type = AccountType(data.get("account_type"))
    except ValueError:
        errors["account_type"] = "Choose Prepaid or Postpaid."
        account_type = None
    clean["account_type"] = account_type
    credit_limit = _money(data.get("credit_limit"), "credit_limit", errors)
    # Credit limit means something only for postpaid; a prepaid account always stores 0.
    clean["credit_limit"] = credit_limit if account_type == AccountType.POSTPAID else Decimal(0)

    tax_ids = {_to_int(t) for t in data.get("tax_ids") or []}
    taxes = []
    if tax_ids:
        taxes = list(
            db.session.scalars(
                owned_taxes(actor).where(Tax.id.in_(tax_ids), Tax.status == Status.ACTIVE)
            )
        )
        if len(taxes) != len(tax_ids):
            errors["tax_ids"] = "Choose taxes from the list."
    clean["taxes"] = taxes

    clean["low_balance_alert"] = _money(data.get("low_balance_alert"), "low_balance_alert", errors)
    clean["email_alerts"] = bool(data.get("email_alerts"))
    email, error = _normalise_email(data.get("email"))
    if error:
        errors["email"] = error
    elif email and _email_in_use(email, account.id if account else None):
        errors["email"] = "Another account already uses this e-mail address."
    elif clean["email_alerts"] and not email:
        errors["email"] = "E-mail alerts need an e-mail address."
    clean["email"] = email

    clean["create_sip_device"] = account is None and bool(data.get("create_sip_device"))
    if clean["create_sip_device"] and number and _sip_username_taken(number):
        errors["create_sip_device"] = "A SIP device with this account number already exists."

    if errors:
        raise ValidationFailed(errors)
    return clean


def check_customer(actor: Account, data: dict, account: Account | None = None) -> dict[str, str]:
    """Return the rule errors of a customer's input without writing anything."""
    try:
        _clean(actor, data, account)
    except ValidationFailed as failed:
        return failed.errors
    return {}


def search_tokens(account: Account) -> set[str]:
    """Lowercase words an account is found by: number, names, company, e-mail and its parts."""
    words = {account.account_number}
    for text in (account.first_name, account.last_name, account.company):
        words.update(w for w in re.split(r"[\s,;]+", (text or "").lower()) if w)
    if account.email:
        local, _, domain = account.email.partition("@")
        words.update({account.email, local, domain})
    return {w[:254] for w in words if w}


def _store_tokens(account: Account) -> None:
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


def create_customer(actor: Account, data: dict) -> CreatedAccount:
    """Create a customer with its taxes and (if asked) its SIP device, in one transaction."""
    clean = _clean(actor, data, None)
    now = utcnow()
    account = Account(
        account_number=clean["account_number"],
        role=Role.CUSTOMER,
        reseller_id=owner_id_for(actor),
        email=clean["email"],
        pin=clean["pin"],
        first_name=clean["first_name"],
        last_name=clean["last_name"],
        company=clean["company"],
        telephone=clean["telephone"],
        country=clean["country"],
        timezone=clean["timezone"],
        status=clean["status"],
        max_channels=clean["max_channels"],
        number_translation=clean["number_translation"],
        valid_days=clean["valid_days"],
        expiry_date=now + timedelta(days=clean["valid_days"]),
        rate_group=clean["rate_group"],
        billing_schedule=clean["billing_schedule"],
        billing_day=clean["billing_day"],
        currency=clean["currency"],
        account_type=clean["account_type"],
        credit_limit=clean["credit_limit"],
        balance=Decimal(0),
        low_balance_alert=clean["low_balance_alert"],
        email_alerts=clean["email_alerts"],
        created_at=now,
        taxes=clean["taxes"],
    )
    account.password_hash = hash_password(clean["password"])
    sip_password = None
    with _transaction():
        db.session.add(account)
        if clean["create_sip_device"]:
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
        _store_tokens(account)
    return CreatedAccount(account, clean["password"], sip_password)


def update_customer(actor: Account, account: Account, data: dict) -> Account:
    """Update a customer; a changed Valid Days resets the expiry; First Used never changes."""
    clean = _clean(actor, data, account)
    with _transaction():
        if clean.get("password"):
            account.password_hash = hash_password(clean["password"])
        for field in [
            "pin",
            "first_name",
            "last_name",
            "company",
            "telephone",
            "country",
            "timezone",
            "status",
            "max_channels",
            "number_translation",
            "rate_group",
            "billing_schedule",
            "billing_day",
            "currency",
            "account_type",
            "credit_limit",
            "low_balance_alert",
            "email_alerts",
            "email",
            "taxes",
        ]:
            setattr(account, field, clean[field])
        if clean["valid_days"] != account.valid_days:
            account.valid_days = clean["valid_days"]
            account.expiry_date = expiry_for(clean["valid_days"])
        _store_tokens(account)
    return account


def set_status(account: Account, status: Status) -> None:
    """Activate or deactivate an account (its SIP devices follow)."""
    with _transaction():
        account.status = status
        for device in account.sip_devices:
            device.status = status


def soft_delete(account: Account) -> None:
    """Delete an account softly: it disappears everywhere but its number is never reused."""
    with _transaction():
        account.deleted_at = utcnow()
        account.status = Status.INACTIVE
        for device in account.sip_devices:
            device.status = Status.INACTIVE


def first_admin_exists() -> bool:
    """True once any administrator exists."""
    return bool(db.session.scalar(select(exists().where(Account.role == Role.ADMIN))))


def create_admin(email: str | None, password: str) -> Account:
    """Create an administrator with a generated account number."""
    normalised, error = _normalise_email(email)
    if error:
        raise ServiceError("email", error)
    if normalised and _email_in_use(normalised, None):
        raise ServiceError("email", "Another account already uses this e-mail address.")
    try:
        number = new_account_number()
    except NumberSpaceExhausted as exhausted:
        raise ServiceError("account_number", str(exhausted)) from exhausted
    error = password_error(password, number, get_setting("password_min_length"))
    if error:
        raise ServiceError("password", error)
    admin = Account(
        account_number=number,
        role=Role.ADMIN,
        email=normalised,
        password_hash=hash_password(password),
        first_name="Administrator",
        status=Status.ACTIVE,
        expiry_date=None,
    )
    try:
        with _transaction():
            db.session.add(admin)
            db.session.flush()
            _store_tokens(admin)
    except ValidationFailed as failed:
        field, message = next(iter(failed.errors.items()))
        raise ServiceError(field, message) from failed
    return admin
