"""The audit log page (admins only)."""

from flask import Blueprint

bp = Blueprint("auditlog", __name__, url_prefix="/audit")

from portal.auditlog import views  # noqa: F401
