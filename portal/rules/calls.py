"""Call rating and the longest call that funds allow, in exact decimals."""

import math
from collections.abc import Sequence
from decimal import ROUND_CEILING, Decimal
from typing import Protocol

from portal.rules.currency import RATE_PLACES, minor_units, quantum, round_money
from portal.rules.tax import percentage_taxes

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


def call_taxes(cost: Decimal, tax_rates: Sequence[Decimal], currency: str | None) -> list[Decimal]:
    """Each percentage tax on a call's charged `cost`, rounded half-up at the minor unit."""
    places = RATE_PLACES if currency is None else minor_units(currency)
    return percentage_taxes(cost, tax_rates, places)


def taxed_charge(
    rate: RateLike, seconds: int, currency: str | None = None, tax_rates: Sequence[Decimal] = ()
) -> Decimal:
    """What a prepaid call of `seconds` takes from the funds: its charge plus its taxes."""
    # The same figures end_call posts: the usage entry, then one tax entry per rate.
    cost = charged_cost(rate, seconds, currency)
    return cost + sum(call_taxes(cost, tax_rates, currency), Decimal(0))


def minimum_to_call(
    rate: RateLike, currency: str | None = None, tax_rates: Sequence[Decimal] = ()
) -> Decimal:
    """Funds needed to start: the connect cost plus one increment (the first billable block)."""
    return taxed_charge(rate, 1, currency, tax_rates)


def max_duration(
    rate: RateLike,
    funds: Decimal,
    cap_seconds: int,
    currency: str | None = None,
    tax_rates: Sequence[Decimal] = (),
) -> int:
    """The longest call (seconds, at most `cap_seconds`) whose taxed charge fits in `funds`."""
    # With `currency`, the charge is the rounded cost the ledger will be debited (half-up can
    # round 11.5 JPY to 12: funds of 11 must not buy that block); with `tax_rates`, plus the
    # taxes on it, each rounded too. 0 if not even the first block fits.
    if funds < minimum_to_call(rate, currency, tax_rates):
        return 0
    if rate.cost_per_minute <= 0:
        return cap_seconds

    first = billable_seconds(rate, 1)
    if cap_seconds <= first:
        return cap_seconds
    step = max(rate.increment, 1)
    # Candidates: `first` plus k whole increments, the last one cut at the cap.
    last = math.ceil((cap_seconds - first) / step)

    def seconds_of(k: int) -> int:
        return min(first + k * step, cap_seconds)

    def fits(k: int) -> bool:
        return taxed_charge(rate, seconds_of(k), currency, tax_rates) <= funds

    # First guess: the increments the untaxed share of the funds buys (a rated cost up to
    # half a minor unit above the funds is still charged within them). Then exactly: the
    # taxed charge only grows with the seconds, so a search from the guess (doubling its
    # stride, then halving) ends on the longest call that fits in a few tries, however far
    # the roundings of the charge and of each tax moved it from the guess.
    per_step = rate.cost_per_minute * step / 60
    untaxed = funds / (1 + sum(tax_rates, Decimal(0)) / 100)
    budget = untaxed if currency is None else untaxed + quantum(currency) / 2
    guess = int((budget - call_cost(rate, first)) // per_step)
    guess = min(max(guess, 0), last)
    if fits(guess):  # fits(low) holds; high is past the end or does not fit
        low, stride = guess, 1
        while low + stride <= last and fits(low + stride):
            low, stride = low + stride, stride * 2
        high = min(low + stride, last + 1)
    else:
        high, stride = guess, 1
        while high - stride > 0 and not fits(high - stride):
            high, stride = high - stride, stride * 2
        low = max(high - stride, 0)  # fits: the first block always does (checked above)
    while high - low > 1:
        middle = (low + high) // 2
        if fits(middle):
            low = middle
        else:
            high = middle
    return seconds_of(low)
