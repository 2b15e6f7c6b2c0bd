"""Longest-prefix rate lookup over an in-memory rate table."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol

MAX_PREFIX_LENGTH = 32


class RateLike(Protocol):
    """Anything with a prefix (a Rate row, a RateRow)."""

    prefix: str


@dataclass(frozen=True)
class RateRow:
    """One validated rate, independent of the database."""

    prefix: str
    destination: str
    connect_cost: Decimal
    cost_per_minute: Decimal
    initial_increment: int
    increment: int


class RateTable:
    """The rates of one rate group keyed by prefix; lookups cost one probe per digit, not a scan."""

    def __init__(self, rates: Iterable[RateLike]):
        self._by_prefix: Mapping[str, RateLike] = {rate.prefix: rate for rate in rates}

    def __len__(self) -> int:
        return len(self._by_prefix)

    def get(self, prefix: str) -> RateLike | None:
        """The rate with exactly this prefix."""
        return self._by_prefix.get(prefix)


def candidate_prefixes(number: str) -> list[str]:
    """Every prefix of the digits of `number` that could match, longest first, then '' (any)."""
    # Prefixes are ASCII digits, so a leading + or other signs never take part in matching.
    number = "".join(ch for ch in number if ch in "0123456789")[:MAX_PREFIX_LENGTH]
    return [number[:length] for length in range(len(number), -1, -1)]


def find_rate(rate_group: RateTable, number: str) -> RateLike | None:
    """The rate whose prefix is the longest prefix of `number`; '' matches any number."""
    for prefix in candidate_prefixes(number):
        rate = rate_group.get(prefix)
        if rate is not None:
            return rate
    return None
