"""Global configuration: blueprint and typed settings."""

from flask import Blueprint

bp = Blueprint("settings", __name__, url_prefix="/configuration")

from portal.settings import views  # noqa: F401
