"""The JSON API for softswitches and machines: bearer keys, JSON errors, no CSRF."""

from flask import Blueprint

bp = Blueprint("api", __name__, url_prefix="/api/v1")

from portal.api import access, accounts, errors, jobs, moves, products, views  # noqa: F401, E402
from portal.softswitch import freeswitch  # noqa: F401, E402
