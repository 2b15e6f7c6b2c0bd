"""Countries (ISO 3166), currencies (ISO 4217), IANA timezones and E.164 telephone numbers."""

import functools
import zoneinfo

import phonenumbers
import pycountry


@functools.cache
def country_choices() -> list[tuple[str, str]]:
    """(alpha-2, name) for every ISO 3166 country, sorted by name."""
    return sorted(((c.alpha_2, c.name) for c in pycountry.countries), key=lambda pair: pair[1])


@functools.cache
def currency_choices() -> list[tuple[str, str]]:
    """(code, "code - name") for every ISO 4217 currency, sorted by code."""
    return sorted((c.alpha_3, f"{c.alpha_3} - {c.name}") for c in pycountry.currencies)


@functools.cache
def timezone_choices() -> list[tuple[str, str]]:
    """(name, name) for every IANA timezone, sorted."""
    names = zoneinfo.available_timezones() - {"localtime", "Factory"}
    return [(name, name) for name in sorted(names)]


def is_country(code: str) -> bool:
    """True for an ISO 3166 alpha-2 code."""
    return code in dict(country_choices())


def is_currency(code: str) -> bool:
    """True for an ISO 4217 alpha-3 code."""
    return code in dict(currency_choices())


def is_timezone(name: str) -> bool:
    """True for an IANA timezone name."""
    return name in dict(timezone_choices())


def to_e164(raw: str, country: str | None) -> str:
    """Parse a telephone number (national format read in `country`) and return it as E.164."""
    try:
        number = phonenumbers.parse(raw, country or None)
    except phonenumbers.NumberParseException as exc:
        raise ValueError("Enter a valid telephone number, e.g. +1 212 555 0100.") from exc
    if not phonenumbers.is_valid_number(number):
        raise ValueError("This telephone number is not valid for its country.")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
