"""Currency precision (ISO 4217 minor units) and amount rounding."""

from decimal import ROUND_HALF_UP, Decimal

# pycountry has no minor units; ISO 4217 lists these exceptions to the usual 2 decimals.
MINOR_UNITS = {
    **dict.fromkeys(
        [
            "BIF",
            "CLP",
            "DJF",
            "GNF",
            "ISK",
            "JPY",
            "KMF",
            "KRW",
            "PYG",
            "RWF",
            "UGX",
            "UYI",
            "VND",
            "VUV",
            "XAF",
            "XOF",
            "XPF",
        ],
        0,
    ),
    **dict.fromkeys(["BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"], 3),
    **dict.fromkeys(["CLF", "UYW"], 4),
}


def minor_units(currency: str) -> int:
    """Decimal places of `currency` (2 unless ISO 4217 says otherwise)."""
    return MINOR_UNITS.get(currency, 2)


def quantum(currency: str) -> Decimal:
    """The smallest amount of `currency`, e.g. 0.01 for USD, 1 for JPY."""
    return Decimal(1).scaleb(-minor_units(currency))


def round_money(amount: Decimal, currency: str) -> Decimal:
    """`amount` rounded half-up to the precision of `currency`."""
    return amount.quantize(quantum(currency), ROUND_HALF_UP)


def amount_text(value: Decimal, currency: str | None, grouping: bool = False) -> str:
    """The currency's decimals (2, JPY 0, BHD 3), more only when the amount has sub-unit digits."""
    places = minor_units(currency) if currency else 2
    separator = "," if grouping else ""
    if value == value.quantize(Decimal(1).scaleb(-places)):
        return f"{value:{separator}.{places}f}"
    return f"{value.normalize():{separator}f}"
