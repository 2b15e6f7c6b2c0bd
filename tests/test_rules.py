"""Pure rules, tested without a client: identifiers, translation, locale, rating, tax, payments."""

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import pytest

from portal.rules.allocation import pair_oldest_first
from portal.rules.calls import call_cost, charged_cost, max_duration, minimum_to_call
from portal.rules.currency import (
    format_money,
    format_rate,
    parse_money,
    plain_amount,
    round_money,
)
from portal.rules.identifiers import (
    NumberSpaceExhausted,
    account_number_error,
    generate_account_number,
    generate_password,
    generate_pin,
    password_error,
    pin_error,
)
from portal.rules.locale import is_country, is_currency, is_timezone, to_e164
from portal.rules.money import parse_amount
from portal.rules.rating import RateRow, RateTable, find_rate
from portal.rules.tax import tax_for, tax_lines
from portal.rules.times import from_utc_text, in_zone, local_day, utc_text
from portal.rules.translation import TranslationError, parse_rules, translate


def test_ten_thousand_generated_numbers_are_ten_digits_and_unique():
    seen: set[str] = set()
    for _ in range(10_000):
        number = generate_account_number(10, seen.__contains__)
        assert len(number) == 10 and number.isdigit() and number[0] != "0"
        seen.add(number)
    assert len(seen) == 10_000


@pytest.mark.parametrize("length", [6, 12, 20])
def test_generated_number_has_the_configured_length(length):
    assert len(generate_account_number(length, lambda _: False)) == length


def test_generator_redraws_on_collision_then_gives_up():
    taken = iter([True, True, False])
    assert len(generate_account_number(10, lambda _: next(taken))) == 10
    with pytest.raises(NumberSpaceExhausted, match="account number length"):
        generate_account_number(10, lambda _: True)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("12345abcde", "digits only"),
        ("123456789", "exactly 10"),
        ("12345678901", "exactly 10"),
        ("0123456789", "cannot start with 0"),
        ("１２３４５６７８９０", "digits only"),
        ("", "digits only"),
    ],
)
def test_bad_account_numbers(value, message):
    assert message in account_number_error(value, 10)


def test_good_account_number():
    assert account_number_error("1234567890", 10) is None


def test_pin_rules():
    pin = generate_pin(6)
    assert len(pin) == 6 and pin.isdigit()
    assert pin_error(pin, 6) is None
    assert "exactly 8" in pin_error(pin, 8)
    assert "digits only" in pin_error("12a456", 6)


def test_password_policy():
    generated = generate_password()
    assert password_error(generated, "1234567890") is None
    assert "at least 8" in password_error("ab12", "")
    assert "letters and digits" in password_error("onlyletters", "")
    assert "letters and digits" in password_error("1234567890123", "")
    assert "cannot be the account number" in password_error("a1234567", "a1234567")


def test_translation_examples():
    rules = parse_rules("011/2222,+/00")
    assert rules == [("011", "2222"), ("+", "00")]
    assert translate("011441234", rules) == "2222441234"
    assert translate("+441234", rules) == "00441234"
    assert translate("441234", rules) == "441234"


def test_translation_star_forms_and_cumulative_order():
    assert translate("0044123", parse_rules("00/")) == "44123"
    assert translate("0044123", parse_rules("00/*")) == "44123"
    assert translate("44123", parse_rules("*/00")) == "0044123"
    # Applied in order, each to the result of the previous one.
    assert translate("0123", parse_rules("0/44,44/+44")) == "+44123"


@pytest.mark.parametrize(
    "text",
    ["011", "011/22/33", "abc/1", "01 1/2", "011/x", "*/", "*/*", ",", "/123"],
)
def test_malformed_translation_rules_are_refused(text):
    with pytest.raises(TranslationError):
        parse_rules(text)


def test_empty_translation_is_no_rules():
    assert parse_rules("") == []
    assert parse_rules("  ") == []


def test_locale_lookups():
    assert is_country("GB") and not is_country("XX")
    assert is_currency("INR") and not is_currency("ABC")
    assert is_timezone("Asia/Kolkata") and not is_timezone("Mars/Olympus")


