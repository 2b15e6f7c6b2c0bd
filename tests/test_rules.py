"""Pure rules, tested without a client: identifiers, translation, locale."""

import pytest

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
