"""Customer accounts: list, create, show, edit, deactivate, delete."""

from flask import Blueprint

bp = Blueprint("accounts", __name__, url_prefix="/accounts")

from portal.accounts import bulk_views, move_views, views  # noqa: F401