def test_telephone_to_e164():
    assert to_e164("020 7946 0958", "GB") == "+442079460958"
    assert to_e164("+1 212-555-0100", "GB") == "+12125550100"
    with pytest.raises(ValueError, match="valid"):
        to_e164("12", "GB")
    with pytest.raises(ValueError):
        to_e164("not a number", "US")


# --- rating: longest-prefix match ---------------------------------------------------------------


def _table(*prefixes: str) -> RateTable:
    """A rate table whose destinations name their prefix."""
    return RateTable(
        RateRow(p, f"dest {p or 'any'}", Decimal(0), Decimal("0.01"), 60, 60) for p in prefixes
    )


def test_longest_prefix_wins_among_overlapping_prefixes():
    table = _table("4", "44", "447", "4479")
    assert find_rate(table, "447911123456").prefix == "4479"
    assert find_rate(table, "447811123456").prefix == "447"
    assert find_rate(table, "442079460958").prefix == "44"
    assert find_rate(table, "49301234567").prefix == "4"


def test_empty_prefix_matches_any_number_but_only_last():
    table = _table("", "1")
    assert find_rate(table, "12125550100").prefix == "1"
    assert find_rate(table, "8613800138000").prefix == ""
    assert find_rate(table, "").prefix == ""


def test_no_match_without_a_catch_all():
    assert find_rate(_table("44", "1"), "33123456789") is None
    assert find_rate(_table(), "44") is None


def test_signs_in_the_number_do_not_take_part():
    assert find_rate(_table("44"), "+44 20 7946 0958").prefix == "44"


# --- taxes -------------------------------------------------------------------------------------


@dataclass
class _Tax:
    name: str
    rate: Decimal
    fixed_amount: Decimal
    priority: int


def test_tax_sum_is_rate_plus_fixed_per_tax_in_priority_order():
    taxes = [
        _Tax("State", Decimal("2.5"), Decimal("0"), 2),
        _Tax("VAT", Decimal("20"), Decimal("0.10"), 1),
    ]
    breakdown = tax_lines(Decimal("10.00"), taxes)
    assert [line.name for line in breakdown.lines] == ["VAT", "State"]
    assert [line.amount for line in breakdown.lines] == [Decimal("2.10"), Decimal("0.25")]
    assert breakdown.total == Decimal("2.35")
    assert tax_for(Decimal("10.00"), taxes) == Decimal("2.35")


def test_tax_is_exact_decimal_not_float():
    # 0.1 + 0.2 in float is 0.30000000000000004; with Decimal it is exactly 0.3.
    taxes = [_Tax("A", Decimal("0"), Decimal("0.1"), 1), _Tax("B", Decimal("0"), Decimal("0.2"), 1)]
    assert tax_for(Decimal("0"), taxes, places=5) == Decimal("0.3")
    assert tax_for(
        Decimal("0.1") + Decimal("0.2"), [_Tax("C", Decimal("10"), Decimal(0), 1)], 5
    ) == (Decimal("0.03"))
    with pytest.raises(TypeError):
        tax_for(0.1, taxes)


def test_tax_lines_round_half_up_to_the_configured_places():
    tax = [_Tax("T", Decimal("12.5"), Decimal("0"), 1)]
    assert tax_for(Decimal("0.10"), tax, places=2) == Decimal("0.01")  # 0.0125 -> 0.01
    assert tax_for(Decimal("0.20"), tax, places=2) == Decimal("0.03")  # 0.025 -> 0.03 (half up)
    assert tax_for(Decimal("0.20"), tax, places=4) == Decimal("0.0250")
    assert tax_for(Decimal("0.20"), tax, places=0) == Decimal("0")


def test_no_taxes_is_zero():
    assert tax_for(Decimal("99.99"), []) == Decimal("0")


# --- money -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "amount", "error"),
    [
        ("10.5", Decimal("10.5"), None),
        (" 0 ", Decimal("0"), None),
        ("0.00001", Decimal("0.00001"), None),
        ("9999999999999.99999", Decimal("9999999999999.99999"), None),
        ("0.000001", None, "at most 5 decimal places"),
        ("-0.01", None, "Must not be negative"),
        ("1e20", None, "Too large"),
        ("NaN", None, "Enter a number"),
        ("Infinity", None, "Enter a number"),
        ("ten", None, "Enter a number"),
        (None, None, "Enter a number"),
    ],
)
def test_parse_amount(value, amount, error):
    parsed, message = parse_amount(value)
    assert parsed == amount
    assert (message is None) if error is None else (error in message)


