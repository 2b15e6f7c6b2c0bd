"""Dashboards of admins, sub-admins and resellers."""

from flask import Blueprint

bp = Blueprint("dashboard", __name__, url_prefix="/dashboard")

from portal.dashboard import views  # noqa: F401
