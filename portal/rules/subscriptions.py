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


def due_periods(
    period: str, start_date: date, end_date: date | None, today: date, last_charged: date | None
) -> list[tuple[date, date | None]]:
    """(first day, last day) of each period to charge up to the one holding `today`."""
    # Charged in advance: the period holding today is due today. Periods after the last one
    # charged and missed by earlier runs are each due once (a catch-up); none after end_date.
    if today < start_date or (end_date is not None and end_date < start_date):
        return []
    if period not in (MONTHLY, DAILY):
        return [] if last_charged is not None else [(start_date, None)]
    first = start_date
    if last_charged is not None:
        first = period_bounds(period, last_charged, start_date)[1]
    due = []
    while first <= today and (end_date is None or first <= end_date):
        following = period_bounds(period, first, start_date)[1]
        due.append((first, following - timedelta(days=1)))
        first = following
    return due


def period_charge(price: Decimal, period: str, period_start: date, currency: str) -> Decimal:
    """What one period starting on `period_start` costs (a month begun late: pro-rated)."""
    return prorated(price, period, period_start, currency)


def unused_credit(
    charged: Decimal, first: date, last: date | None, cancel_day: date, currency: str
) -> Decimal:
    """The credit of a period charged `charged` for `first`..`last`, cancelled on `cancel_day`."""
    # The cancel day itself is used: the days after it to the period's last day are given back
    # pro rata of what the period was charged, rounded to the minor unit. One-time: nothing.
    if last is None or not first <= cancel_day < last:
        return Decimal(0)
    unused = (last - cancel_day).days
    days = (last - first).days + 1
    return round_money(charged * unused / days, currency)
