"""API keys page (admins only)."""

from flask import Blueprint

bp = Blueprint("apikeys", __name__, url_prefix="/api-keys")

from portal.apikeys import views  # noqa: F401
