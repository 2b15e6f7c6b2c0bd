"""Free-minute bundles in a call: what the bundle covers, and what funds pay for the rest."""

from collections.abc import Sequence
from decimal import Decimal

from portal.rules.calls import RateLike, max_duration


def bundled_duration(
    rate: RateLike,
    funds: Decimal,
    cap_seconds: int,
    bundle_seconds: int,
    currency: str | None = None,
    tax_rates: Sequence[Decimal] = (),
) -> tuple[int, int]:
    """(free, paid) seconds of the longest call: the bundle's seconds first, then the funds'."""
    # The paid part is rated as a call of its own length (connect cost, initial increment,
    # then increments), so a call within the bundle costs nothing, not even the connect cost.
    free = max(0, min(bundle_seconds, cap_seconds))
    if free >= cap_seconds:
        return free, 0
    return free, max_duration(rate, funds, cap_seconds - free, currency, tax_rates)


def split_duration(seconds: int, bundle_seconds: int) -> tuple[int, int]:
    """(free, paid) seconds of an ended call that held `bundle_seconds` of a bundle."""
    free = max(0, min(seconds, bundle_seconds))
    return free, max(0, seconds - free)
