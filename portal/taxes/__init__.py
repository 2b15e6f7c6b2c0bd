"""Configuration -> Taxes."""

from flask import Blueprint

bp = Blueprint("taxes", __name__, url_prefix="/configuration/taxes")

from portal.taxes import views  # noqa: F401
