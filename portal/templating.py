"""Jinja filters: how amounts, times and country names are shown to people."""

from decimal import Decimal

from flask import Flask, current_app

from portal.rules.currency import format_money, format_number, format_rate
from portal.rules.locale import country_choices


def money(value, currency: str) -> str:
    """An amount with its currency at the currency's minor unit, e.g. 'USD 1,234.50'."""
    if value is None:
        return ""
    return format_money(Decimal(value), currency, current_app.config["PORTAL_LOCALE"])


def rate(value, currency: str) -> str:
    """A rate or per-minute price with its currency, up to 5 decimals, e.g. 'USD 0.0125'."""
    if value is None:
        return ""
    return format_rate(Decimal(value), currency, current_app.config["PORTAL_LOCALE"])


def decimal(value) -> str:
    """A number without a currency (a tax's rate or fixed amount), up to 5 decimals."""
    if value is None:
        return ""
    return format_number(Decimal(value), current_app.config["PORTAL_LOCALE"])


def country_name(code: str) -> str:
    """The country's name for an ISO 3166 code."""
    return dict(country_choices()).get(code, code)


def register_template_filters(app: Flask) -> None:
    """Make the filters available to every template."""
    app.add_template_filter(money, "money")
    app.add_template_filter(rate, "rate")
    app.add_template_filter(decimal, "decimal")
    app.add_template_filter(country_name, "country_name")
