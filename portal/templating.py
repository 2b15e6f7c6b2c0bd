"""Jinja filters: how amounts, times and country names are shown to people."""

from decimal import Decimal

from flask import Flask

from portal.rules.currency import amount_text
from portal.rules.locale import country_choices


def money(value, currency: str | None = None) -> str:
    """The currency's decimals (2, JPY 0, BHD 3), more when the amount has sub-unit digits."""
    return "" if value is None else amount_text(Decimal(value), currency, grouping=True)


def country_name(code: str) -> str:
    """The country's name for an ISO 3166 code."""
    return dict(country_choices()).get(code, code)


def register_template_filters(app: Flask) -> None:
    """Make the filters available to every template."""
    app.add_template_filter(money, "money")
    app.add_template_filter(country_name, "country_name")
