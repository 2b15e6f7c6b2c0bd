"""Ids and whole numbers within the databases' INTEGER range, for URLs, queries and forms."""

from werkzeug.routing import IntegerConverter

# A 32-bit signed INTEGER column (SQLite holds more, PostgreSQL and MariaDB do not): a larger
# value would reach the driver and end in an error instead of "not found".
MAX_INT = 2**31 - 1
MIN_INT = -(2**31)


def to_id(value) -> int | None:
    """An id (1 to MAX_INT) from a form, query or JSON value, or None when it is not one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value.isascii() or not value.isdigit() or len(value) > 10:
            return None
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if 1 <= number <= MAX_INT else None


def in_int_range(number: int) -> bool:
    """Whether `number` fits an INTEGER column."""
    return MIN_INT <= number <= MAX_INT


class IdConverter(IntegerConverter):
    """The app's `int` URL converter: an id beyond the INTEGER range does not match (a 404)."""

    # Longer numbers fail the pattern itself, so no route matches them, whatever the method
    # (a rule refusing the value only in to_python would leave a 405 for the other methods).
    regex = r"\d{1,10}"  # the digits of MAX_INT

    def __init__(self, url_map, fixed_digits=0, min=None, max=MAX_INT, signed=False):
        super().__init__(url_map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)
