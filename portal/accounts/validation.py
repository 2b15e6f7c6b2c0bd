"""Every rule of the account forms, for every role: values to store, or field errors."""

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import exists, select

from portal.extensions import db
from portal.ids import to_id
from portal.models import (
    Account,
    AccountType,
    BillingSchedule,
    RateGroup,
    Role,
    SipDevice,
    Status,
    Tax,
    utcnow,
)
from portal.products.subscriptions import offered_product
from portal.rules.currency import parse_money
from portal.rules.email_address import normalize_email
from portal.rules.identifiers import (
    account_number_error,
    generate_account_number,
    generate_pin,
    password_error,
    pin_error,
)
from portal.rules.locale import is_country, is_currency, is_timezone, to_e164
from portal.rules.money import parse_amount
from portal.rules.translation import TranslationError, parse_rules
from portal.security import STAFF, rate_groups_of, taxes_of, visible_resellers
from portal.settings.service import get_setting, get_settings
from portal.transactions import ValidationFailed

MAX_VALID_DAYS = 36500
NAME_LIMITS = {"first_name": 80, "last_name": 80}
BILLED_ROLES = (Role.CUSTOMER, Role.RESELLER)
LIMIT_SETTINGS = ("account_number_length", "password_min_length", "pin_length")


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


def email_in_use(email: str, except_id: int | None) -> bool:
    """True if another account already has this e-mail."""
    query = select(exists().where(Account.email == email, Account.id != (except_id or -1)))
    return bool(db.session.scalar(query))


def sip_username_taken(username: str) -> bool:
    """True if a SIP device already has this username."""
    return bool(db.session.scalar(select(exists().where(SipDevice.username == username))))


class _Checker:
    """Collects the clean values and the field errors of one submission."""

    def __init__(self, data: dict):
        self.data = data
        self.clean: dict = {}
        self.errors: dict[str, str] = {}

    def text(self, field: str, limit: int) -> str:
        """A stripped text field of at most `limit` characters."""
        value = str(self.data.get(field) or "").strip()
        if len(value) > limit:
            self.errors[field] = f"At most {limit} characters."
        self.clean[field] = value
        return value

    def money(self, field: str, currency: str | None = None) -> Decimal:
        """An amount (empty = 0), at most as fine as the minor unit of `currency` when known."""
        value = self.data.get(field)
        value = value if value not in (None, "") else "0"
        if currency is not None and is_currency(currency):
            amount, error = parse_money(value, currency)
        else:  # the currency field's own error is reported; check at the finest precision
            amount, error = parse_amount(value)
        if error:
            self.errors[field] = error
        self.clean[field] = amount if amount is not None else Decimal(0)
        return self.clean[field]

    def whole(self, field: str, low: int, high: int, message: str) -> int | None:
        """A whole number in low..high."""
        value = self.data.get(field)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            self.errors[field] = message
        self.clean[field] = value
        return value

    def choice(self, field: str, enum_class, message: str):
        """A member of `enum_class`."""
        try:
            self.clean[field] = enum_class(self.data.get(field))
        except ValueError:
            self.errors[field] = message
            self.clean[field] = None
        return self.clean[field]


def _identity(check: _Checker, role: Role, account: Account | None, limits: dict) -> str:
    """Number, password, names, e-mail, telephone, timezone, status: every role has them."""
    data, errors = check.data, check.errors
    if account is None:
        number = str(data.get("account_number") or "").strip()
        error = account_number_error(number, limits["account_number_length"])
        if error is None and account_number_taken(number):
            error = "This account number is already in use; regenerate it."
        if error:
            errors["account_number"] = error
        check.clean["account_number"] = number
    number = account.account_number if account else check.clean["account_number"]

    password = data.get("password") or ""
    if account is None or password:
        error = password_error(password, number, limits["password_min_length"])
        if error:
            errors["password"] = error
        check.clean["password"] = password

    for field, limit in NAME_LIMITS.items():
        check.text(field, limit)

    country = str(data.get("country") or "") if role in BILLED_ROLES else ""
    telephone = str(data.get("telephone") or "").strip()
    check.clean["telephone"] = None
    if telephone:
        try:
            check.clean["telephone"] = to_e164(telephone, country if is_country(country) else None)
        except ValueError as error:
            errors["telephone"] = str(error)

    timezone_name = str(data.get("timezone") or "")
    if not is_timezone(timezone_name):
        errors["timezone"] = "Choose a timezone from the list."
    check.clean["timezone"] = timezone_name
    check.choice("status", Status, "Choose Active or Inactive.")

    email, error = normalize_email(data.get("email"))
    if error:
        errors["email"] = error
    elif email and email_in_use(email, account.id if account else None):
        errors["email"] = "Another account already uses this e-mail address."
    check.clean["email"] = email
    return number


