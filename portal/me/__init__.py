"""Own pages: the customer portal (dashboard, profile, password, SIP); staff: My account."""

from flask import Blueprint

bp = Blueprint("me", __name__, url_prefix="/my")

from portal.me import views  # noqa: F401
