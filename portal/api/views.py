"""Every API request needs a key: it acts as the account that created the key."""

from flask import request

from portal.api import bp
from portal.api.caller import authenticate_request
from portal.api.openapi import PUBLIC_ENDPOINTS


@bp.before_request
def require_key():
    """Every API call but the public ones needs a valid key."""
    if request.endpoint not in PUBLIC_ENDPOINTS:
        authenticate_request()
