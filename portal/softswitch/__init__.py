"""What a switch talks to: the authorization lane, hang-ups, FreeSWITCH's XML and CDRs."""

from flask import Blueprint

from portal.api.errors import register_handlers

bp = Blueprint("softswitch", __name__, url_prefix="/api/v1")
register_handlers(bp)  # JSON errors, as the API's

from portal.softswitch import freeswitch, views  # noqa: F401, E402
