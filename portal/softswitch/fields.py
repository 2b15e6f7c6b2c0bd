"""A call API body validated by its pydantic model, its errors as the switch API words them."""

import json
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from portal.api.errors import ApiError
from portal.web import NUL_MESSAGE

M = TypeVar("M", bound=BaseModel)
NOT_AN_OBJECT = "Send a JSON object (Content-Type: application/json)."
REQUIRED = "Required: a non-empty string."
# The messages of the fields whose rule says more than "a non-empty string".
FIELD_MESSAGES = {
    "destination": "Digits, with an optional leading + (and * or #), 1 to 32.",
    "source_ip": "An IPv4 or IPv6 address, such as 203.0.113.7 or 2001:db8::7.",
    "duration_seconds": "A whole number of seconds from 0 to 86400.",
}


def validated(model: type[M], body: bytes) -> M:
    """`body` (JSON) as `model`; a 400 ApiError naming each invalid field otherwise."""
    # A model's rules across fields (one caller of three) are its cross_field_errors(data).
    cross = getattr(model, "cross_field_errors", None)
    try:
        instance = model.model_validate_json(body)
    except ValidationError as error:
        items = error.errors(include_url=False)
    else:
        if cross is not None and (fields := cross(vars(instance))):
            raise ApiError(400, "Invalid request.", fields)
        return instance
    if any(item["type"] == "json_invalid" for item in items):
        # Python's parser takes what pydantic's refuses, a lone UTF-16 surrogate ("\ud800"),
        # which no driver can store: that is a field's error, not a malformed body.
        try:
            data = json.loads(body)
        except ValueError:
            raise ApiError(400, NOT_AN_OBJECT) from None
        if not isinstance(data, dict):
            raise ApiError(400, NOT_AN_OBJECT)
        unstorable = {
            name: "Must be valid Unicode text (a lone surrogate is not)."
            for name, value in data.items()
            if isinstance(value, str) and not _encodable(value)
        }
        try:
            model.model_validate({k: v for k, v in data.items() if k not in unstorable})
        except ValidationError as error:
            items = error.errors(include_url=False)
        else:
            items = []
        fields = {**field_errors(items), **unstorable}
    elif any(item["type"] == "model_type" and not item["loc"] for item in items):
        raise ApiError(400, NOT_AN_OBJECT)
    else:
        data = json.loads(body)
        fields = field_errors(items)
    if cross is not None:
        fields = {**cross(data), **fields}
    raise ApiError(400, "Invalid request.", fields)


def _encodable(text: str) -> bool:
    """False for a string holding a lone surrogate."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def field_errors(items: list[dict]) -> dict[str, str]:
    """{field: message} of pydantic's error items, the first one of each field."""
    fields: dict[str, str] = {}
    for item in items:
        if not item["loc"]:
            continue
        name = str(item["loc"][0])
        if name not in fields:
            fields[name] = _message(name, item)
    return fields


def _message(name: str, item: dict) -> str:
    """What is wrong with one field, in the words of the switch API."""
    kind, value = item["type"], item.get("input")
    if kind == "extra_forbidden":
        return "Unknown field."
    if kind == "string_too_long":
        return f"At most {item['ctx']['max_length']} characters."
    if isinstance(value, str) and "\x00" in value:
        return NUL_MESSAGE
    if kind == "value_error":
        return item["msg"].removeprefix("Value error, ")
    if name in FIELD_MESSAGES and kind not in ("missing", "string_type", "string_too_short"):
        return FIELD_MESSAGES[name]
    if kind in ("missing", "string_type", "string_too_short", "string_pattern_mismatch"):
        return REQUIRED
    return FIELD_MESSAGES.get(name, item["msg"])
