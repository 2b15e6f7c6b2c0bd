"""Browser security headers on every answer, and no caching of anything but static files."""

from flask import Flask, request
from flask.wrappers import Response

# No inline script or style anywhere (htmx's indicator style is in portal.css, see base.html),
# so a script injected into a page cannot run; no page may be framed (clickjacking).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = (
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Frame-Options", "DENY"),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
)
NO_STORE = ("Cache-Control", "no-store")


def register_security_headers(app: Flask) -> None:
    """Add the security headers to every answer, and no-store to all but static files."""
    app.after_request(_add_headers)


def _add_headers(response: Response) -> Response:
    """The security headers; pages, fragments, downloads and API answers are never stored."""
    for name, value in SECURITY_HEADERS:
        response.headers.setdefault(name, value)
    if request.endpoint != "static":
        # Pages show SIP passwords, one-time secrets and personal data: no browser or proxy
        # cache keeps a copy (the back button asks the server again). Static files keep the
        # long caching of portal.assets.
        response.headers["Cache-Control"] = NO_STORE[1]
        response.headers.pop("Expires", None)
    return response
