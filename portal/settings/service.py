"""Typed global settings stored in the settings table, with defaults, ranges and help."""

from collections.abc import Callable
from dataclasses import dataclass, field

from email_validator import EmailNotValidError, validate_email

from portal import audit
from portal.extensions import db
from portal.models import Setting
from portal.rules.locale import country_choices, currency_choices, timezone_choices

ACCOUNT_TYPES = [("prepaid", "Prepaid"), ("postpaid", "Postpaid")]
SCHEDULES = [("daily", "Daily"), ("monthly", "Monthly")]


@dataclass(frozen=True)
class SettingDefinition:
    """One setting: key, label, help, group, kind (int, choice, bool, text, email) and limits."""

    key: str
    label: str
    help: str
    group: str
    kind: str
    default: object
    minimum: int = 0
    maximum: int = 0
    choices: Callable[[], list[tuple[str, str]]] | None = None
    max_length: int = 200
    multiline: bool = False
    extra: dict = field(default_factory=dict)


def _definitions() -> list[SettingDefinition]:
    """Every setting, in the order the configuration page shows them."""
    return [
        SettingDefinition(
            "account_number_length",
            "Account number length",
            "Digits in a generated account number; the form accepts exactly this many.",
            "Account numbers",
            "int",
            10,
            6,
            20,
        ),
        SettingDefinition(
            "pin_length",
            "PIN length",
            "Digits in a calling-card PIN.",
            "Calling card",
            "int",
            6,
            4,
            12,
        ),
        SettingDefinition(
            "default_country",
            "Country",
            "",
            "Defaults for new accounts",
            "choice",
            "US",
            choices=country_choices,
        ),
        SettingDefinition(
            "default_timezone",
            "Timezone",
            "",
            "Defaults for new accounts",
            "choice",
            "UTC",
            choices=timezone_choices,
        ),
        SettingDefinition(
            "default_currency",
            "Currency",
            "Also the currency of the rate group created on first start.",
            "Defaults for new accounts",
            "choice",
            "USD",
            choices=currency_choices,
        ),
        SettingDefinition(
            "default_valid_days",
            "Valid days",
            "Days until a new account expires.",
            "Defaults for new accounts",
            "int",
            3650,
            1,
            36500,
        ),
        SettingDefinition(
            "default_create_sip_device",
            "Create SIP device",
            "Tick the box on the form by default.",
            "Defaults for new accounts",
            "bool",
            True,
        ),
        SettingDefinition(
            "default_account_type",
            "Account type",
            "",
            "Defaults for new accounts",
            "choice",
            "prepaid",
            choices=lambda: ACCOUNT_TYPES,
        ),
        SettingDefinition(
            "default_billing_schedule",
            "Billing schedule",
            "",
            "Defaults for new accounts",
            "choice",
            "monthly",
            choices=lambda: SCHEDULES,
        ),
        SettingDefinition(
            "password_min_length",
            "Minimum password length",
            "Portal passwords also need letters and digits and may not equal the account number.",
            "Password policy",
            "int",
            8,
            8,
            64,
        ),
        SettingDefinition(
            "company_name",
            "Company name",
            "Shown on invoices and receipts.",
            "Company profile for invoices",
            "text",
            "",
            max_length=120,
        ),
        SettingDefinition(
            "company_address",
            "Address",
            "",
            "Company profile for invoices",
            "text",
            "",
            max_length=500,
            multiline=True,
        ),
        SettingDefinition(
            "company_tax_number",
            "Tax number",
            "VAT / GST registration number.",
            "Company profile for invoices",
            "text",
            "",
            max_length=50,
        ),
        SettingDefinition(
            "company_email",
            "E-mail",
            "Where customers reply to invoices.",
            "Company profile for invoices",
            "email",
            "",
            max_length=254,
        ),
    ]


DEFINITIONS = {definition.key: definition for definition in _definitions()}


def setting_error(definition: SettingDefinition, value) -> str | None:
    """Why `value` is not acceptable for `definition`, or None."""
    if definition.kind == "int":
        if not isinstance(value, int) or isinstance(value, bool):
            return "Enter a whole number."
        if not definition.minimum <= value <= definition.maximum:
            return f"Must be between {definition.minimum} and {definition.maximum}."
    elif definition.kind == "choice":
        if value not in dict(definition.choices()):
            return "Choose a value from the list."
    elif definition.kind == "bool":
        if not isinstance(value, bool):
            return "Must be yes or no."
    else:
        if not isinstance(value, str):
            return "Enter text."
        if len(value) > definition.max_length:
            return f"At most {definition.max_length} characters."
        if definition.kind == "email" and value:
            try:
                validate_email(value, check_deliverability=False)
            except EmailNotValidError as error:
                return str(error)
    return None


def _decode(definition: SettingDefinition, raw: str):
    """The typed value of a stored string."""
    if definition.kind == "int":
        return int(raw)
    if definition.kind == "bool":
        return raw == "1"
    return raw


def _encode(definition: SettingDefinition, value) -> str:
    """The stored string of a typed value."""
    if definition.kind == "bool":
        return "1" if value else "0"
    return str(value)


def get_setting(key: str):
    """Return the stored value of `key`, or its default when unset or no longer valid."""
    definition = DEFINITIONS[key]
    row = db.session.get(Setting, key)
    if row is None:
        return definition.default
    try:
        value = _decode(definition, row.value)
    except ValueError:
        return definition.default
    return definition.default if setting_error(definition, value) else value


def get_settings(keys=None) -> dict:
    """Several settings at once (one query)."""
    keys = list(keys or DEFINITIONS)
    stored = {
        row.key: row for row in db.session.scalars(db.select(Setting).where(Setting.key.in_(keys)))
    }
    values = {}
    for key in keys:
        definition = DEFINITIONS[key]
        row = stored.get(key)
        try:
            value = definition.default if row is None else _decode(definition, row.value)
        except ValueError:
            value = definition.default
        values[key] = definition.default if setting_error(definition, value) else value
    return values


class SettingsInvalid(ValueError):
    """Some values were refused; `errors` maps each key to its message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


def save_settings(values: dict, actor=None) -> dict[str, tuple]:
    """Validate and store settings in one transaction; return the changes as key -> (old, new)."""
    errors = {}
    for key, value in values.items():
        error = setting_error(DEFINITIONS[key], value)
        if error:
            errors[key] = error
    if errors:
        raise SettingsInvalid(errors)
    changes = {}
    try:
        current = get_settings(values.keys())
        for key, value in values.items():
            definition = DEFINITIONS[key]
            if current[key] != value:
                changes[key] = (current[key], value)
            row = db.session.get(Setting, key)
            if row is None:
                db.session.add(Setting(key=key, value=_encode(definition, value)))
            else:
                row.value = _encode(definition, value)
        if changes:
            audit.record(
                actor,
                "update",
                "setting",
                "global",
                label="Global configuration",
                changes={key: [old, new] for key, (old, new) in changes.items()},
            )
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return changes
