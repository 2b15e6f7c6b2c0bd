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


def at_most_pattern(limit: int) -> str:
    """A regular expression matching exactly the digit strings whose value is at most `limit`."""
    digits = str(limit)
    shorter = [rf"\d{{1,{len(digits) - 1}}}"] if len(digits) > 1 else []
    # Same length: equal up to position i, smaller at i (no leading zero), anything after.
    same_length = []
    for i, digit in enumerate(digits):
        low = 1 if i == 0 and len(digits) > 1 else 0
        if int(digit) > low:
            rest = len(digits) - i - 1
            tail = rf"\d{{{rest}}}" if rest else ""
            same_length.append(f"{digits[:i]}[{low}-{int(digit) - 1}]{tail}")
    return "(?:" + "|".join([*shorter, *same_length, digits]) + ")"


class IdConverter(IntegerConverter):
    """The app's `int` URL converter: an id beyond the INTEGER range does not match (a 404)."""

    # Larger numbers fail the pattern itself, so no route matches them, whatever the method
    # (a rule refusing the value only in to_python leaves a 405 when another method's rule
    # has the same path).
    regex = at_most_pattern(MAX_INT)

    def __init__(self, url_map, fixed_digits=0, min=None, max=MAX_INT, signed=False):
        super().__init__(url_map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)
