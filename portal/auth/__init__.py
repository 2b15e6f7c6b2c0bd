"""Login, logout and the landing page."""

from flask import Blueprint

bp = Blueprint("auth", __name__)

from portal.auth import views  # noqa: F401
