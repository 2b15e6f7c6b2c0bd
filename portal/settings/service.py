"""Typed global settings stored in the settings table, with defaults and ranges."""

from dataclasses import dataclass

from portal.extensions import db
from portal.models import Setting


@dataclass(frozen=True)
class SettingDefinition:
    """What a setting is: its key, label, help, default and allowed range."""

    key: str
    label: str
    help: str
    default: int
    minimum: int
    maximum: int
    group: str


DEFINITIONS = {
    d.key: d
    for d in (
        SettingDefinition(
            "account_number_length",
            "Account number length",
            "Digits in a generated account number (also the exact length the form accepts).",
            10,
            6,
            20,
            "Account numbers",
        ),
        SettingDefinition(
            "pin_length",
            "PIN length",
            "Digits in a calling-card PIN.",
            6,
            4,
            12,
            "Calling card",
        ),
    )
}


def get_setting(key: str) -> int:
    """Return the stored value of `key`, or its default."""
    definition = DEFINITIONS[key]
    row = db.session.get(Setting, key)
    if row is None:
        return definition.default
    try:
        value = int(row.value)
    except ValueError:
        return definition.default
    return value if definition.minimum <= value <= definition.maximum else definition.default


def save_settings(values: dict[str, int]) -> None:
    """Validate and store several settings in one transaction."""
    for key, value in values.items():
        definition = DEFINITIONS[key]
        if not definition.minimum <= value <= definition.maximum:
            raise ValueError(
                f"{definition.label} must be between {definition.minimum} and {definition.maximum}."
            )
    try:
        for key, value in values.items():
            row = db.session.get(Setting, key)
            if row is None:
                db.session.add(Setting(key=key, value=str(value)))
            else:
                row.value = str(value)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
