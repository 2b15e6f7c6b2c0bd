"""Amounts: parse and check exact decimals (never float)."""

from decimal import Decimal, InvalidOperation

PLACES = 5
MAX_MONEY = Decimal("9999999999999.99999")  # the largest Numeric(18, 5) value


def parse_amount(
    value, *, maximum: Decimal = MAX_MONEY, places: int = PLACES
) -> tuple[Decimal | None, str | None]:
    """(amount, None) for 0..`maximum` with at most `places` decimals, else (None, why not)."""
    try:
        amount = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        return None, "Enter a number, e.g. 10.50."
    if not amount.is_finite():
        return None, "Enter a number, e.g. 10.50."
    if amount < 0:
        return None, "Must not be negative."
    if amount > maximum:
        return None, "Too large." if maximum == MAX_MONEY else f"Must be at most {maximum}."
    if amount != amount.quantize(Decimal(1).scaleb(-places)):
        return None, f"Use at most {places} decimal places."
    return amount, None
