"""Payments allocated to invoices: the oldest payment's rest to the oldest invoice still due."""

from collections.abc import Iterable
from decimal import Decimal


def pair_oldest_first(
    payments: Iterable[tuple[int, Decimal]], invoices: Iterable[tuple[int, Decimal]]
) -> list[tuple[int, int, Decimal]]:
    """(payment id, invoice id, amount) pairs from payments' rests and invoices' dues, in order."""
    # Both sides come oldest first; each pair takes what the smaller side has left, so no
    # payment gives and no invoice takes more than it has, and a pair appears at most once.
    # Non-positive rests and dues (a used-up payment, a credit invoice) take part in nothing.
    payments = [(key, rest) for key, rest in payments if rest > 0]
    invoices = [(key, due) for key, due in invoices if due > 0]
    pairs = []
    p = i = 0
    while p < len(payments) and i < len(invoices):
        (payment, rest), (invoice, due) = payments[p], invoices[i]
        amount = min(rest, due)
        pairs.append((payment, invoice, amount))
        payments[p], invoices[i] = (payment, rest - amount), (invoice, due - amount)
        p += rest == amount
        i += due == amount
    return pairs
