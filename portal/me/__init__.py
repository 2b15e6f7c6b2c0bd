"""The customer's own pages: dashboard, profile, password and SIP device passwords."""

from flask import Blueprint

bp = Blueprint("me", __name__, url_prefix="/my")

from portal.me import views  # noqa: F401
