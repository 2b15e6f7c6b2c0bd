"""API errors: always JSON, never an HTML page."""

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


@bp.errorhandler(ApiError)
def api_error(error: ApiError):
    """The error's body with its status."""
    return jsonify(error.body()), error.status


@bp.errorhandler(ValidationFailed)
def validation_failed(failed: ValidationFailed):
    """The service's field errors (the forms' rules) as a 422 naming each field."""
    return jsonify({"error": "Invalid fields.", "fields": failed.errors}), 422


@bp.errorhandler(HTTPException)
def http_error(error: HTTPException):
    """Every HTTP error of the API as JSON, never an HTML page."""
    return jsonify({"error": error.description or error.name}), error.code
