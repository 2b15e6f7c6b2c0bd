"""Call records and the "Test a call" panel of an account."""

from flask import Blueprint

bp = Blueprint("calls", __name__)

from portal.calls import views  # noqa: F401
