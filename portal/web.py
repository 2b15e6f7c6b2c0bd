"""Shared pieces of the HTML views: form bases, service errors on fields, a posted status."""

from collections.abc import Callable
from typing import TypeVar

from flask import abort, request
from flask_wtf import FlaskForm
from sqlalchemy import Select
from wtforms import IntegerField

from portal.extensions import db
from portal.ids import MAX_INT, MIN_INT, in_int_range, to_id
from portal.models import Status
from portal.transactions import ValidationFailed

T = TypeVar("T")


# The HTTP errors a user can meet: (page title, message); the API answers the message as JSON.
HTTP_ERRORS = {
    400: ("Bad request", "The request could not be understood."),
    403: ("Forbidden", "Your account may not open this page."),
    404: ("Not found", "There is nothing here, or it is not yours to see."),
    405: ("Method not allowed", "This address does not accept that kind of request."),
    413: ("Too large", "The request was larger than this portal accepts."),
    500: (
        "Server error",
        "Something went wrong on our side; some changes may have been saved: "
        "check before retrying.",
    ),
}
NUL_MESSAGE = "Must not contain NUL characters."


def has_nul(value) -> bool:
    """True if a submitted value (a string, or a list of them) holds a NUL character."""
    values = value if isinstance(value, list | tuple) else (value,)
    return any(isinstance(item, str) and "\x00" in item for item in values)


class WholeNumberField(IntegerField):
    """Every whole-number form field: a value beyond the INTEGER range is the field's error."""

    def process_formdata(self, valuelist):
        """Parse as IntegerField does, then refuse what no INTEGER column holds."""
        super().process_formdata(valuelist)
        if self.data is not None and not in_int_range(self.data):
            self.data = None
            raise ValueError(f"Enter a whole number from {MIN_INT:,} to {MAX_INT:,}.")


def coerce_id(value) -> int:
    """The coerce of every select whose values are ids: a ValueError (the field's error) if not."""
    number = to_id(value)
    if number is None:
        raise ValueError("Not a valid choice.")
    return number


def query_id(name: str) -> int | None:
    """An id the query string carries under `name` (None when absent); 404 if it is not an id."""
    # ?before=<20 digits> names no row: "not found", as the same id in a URL path.
    raw = request.args.get(name, "")
    if raw == "":
        return None
    number = to_id(raw)
    if number is None:
        abort(404)
    return number


class PortalForm(FlaskForm):
    """Every form of the portal: a NUL character is a field error before any other check."""

    def validate(self, extra_validators=None) -> bool:
        """NUL characters first (no database column holds one), then the form's own rules."""
        # Checked before the other validators, some of which query the database with the
        # value (PostgreSQL refuses a NUL in a statement: the request would end in a 500).
        poisoned = [field for field in self if has_nul(field.data)]
        if not poisoned:
            return super().validate(extra_validators)
        for field in poisoned:
            field.errors = [NUL_MESSAGE]
        return False


class ServiceForm(PortalForm):
    """A form whose values go to a service function as a dict."""

    IGNORED = ("csrf_token",)

    def service_data(self) -> dict:
        """The submitted values keyed by field name, without CSRF and display-only fields."""
        # A value with a NUL is left out: an invalid form's other rules are still checked for
        # their messages (queries PostgreSQL refuses with a NUL), and it has its own already.
        return {
            name: f.data
            for name, f in self._fields.items()
            if name not in self.IGNORED and not has_nul(f.data)
        }


def apply_errors(form: FlaskForm, errors: dict[str, str]) -> None:
    """Attach service rule errors to their fields (a field's own parse error wins)."""
    for name, message in errors.items():
        field = form._fields.get(name)
        if field is not None and not field.errors:
            field.errors = [*field.errors, message]


def submit(form: ServiceForm, operation: Callable[[dict], T]) -> T | None:
    """Validate the posted form and run the operation: the saved object, or None if refused."""
    if not form.validate_on_submit():
        return None
    try:
        return operation(form.service_data())
    except ValidationFailed as failed:
        apply_errors(form, failed.errors)
        return None


def posted_status() -> Status:
    """The Active/Inactive status a toggle form posted, or 400."""
    try:
        return Status(request.form.get("status", ""))
    except ValueError:
        abort(400)


def newest_first(
    query: Select, id_column, before: int | None, per_page: int
) -> tuple[list, int | None]:
    """A page of `query` by id, newest first, below `before`: (rows, the next page's `before`)."""
    # Keyset paging: the page after stays right while new rows arrive, and costs the same deep in.
    if before:
        query = query.where(id_column < before)
    rows = list(db.session.scalars(query.order_by(id_column.desc()).limit(per_page + 1)))
    next_before = rows[per_page - 1].id if len(rows) > per_page else None
    return rows[:per_page], next_before
