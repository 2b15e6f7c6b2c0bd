"""Generation and validation of account numbers, PINs and passwords."""

import secrets
import string
from collections.abc import Callable

PASSWORD_ALPHABET = string.ascii_letters + string.digits + "!#%*+-=?@^_"
MAX_NUMBER_ATTEMPTS = 20


class NumberSpaceExhausted(Exception):
    """No free account number was found within the bounded retries."""


def generate_digits(length: int, *, leading_zero: bool = True) -> str:
    """Return `length` random digits from `secrets`; no leading zero when leading_zero is False."""
    first = secrets.choice(string.digits if leading_zero else "123456789")
    return first + "".join(secrets.choice(string.digits) for _ in range(length - 1))


def generate_account_number(length: int, is_taken: Callable[[str], bool]) -> str:
    """Draw a random account number of `length` digits (no leading zero) that is not taken."""
    for _ in range(MAX_NUMBER_ATTEMPTS):
        candidate = generate_digits(length, leading_zero=False)
        if not is_taken(candidate):
            return candidate
    raise NumberSpaceExhausted(
        f"No free {length}-digit account number after {MAX_NUMBER_ATTEMPTS} attempts; "
        "increase the account number length in the global configuration."
    )


def account_number_error(value: str, length: int) -> str | None:
    """Return why `value` is not a valid account number of `length` digits, or None."""
    if not value.isascii() or not value.isdigit():
        return "The account number must contain digits only."
    if len(value) != length:
        return f"The account number must be exactly {length} digits long."
    if value.startswith("0"):
        return "The account number cannot start with 0."
    return None


def generate_pin(length: int) -> str:
    """Return a random calling-card PIN of `length` digits."""
    return generate_digits(length)


def pin_error(value: str, length: int) -> str | None:
    """Return why `value` is not a valid PIN of `length` digits, or None."""
    if not value.isascii() or not value.isdigit():
        return "The PIN must contain digits only."
    if len(value) != length:
        return f"The PIN must be exactly {length} digits long."
    return None


def generate_password(length: int = 14) -> str:
    """Return a strong random password with at least one letter and one digit."""
    while True:
        candidate = "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(length))
        if any(c.isalpha() for c in candidate) and any(c.isdigit() for c in candidate):
            return candidate


def password_error(password: str, account_number: str = "", min_length: int = 8) -> str | None:
    """Why `password` breaks the policy (length, letters and digits, not the number), or None."""
    if len(password) < min_length:
        return f"The password must be at least {min_length} characters long."
    if len(password) > 128:
        return "The password must be at most 128 characters long."
    if not any(c.isalpha() for c in password) or not any(c.isdigit() for c in password):
        return "The password must contain both letters and digits."
    if account_number and password == account_number:
        return "The password cannot be the account number."
    return None


def generate_sip_password(length: int = 16) -> str:
    """Return a random SIP secret (letters and digits only: safe in every softswitch config)."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))