def test_parse_amount_with_a_maximum():
    assert parse_amount("100", maximum=Decimal(100)) == (Decimal(100), None)
    assert parse_amount("100.01", maximum=Decimal(100))[1] == "Must be at most 100."


NBSP = "\xa0"  # between the ISO code and the digits: the amount never wraps apart


@pytest.mark.parametrize(
    ("value", "currency", "text"),
    [
        ("1234.5", "USD", "USD 1,234.50"),
        ("0.125", "USD", "USD 0.13"),  # half-up, not half-even (0.12)
        ("0.0625", "USD", "USD 0.06"),
        ("16.95625", "GBP", "GBP 16.96"),
        ("1500", "JPY", "JPY 1,500"),
        ("11.5", "JPY", "JPY 12"),
        ("1.2345", "KWD", "KWD 1.235"),
        ("1.26125", "KWD", "KWD 1.261"),
        ("-6.1", "BHD", "-BHD 6.100"),
        ("-0.5", "USD", "-USD 0.50"),
        ("0", "USD", "USD 0.00"),
        ("0", "JPY", "JPY 0"),
        ("-0.001", "USD", "USD 0.00"),  # no "-USD 0.00"
        ("1.25", "IQD", "IQD 1.250"),  # ISO 4217 says 3 decimals (CLDR says 0)
        ("12345678901234567890.125", "USD", "USD 12,345,678,901,234,567,890.13"),
        ("-98765432109876543210", "KWD", "-KWD 98,765,432,109,876,543,210.000"),
    ],
)
def test_money_reads_with_its_currency_at_the_minor_unit(value, currency, text):
    assert format_money(Decimal(value), currency) == text.replace(" ", NBSP, 1)


def test_a_stored_utc_time_in_asia_kolkata_is_five_and_a_half_hours_later():
    local = in_zone(datetime(2026, 3, 29, 0, 30), "Asia/Kolkata")
    assert (local.date(), local.hour, local.minute) == (date(2026, 3, 29), 6, 0)
    assert local_day(datetime(2026, 3, 28, 19, 0), "Asia/Kolkata") == date(2026, 3, 29)


def test_new_york_wall_clock_follows_its_daylight_saving_change():
    # US clocks go forward on 8 March 2026 at 02:00 local (07:00 UTC): EST -5 becomes EDT -4.
    before = in_zone(datetime(2026, 3, 8, 6, 30), "America/New_York")
    after = in_zone(datetime(2026, 3, 8, 7, 30), "America/New_York")
    assert (before.hour, before.minute, before.tzname()) == (1, 30, "EST")
    assert (after.hour, after.minute, after.tzname()) == (3, 30, "EDT")
    # On 29 March 2026 00:30 UTC it is still the 28th in New York, 20:30 EDT.
    late = in_zone(datetime(2026, 3, 29, 0, 30), "America/New_York")
    assert (late.day, late.hour, late.minute) == (28, 20, 30)


def test_an_unknown_or_empty_zone_shows_utc():
    assert in_zone(datetime(2026, 3, 29, 0, 30), "Mars/Olympus").hour == 0
    assert in_zone(datetime(2026, 3, 29, 0, 30), "").hour == 0


def test_a_time_written_as_utc_text_reads_back_and_other_text_does_not():
    assert utc_text(datetime(2026, 3, 29, 0, 30, 59)) == "2026-03-29T00:30Z"
    assert from_utc_text("2026-03-29T00:30Z") == datetime(2026, 3, 29, 0, 30)
    for text in ("2026-03-29 00:30", "Anne", "2026-13-29T00:30Z", ""):
        assert from_utc_text(text) is None


def test_money_follows_the_locale():
    assert format_money(Decimal("1234.5"), "EUR", "de_DE") == f"1.234,50{NBSP}EUR"
    assert format_money(Decimal("1234567.5"), "USD", "hi") == f"USD{NBSP}12,34,567.50"


