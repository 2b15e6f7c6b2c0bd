"""Currency precision (ISO 4217 minor units), rounding to it, and how amounts read (Babel)."""

import copy
import functools
import re
from decimal import ROUND_HALF_UP, Decimal, localcontext

from babel import Locale
from babel.numbers import NumberPattern, format_decimal, parse_pattern

from portal.rules.money import parse_amount

# pycountry has no minor units; ISO 4217 lists these exceptions to the usual 2 decimals.
# CLDR (Babel's get_currency_precision) differs for a few (IQD 0, ISK 0...): ISO decides here,
# because what is posted and paid must match what banks and payment providers accept.
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

# Rates and per-minute prices are rated in 5 decimals (Numeric(18, 5)).
RATE_PLACES = 5
# Enough digits for any Numeric(18, 5) value, and for much larger ones, at any scale.
_PRECISION = 60


def minor_units(currency: str) -> int:
    """Decimal places of `currency` (2 unless ISO 4217 says otherwise)."""
    return MINOR_UNITS.get(currency, 2)


def quantum(currency: str) -> Decimal:
    """The smallest amount of `currency`, e.g. 0.01 for USD, 1 for JPY."""
    return Decimal(1).scaleb(-minor_units(currency))


def round_money(amount: Decimal, currency: str) -> Decimal:
    """`amount` rounded half-up to the minor unit of `currency` (0.125 USD -> 0.13)."""
    with localcontext() as context:
        context.prec = _PRECISION
        return amount.quantize(quantum(currency), ROUND_HALF_UP)


def precision_error(currency: str) -> str:
    """What an amount finer than the minor unit of `currency` is told."""
    places = minor_units(currency)
    if not places:
        return f"{currency} amounts are whole numbers."
    return f"{currency} amounts have at most {places} decimal places."


def parse_money(value, currency: str) -> tuple[Decimal | None, str | None]:
    """(amount, None) for an amount no finer than the minor unit of `currency`, else (None, why)."""
    amount, error = parse_amount(value)
    if error is None and not is_whole_minor(amount, currency):
        return None, precision_error(currency)
    return amount, error


def is_whole_minor(amount: Decimal, currency: str) -> bool:
    """True when `amount` has no digits finer than the minor unit of `currency`."""
    return amount == round_money(amount, currency)


def plain_amount(amount: Decimal, currency: str) -> str:
    """For machines (the JSON API): '-1234.50', at the minor unit, no symbol or grouping."""
    return f"{round_money(Decimal(amount), currency):f}"


@functools.cache
def _locale(identifier: str) -> Locale:
    """The Babel locale of an identifier such as "en" or "de_DE" (parsed once)."""
    return Locale.parse(identifier)


@functools.cache
def _pattern(locale: str, min_places: int, max_places: int) -> NumberPattern:
    """The locale's currency pattern with the ISO code for a symbol and the given decimals."""
    text = _locale(locale).currency_formats["standard"].pattern
    # The ISO code (¤¤) rather than a symbol: "$" is several currencies, "KWD" is one. CLDR's
    # currency spacing (which Babel does not apply) separates a code from the digits.
    text = text.replace("¤", "¤¤")
    text = re.sub(r"¤¤(?=[#0-9])", "¤¤\xa0", text)
    text = re.sub(r"(?<=[#0-9])¤¤", "\xa0¤¤", text)
    pattern = copy.copy(parse_pattern(text))
    pattern.frac_prec = (min_places, max_places)
    return pattern


def _format(value: Decimal, currency: str, locale: str, min_places: int, max_places: int) -> str:
    """`value` (already rounded) in the locale's currency format with these decimals."""
    # Keyed by the exact text (-0 and 0.0 are not 0): a billing run prints the same fees, zero
    # paid amounts and totals (again as the amount due) over and over, at tens of us each.
    return _format_text(str(value), currency, locale, min_places, max_places)


@functools.lru_cache(maxsize=8192)
def _format_text(value: str, currency: str, locale: str, min_places: int, max_places: int) -> str:
    """_format of the Decimal written `value`."""
    with localcontext() as context:
        context.prec = _PRECISION  # a 20-digit amount must not overflow the quantization
        return _pattern(locale, min_places, max_places).apply(
            Decimal(value), _locale(locale), currency=currency, currency_digits=False
        )


def format_money(amount: Decimal, currency: str, locale: str = "en") -> str:
    """An amount as people read it: 'USD 1,234.50', 'JPY 12', 'KWD 1.261' (rounded half-up)."""
    places = minor_units(currency)
    value = round_money(Decimal(amount), currency)
    if not value:
        value = abs(value)  # -0.001 USD rounds to 0.00, not "-USD 0.00"
    return _format(value, currency, locale, places, places)


def format_rate(amount: Decimal, currency: str, locale: str = "en") -> str:
    """A rate or price per minute: the currency's decimals, up to 5 when it has finer digits."""
    places = minor_units(currency)
    with localcontext() as context:
        context.prec = _PRECISION
        value = Decimal(amount).quantize(Decimal(1).scaleb(-RATE_PLACES), ROUND_HALF_UP)
    return _format(value, currency, locale, min(places, RATE_PLACES), RATE_PLACES)


def format_number(amount: Decimal, locale: str = "en") -> str:
    """A number without a currency (a tax rate, a fixed amount): up to 5 decimals."""
    with localcontext() as context:
        context.prec = _PRECISION
        value = Decimal(amount).quantize(Decimal(1).scaleb(-RATE_PLACES), ROUND_HALF_UP)
        return format_decimal(value, format="#,##0.#####", locale=locale)
