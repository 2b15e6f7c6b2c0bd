"""Configuration -> Products: what an operator sells besides minutes."""

from flask import Blueprint

bp = Blueprint("products", __name__, url_prefix="/configuration/products")

from portal.products import views  # noqa: F401
