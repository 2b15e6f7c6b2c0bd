"""The call API's body validation: its pydantic models against the hand-written checks before."""

import argparse
import contextlib
import json
import re
import sys
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from portal.api.errors import ApiError  # noqa: E402
from portal.rules.addresses import source_key  # noqa: E402
from portal.softswitch.fields import validated  # noqa: E402
from portal.softswitch.schemas import CallAuthorization  # noqa: E402

VALID = json.dumps(
    {
        "call_id": "9f0c2a4e-1b7d-4c1e-9e3a-5d6f7a8b9c0d",
        "destination": "447911123456",
        "account": "5000000123",
    }
).encode()
INVALID = json.dumps(
    {"call_id": 5, "destination": "44 79", "account": "5000000123", "sip_username": "u", "x": 1}
).encode()

# --- The baseline: the hand-written checks of portal/api/authorize.py at 76c4a3f, which the
# models replaced (issue 20); kept here only to be measured against.
DIGITS = re.compile(r"\+?[0-9*#]{1,32}")
FIELDS = frozenset({"call_id", "destination", "account", "sip_username", "source_ip"})
CALLERS = ("account", "sip_username", "source_ip")


def _unstorable(text: str) -> str:
    if "\x00" in text:
        return "Must not contain NUL characters."
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            return "Must be valid Unicode text (a lone surrogate is not)."
    return ""


def _text_field(data, name, limit, errors, required=True):
    value = data.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        errors[name] = "Required: a non-empty string."
        return None
    if len(value) > limit:
        errors[name] = f"At most {limit} characters."
        return None
    if why := _unstorable(value):
        errors[name] = why
        return None
    return value


def hand_written(body: bytes) -> tuple:
    """The old _request_fields, from json.loads on (its content-type check aside)."""
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ApiError(400, "Send a JSON object (Content-Type: application/json).")
    errors: dict[str, str] = {}
    call_id = _text_field(data, "call_id", 128, errors)
    destination = _text_field(data, "destination", 64, errors)
    account = _text_field(data, "account", 20, errors, required=False)
    sip_username = _text_field(data, "sip_username", 64, errors, required=False)
    source_ip = _text_field(data, "source_ip", 45, errors, required=False)
    if source_ip is not None and source_key(source_ip) is None:
        errors["source_ip"] = "An IPv4 or IPv6 address, such as 203.0.113.7 or 2001:db8::7."
    if destination and not DIGITS.fullmatch(destination):
        errors["destination"] = "Digits, with an optional leading + (and * or #), 1 to 32."
    caller_errors = errors.keys() & set(CALLERS)
    sent = [name for name in CALLERS if data.get(name) is not None]
    if len(sent) != 1 and not caller_errors:
        errors["account"] = "Send exactly one of account, sip_username and source_ip."
    unknown = data.keys() - FIELDS
    if unknown:
        errors.update(dict.fromkeys(sorted(unknown), "Unknown field."))
    if errors:
        raise ApiError(400, "Invalid request.", errors)
    return call_id, destination, account, sip_username, source_ip


def models(body: bytes):
    """What the lane runs now."""
    return validated(CallAuthorization, body)


def timings_us(functions, body: bytes, number: int, repeat: int) -> list[float]:
    """Each function's best of `repeat` timings of `number` calls, in microseconds per call."""
    # Interleaved, round by round: a machine getting busier or quieter moves both alike.
    best = [float("inf")] * len(functions)
    for _round in range(repeat):
        for index, function in enumerate(functions):

            def run(function=function):
                with contextlib.suppress(ApiError):
                    function(body)

            seconds = timeit.timeit(run, number=number)
            best[index] = min(best[index], seconds / number * 1e6)
    return best


def main(argv=None) -> None:
    """Print microseconds per body for both validators, valid and invalid bodies."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--number", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args(argv)
    print(f"{'body':<8} {'hand-written µs':>16} {'pydantic µs':>12} {'ratio':>6}")
    for name, body in (("valid", VALID), ("invalid", INVALID)):
        old, new = timings_us((hand_written, models), body, args.number, args.repeat)
        print(f"{name:<8} {old:>16.2f} {new:>12.2f} {new / old:>6.2f}")


if __name__ == "__main__":
    main()
