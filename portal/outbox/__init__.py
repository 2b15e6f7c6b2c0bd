"""The mail outbox page (staff): mail waiting for a retry and mail that could not be delivered."""

from flask import Blueprint

bp = Blueprint("outbox", __name__, url_prefix="/outbox")

from portal.outbox import views  # noqa: F401
