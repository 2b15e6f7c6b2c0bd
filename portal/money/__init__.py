"""Money reports: invoices and payments a viewer may see, and the paged lists of an account."""

from flask import Blueprint

bp = Blueprint("money", __name__)

from portal.money import views  # noqa: F401
