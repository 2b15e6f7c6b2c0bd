"""Call rating and the longest call that funds allow, in exact decimals."""

import math
from decimal import ROUND_CEILING, Decimal
from typing import Protocol

from portal.rules.currency import quantum, round_money

PRECISION = Decimal("0.00001")


class RateLike(Protocol):
    """What rating needs of a rate."""

    connect_cost: Decimal
    cost_per_minute: Decimal
    initial_increment: int
    increment: int


def billable_seconds(rate: RateLike, seconds: int) -> int:
    """Seconds charged: the initial increment, then whole increments rounded up; 0 if unanswered."""
    if seconds <= 0:
        return 0
    initial = rate.initial_increment
    if seconds <= initial:
        return initial
    step = max(rate.increment, 1)
    return initial + math.ceil((seconds - initial) / step) * step


def call_cost(rate: RateLike, seconds: int) -> Decimal:
    """Connect cost plus the billable seconds at the per-minute price (0 for an unanswered call)."""
    billable = billable_seconds(rate, seconds)
    if billable == 0:
        return Decimal(0)
    cost = rate.connect_cost + rate.cost_per_minute * billable / 60
    return cost.quantize(PRECISION, ROUND_CEILING)


def charged_cost(rate: RateLike, seconds: int, currency: str | None = None) -> Decimal:
    """What the ledger is debited: the rated cost rounded half-up to the currency's minor unit."""
    # Rating stays in 5 decimals; only the posting is rounded, so every balance is payable.
    cost = call_cost(rate, seconds)
    return cost if currency is None else round_money(cost, currency)


def minimum_to_call(rate: RateLike, currency: str | None = None) -> Decimal:
    """Funds needed to start: the connect cost plus one increment (the first billable block)."""
    return charged_cost(rate, 1, currency)


def max_duration(
    rate: RateLike, funds: Decimal, cap_seconds: int, currency: str | None = None
) -> int:
    """The longest call (seconds, at most `cap_seconds`) whose charge fits in `funds`; 0 if none."""
    # With `currency`, the charge is the rounded cost the ledger will be debited (half-up can
    # round 11.5 JPY to 12: funds of 11 must not buy that block).
    if funds < minimum_to_call(rate, currency):
        return 0
    if rate.cost_per_minute <= 0:
        return cap_seconds
    first = billable_seconds(rate, 1)
    step = max(rate.increment, 1)
    # Whole further increments the rest of the funds buy, then check exactly (rounding).
    per_step = rate.cost_per_minute * step / 60
    # A rated cost up to half a minor unit above the funds is still charged within them.
    budget = funds if currency is None else funds + quantum(currency) / 2
    extra = int((budget - call_cost(rate, first)) // per_step) if per_step > 0 else 0
    seconds = min(first + max(extra, 0) * step, cap_seconds)
    while seconds > first and charged_cost(rate, seconds, currency) > funds:
        seconds -= step
    # Rounding up the first block's cost can make the estimate one increment short.
    while seconds + step <= cap_seconds and charged_cost(rate, seconds + step, currency) <= funds:
        seconds += step
    return max(min(seconds, cap_seconds), 0)
