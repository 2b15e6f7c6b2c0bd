"""Tax arithmetic: each tax is `amount * rate / 100 + fixed`, in Decimal, rounded per line."""

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Protocol


class TaxLike(Protocol):
    """Anything with a name, rate %, fixed amount and priority (a Tax row)."""

    name: str
    rate: Decimal
    fixed_amount: Decimal
    priority: int


@dataclass(frozen=True)
class TaxLine:
    """One tax applied to an amount."""

    name: str
    rate: Decimal
    fixed_amount: Decimal
    amount: Decimal


@dataclass(frozen=True)
class TaxBreakdown:
    """The tax lines (in priority order) and their total."""

    lines: list[TaxLine]
    total: Decimal


def tax_lines(amount: Decimal, taxes: Iterable[TaxLike], places: int = 2) -> TaxBreakdown:
    """Apply each tax to `amount` in priority order; each line is rounded half-up to `places`."""
    if not isinstance(amount, Decimal):
        raise TypeError("amount must be a Decimal")
    quantum = Decimal(1).scaleb(-places)
    lines = []
    for tax in sorted(taxes, key=lambda t: (t.priority, t.name)):
        value = (amount * tax.rate / 100 + tax.fixed_amount).quantize(quantum, ROUND_HALF_UP)
        lines.append(TaxLine(tax.name, tax.rate, tax.fixed_amount, value))
    return TaxBreakdown(lines, sum((line.amount for line in lines), Decimal(0)))


def tax_for(amount: Decimal, taxes: Iterable[TaxLike], places: int = 2) -> Decimal:
    """Total tax on `amount`: the sum of `amount * rate / 100 + fixed` per tax, rounded per line."""
    return tax_lines(amount, taxes, places).total


def percentage_taxes(amount: Decimal, rates: Iterable[Decimal], places: int = 2) -> list[Decimal]:
    """`amount * rate / 100` per rate, each rounded half-up to `places` (a prepaid call's taxes)."""
    # The percentage part of tax_lines: a call's debit carries these; fixed amounts are per
    # document (the periodic statement), never per call.
    if not isinstance(amount, Decimal):
        raise TypeError("amount must be a Decimal")
    quantum = Decimal(1).scaleb(-places)
    return [(amount * rate / 100).quantize(quantum, ROUND_HALF_UP) for rate in rates]
