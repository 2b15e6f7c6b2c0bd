"""Jinja filters: how amounts, times and country names are shown to people."""

from datetime import date, datetime
from decimal import Decimal

from babel.dates import format_date, format_datetime
from flask import Flask, current_app, has_request_context
from flask_login import current_user

from portal.rules.currency import format_money, format_number, format_rate
from portal.rules.locale import country_choices
from portal.rules.times import from_utc_text, in_zone, local_day

# Day-month-year and a 24-hour clock: unambiguous for every reader of a billing portal.
TIME_LOCALE = "en_GB"


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


def viewer_timezone() -> str:
    """The logged-in account's timezone; UTC for anyone else and outside a request."""
    if has_request_context() and current_user.is_authenticated:
        return getattr(current_user, "timezone", None) or "UTC"
    return "UTC"


def datetime_text(value: datetime | str | None, zone: str | None = None) -> str:
    """A stored (naive UTC) time in `zone`, by default the viewer's, e.g. 29 Mar 2026, 06:00:00."""
    if value is None:
        return ""
    if isinstance(value, str):  # an ISO time from a JSON document (the call checks' figures)
        value = datetime.fromisoformat(value)
    local = in_zone(value, zone or viewer_timezone())
    return format_datetime(local, "medium", tzinfo=local.tzinfo, locale=TIME_LOCALE)


def local_date_text(value: datetime | None, zone: str | None = None) -> str:
    """The date of a stored (naive UTC) time in `zone`, by default the viewer's."""
    if value is None:
        return ""
    return format_date(local_day(value, zone or viewer_timezone()), "medium", locale=TIME_LOCALE)


def calendar_date_text(value: date | None) -> str:
    """A calendar date (billing date, due date) as it is: no timezone shift."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.date()
    return format_date(value, "medium", locale=TIME_LOCALE)


def human(value) -> str:
    """A value in words for people: Yes/No, "none", names joined by commas; never a repr."""
    if value is None or value == [] or value == {}:
        return "none"
    if isinstance(value, str) and (moment := from_utc_text(value)):  # a time in the audit log
        return datetime_text(moment)
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, list | tuple | set):
        return ", ".join(human(item) for item in value)
    if isinstance(value, dict):
        return ", ".join(f"{key.replace('_', ' ')} {human(item)}" for key, item in value.items())
    return str(value)


def register_template_filters(app: Flask) -> None:
    """Make the filters available to every template."""
    app.add_template_filter(money, "money")
    app.add_template_filter(rate, "rate")
    app.add_template_filter(decimal, "decimal")
    app.add_template_filter(country_name, "country_name")
    app.add_template_filter(datetime_text, "datetime")
    app.add_template_filter(local_date_text, "local_date")
    app.add_template_filter(calendar_date_text, "calendar_date")
    app.add_template_filter(human, "human")
    app.add_template_global(viewer_timezone, "viewer_timezone")
