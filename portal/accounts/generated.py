"""Generated identifiers in bulk: free account numbers, PINs and passwords."""

from sqlalchemy import select

from portal.extensions import db
from portal.models import Account, SipDevice
from portal.passwords import GENERATED_PASSWORD_LENGTH
from portal.rules.identifiers import (
    MAX_NUMBER_ATTEMPTS,
    generate_digits,
    generate_password,
    generate_pin,
)
from portal.transactions import ValidationFailed

CHECK_CHUNK = 500


def new_password() -> str:
    """A generated password of >= 80 bits that no spreadsheet reads as a formula."""
    while True:
        password = generate_password(max(14, GENERATED_PASSWORD_LENGTH))
        if password[0].isalnum():
            return password


def _taken(numbers: list[str]) -> set[str]:
    """Which of `numbers` an account (deleted ones included) or a SIP username already has."""
    taken: set[str] = set()
    for start in range(0, len(numbers), CHECK_CHUNK):
        chunk = numbers[start : start + CHECK_CHUNK]
        taken.update(
            db.session.scalars(
                select(Account.account_number).where(Account.account_number.in_(chunk))
            )
        )
        taken.update(
            db.session.scalars(select(SipDevice.username).where(SipDevice.username.in_(chunk)))
        )
    return taken


def draw_numbers(count: int, length: int, reserved: set[str] = frozenset()) -> list[str]:
    """`count` distinct free account numbers of `length` digits, not in `reserved`."""
    numbers: dict[str, None] = {}
    refused = set(reserved)
    for _attempt in range(MAX_NUMBER_ATTEMPTS):
        # Draws per round are bounded too: a nearly full number space ends in a clear error.
        for _draw in range(20 * (count - len(numbers))):
            if len(numbers) == count:
                break
            candidate = generate_digits(length, leading_zero=False)
            if candidate not in refused:
                numbers[candidate] = None
        taken = _taken(list(numbers))
        for number in taken:
            del numbers[number]
        refused |= taken
        if len(numbers) == count:
            return list(numbers)
    raise ValidationFailed(
        {
            "count": f"Not enough free {length}-digit account numbers; increase the account "
            "number length in the global configuration."
        }
    )


def draw_pins(count: int, length: int) -> list[str]:
    """`count` PINs, distinct within the batch when the PIN space is at least 100x larger."""
    if 10**length < 100 * count:
        return [generate_pin(length) for _ in range(count)]
    pins: dict[str, None] = {}
    while len(pins) < count:
        pins[generate_pin(length)] = None
    return list(pins)
