"""API errors: always JSON, never an HTML page."""

import re

from flask import jsonify
from werkzeug.exceptions import HTTPException

from portal.api import bp
from portal.transactions import ValidationFailed


class ApiError(Exception):
    """A client error answered as JSON."""

    def __init__(self, status: int, message: str, fields: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.fields = status, message, fields or {}

    def body(self) -> dict:
        """{"error": ..., "fields": {...}} (fields only when some are named)."""
        body = {"error": self.message}
        if self.fields:
            body["fields"] = self.fields
        return body


# Deeper JSON is no request this API takes, and Python's parser and the schemas recurse per
# level: a body of 100,000 "[" would exhaust the stack (a 500) instead of being refused.
MAX_JSON_DEPTH = 32
TOO_DEEP = f"The JSON is nested deeper than {MAX_JSON_DEPTH} levels."
_STRINGS = re.compile(rb'"(?:[^"\\]|\\.)*"')
_BRACKETS = re.compile(rb"[\[\]{}]")


def check_json_depth(raw: bytes) -> None:
    """Raise a 400 ApiError if the JSON text `raw` nests deeper than MAX_JSON_DEPTH."""
    # Counting first keeps the call API's hot path at two C-level scans for ordinary bodies.
    if raw.count(b"[") + raw.count(b"{") <= MAX_JSON_DEPTH:
        return
    depth = 0
    for bracket in _BRACKETS.finditer(_STRINGS.sub(b"", raw)):
        depth += 1 if bracket.group() in (b"[", b"{") else -1
        if depth > MAX_JSON_DEPTH:
            raise ApiError(400, TOO_DEEP)


def api_error(error: ApiError):
    """The error's body with its status."""
    return jsonify(error.body()), error.status


def validation_failed(failed: ValidationFailed):
    """The service's field errors (the forms' rules) as a 422 naming each field."""
    return jsonify({"error": "Invalid fields.", "fields": failed.errors}), 422


def http_error(error: HTTPException):
    """Every HTTP error of the API as JSON, never an HTML page."""
    return jsonify({"error": error.description or error.name}), error.code


def register_handlers(blueprint) -> None:
    """A blueprint's errors as JSON: ApiError, the services' field errors, HTTP errors."""
    blueprint.register_error_handler(ApiError, api_error)
    blueprint.register_error_handler(ValidationFailed, validation_failed)
    blueprint.register_error_handler(HTTPException, http_error)


register_handlers(bp)
