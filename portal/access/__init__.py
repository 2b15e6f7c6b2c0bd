"""Who may call where: blocked prefixes of accounts and rate groups, and IP trunks."""

from flask import Blueprint

bp = Blueprint("access", __name__)

from portal.access import views  # noqa: F401, E402
