"""Subscription periods and the pro-rated first charge (plain functions, no Flask)."""

import calendar
from datetime import date, timedelta
from decimal import Decimal

from portal.rules.currency import round_money

MONTHLY, DAILY, ONE_TIME = "monthly", "daily", "one_time"


def period_bounds(period: str, day: date, start_date: date) -> tuple[date, date | None]:
    """(first day, day after the last) of the period holding `day`; one-time: (start, None)."""
    # Monthly periods are calendar months and daily ones calendar days, in the account's
    # timezone: every subscription of an account renews together, on the 1st, and a free-minute
    # bundle resets at local midnight of that day.
    if period == DAILY:
        return day, day + timedelta(days=1)
    if period == MONTHLY:
        first = day.replace(day=1)
        days = calendar.monthrange(day.year, day.month)[1]
        return first, first + timedelta(days=days)
    return start_date, None


def prorated(price: Decimal, period: str, start_date: date, currency: str) -> Decimal:
    """The first monthly period's charge: the price times the share of the month's days left."""
    # Daily and one-time periods are never partial; a month started on the 1st is charged whole.
    if period != MONTHLY or start_date.day == 1:
        return round_money(price, currency)
    days = calendar.monthrange(start_date.year, start_date.month)[1]
    used = days - start_date.day + 1
    return round_money(price * used / days, currency)