@pytest.mark.parametrize(
    ("value", "currency", "text"),
    [
        ("0.0125", "USD", "USD 0.0125"),  # a per-minute price keeps its sub-cent digits
        ("0.6", "USD", "USD 0.60"),
        ("0.5", "JPY", "JPY 0.5"),
        ("1", "JPY", "JPY 1"),
        ("0.01234", "KWD", "KWD 0.01234"),
        ("0.1", "KWD", "KWD 0.100"),
    ],
)
def test_rates_show_up_to_five_decimals(value, currency, text):
    assert format_rate(Decimal(value), currency) == text.replace(" ", NBSP, 1)


@pytest.mark.parametrize(
    ("value", "currency", "text"),
    [
        ("1234.5", "USD", "1234.50"),
        ("16.95625", "GBP", "16.96"),
        ("11.5", "JPY", "12"),
        ("-6.1", "BHD", "-6.100"),
        ("12345678901234567890.125", "USD", "12345678901234567890.13"),
    ],
)
def test_machines_get_plain_decimals_at_the_minor_unit(value, currency, text):
    assert plain_amount(Decimal(value), currency) == text


def test_rounding_is_half_up_at_the_minor_unit():
    assert round_money(Decimal("0.125"), "USD") == Decimal("0.13")
    assert round_money(Decimal("-0.125"), "USD") == Decimal("-0.13")  # away from zero
    assert round_money(Decimal("2.5"), "JPY") == Decimal(3)
    assert round_money(Decimal("0.0125"), "BHD") == Decimal("0.013")


def test_a_calls_charge_is_its_rated_cost_rounded_to_the_minor_unit():
    rate = RateRow("81", "Japan", Decimal("2.25"), Decimal(15), 1, 1)
    assert call_cost(rate, 37) == Decimal("11.5")  # rating keeps its 5 decimals
    assert charged_cost(rate, 37, "JPY") == Decimal(12)
    assert charged_cost(rate, 36, "JPY") == Decimal(11)  # 11.25
    # Funds of 11 JPY buy 36 s (charged 11), not 37 s (charged 12): the balance never goes
    # below zero by a rounding; without the currency only 35 s (11.00 exactly) would fit.
    assert max_duration(rate, Decimal(11), 3600, "JPY") == 36
    assert max_duration(rate, Decimal(11), 3600) == 35
    assert minimum_to_call(rate, "JPY") == Decimal(3)  # 2.5 rounds up


def test_an_amount_is_parsed_no_finer_than_its_currency():
    assert parse_money("13", "JPY") == (Decimal(13), None)
    assert parse_money("13.5", "JPY") == (None, "JPY amounts are whole numbers.")
    assert parse_money("0.125", "KWD") == (Decimal("0.125"), None)
    assert parse_money("0.125", "USD") == (None, "USD amounts have at most 2 decimal places.")
    assert parse_money("ten", "USD")[1] == "Enter a number, e.g. 10.50."


def test_payments_pair_with_invoices_oldest_first_once_per_pair():
    payments = [(1, Decimal(5)), (2, Decimal("7.10")), (3, Decimal(20)), (4, Decimal(10))]
    invoices = [(10, Decimal("12.10")), (11, Decimal("12.10")), (12, Decimal("12.10"))]
    assert pair_oldest_first(payments, invoices) == [
        (1, 10, Decimal(5)),  # partial
        (2, 10, Decimal("7.10")),  # exact
        (3, 11, Decimal("12.10")),
        (3, 12, Decimal("7.90")),
        (4, 12, Decimal("4.20")),  # 5.80 of it left over: credit
    ]


@pytest.mark.parametrize(
    ("payments", "invoices", "pairs"),
    [
        ([], [(10, Decimal(5))], []),
        ([(1, Decimal(5))], [], []),
        ([(1, Decimal(5))], [(10, Decimal(-5)), (11, Decimal(0))], []),  # credit invoices
        ([(1, Decimal(0)), (2, Decimal(3))], [(10, Decimal(5))], [(2, 10, Decimal(3))]),
    ],
)
def test_nothing_pairs_with_nothing(payments, invoices, pairs):
    assert pair_oldest_first(payments, invoices) == pairs