def _owner(check: _Checker, actor: Account, account: Account | None) -> Account | None:
    """Who the account belongs to: the reseller actor itself, or the reseller staff picked."""
    if account is not None:
        return account.reseller  # moving accounts between tenants is not an edit
    if actor.role not in STAFF:
        return actor
    raw = check.data.get("reseller_id")
    if raw in (None, "", "0", 0):
        return None
    reseller = db.session.scalar(
        visible_resellers(actor).where(Account.id == to_id(raw), Account.status == Status.ACTIVE)
    )
    if reseller is None:
        check.errors["reseller_id"] = "Choose a reseller from the list."
    return reseller


def _billing(check: _Checker, owner: Account | None, role: Role) -> None:
    """The calling and billing fields of customers and resellers."""
    data, errors, clean = check.data, check.errors, check.clean
    check.text("company", 120)
    country = str(data.get("country") or "")
    if not is_country(country):
        errors["country"] = "Choose a country from the list."
    clean["country"] = country
    check.whole("max_channels", 0, 100000, "Enter a whole number from 0 (unlimited) to 100000.")
    translation = check.text("number_translation", 500)
    try:
        parse_rules(translation)
    except TranslationError as error:
        errors.setdefault("number_translation", str(error))
    check.whole(
        "valid_days", 1, MAX_VALID_DAYS, f"Enter a number of days from 1 to {MAX_VALID_DAYS}."
    )

    owner_id = owner.id if owner else None
    rate_group_id = to_id(data.get("rate_group_id"))
    rate_group = None
    if rate_group_id is not None:
        rate_group = db.session.scalar(
            rate_groups_of(owner_id).where(
                RateGroup.id == rate_group_id, RateGroup.status == Status.ACTIVE
            )
        )
    if rate_group is None:
        errors["rate_group_id"] = (
            f"Choose a rate group: without one the {role.label.lower()} cannot make calls."
        )
    clean["rate_group"] = rate_group

    schedule = check.choice("billing_schedule", BillingSchedule, "Choose Daily or Monthly.")
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

    account_type = check.choice("account_type", AccountType, "Choose Prepaid or Postpaid.")
    credit_limit = check.money("credit_limit", currency)
    # Credit limit means something only for postpaid; a prepaid account always stores 0.
    clean["credit_limit"] = credit_limit if account_type == AccountType.POSTPAID else Decimal(0)

    taxes = owner_taxes(owner_id, data.get("tax_ids"))
    if taxes is None:
        errors["tax_ids"] = "Choose taxes from the list."
    clean["taxes"] = taxes or []

    check.money("low_balance_alert", currency)
    clean["email_alerts"] = bool(data.get("email_alerts"))
    if clean["email_alerts"] and not clean.get("email") and "email" not in errors:
        errors["email"] = "E-mail alerts need an e-mail address."


def owner_taxes(owner_id: int | None, raw_ids) -> list[Tax] | None:
    """The owner's active taxes with these ids, or None when any id is not one of them."""
    tax_ids = {to_id(t) for t in raw_ids or []}
    if not tax_ids:
        return []
    taxes = list(
        db.session.scalars(
            taxes_of(owner_id).where(Tax.id.in_(tax_ids), Tax.status == Status.ACTIVE)
        )
    )
    return taxes if len(taxes) == len(tax_ids) else None


def clean_account(
    actor: Account, role: Role, data: dict, account: Account | None = None, limits=None
) -> dict:
    """Check an account against every rule of its role: the values to store, or ValidationFailed."""
    # limits: the configured lengths (LIMIT_SETTINGS), read once by a caller checking many rows.
    limits = limits or get_settings(LIMIT_SETTINGS)
    check = _Checker(data)
    number = _identity(check, role, account, limits)
    if role in BILLED_ROLES:
        check.clean["owner"] = _owner(check, actor, account)
        _billing(check, check.clean["owner"], role)
    if role == Role.CUSTOMER:
        pin = str(data.get("pin") or "").strip()
        error = pin_error(pin, limits["pin_length"])
        if error:
            check.errors["pin"] = error
        check.clean["pin"] = pin
        create_device = account is None and bool(data.get("create_sip_device"))
        check.clean["create_sip_device"] = create_device
        if account is None:
            owner = check.clean.get("owner")
            product, error = offered_product(
                owner.id if owner else None, check.clean.get("currency"), data.get("product_id")
            )
            if error:
                check.errors["product_id"] = error
            check.clean["product"] = product
        if create_device and number and sip_username_taken(number):
            check.errors["create_sip_device"] = (
                "A SIP device with this account number already exists."
            )
    if check.errors:
        raise ValidationFailed(check.errors)
    return check.clean


def check_account(
    actor: Account, role: Role, data: dict, account: Account | None = None
) -> dict[str, str]:
    """The rule errors of an account's input, without writing anything."""
    try:
        clean_account(actor, role, data, account)
    except ValidationFailed as failed:
        return failed.errors
    return {}
