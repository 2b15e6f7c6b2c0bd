"""Static files: a hash of the content in their URLs, cached for a year when the URL carries it."""

import hashlib
from pathlib import Path

from flask import Flask, current_app, request
from flask.wrappers import Response
from werkzeug.security import safe_join

VERSION_ARG = "v"
LONG_CACHE_SECONDS = 365 * 24 * 3600
_versions: dict[tuple[str, str], str | None] = {}


def register_static_caching(app: Flask) -> None:
    """Add ?v=<hash> to url_for('static', ...) and a long cache lifetime to versioned files."""
    app.url_defaults(_add_version)
    app.after_request(_cache_headers)


def static_version(filename: str) -> str | None:
    """The first 12 hex digits of the SHA-256 of a static file, or None if there is none."""
    # Once per file and process; in debug mode each time, so an edited file gets a new URL
    # without a restart.
    key = (current_app.static_folder or "", filename)
    if key not in _versions or current_app.debug:
        path = safe_join(key[0], filename)
        try:
            digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12] if path else None
        except OSError:  # missing, a folder: its URL gets no version
            digest = None
        _versions[key] = digest
    return _versions[key]


def _add_version(endpoint: str, values: dict) -> None:
    """url_for('static', filename=...) gets ?v=<hash of the file> (templates stay unchanged)."""
    if endpoint == "static" and VERSION_ARG not in values and "filename" in values:
        version = static_version(values["filename"])
        if version:
            values[VERSION_ARG] = version


def _cache_headers(response: Response) -> Response:
    """A year (immutable) for a static file asked with its current hash; else revalidate."""
    if request.endpoint != "static" or response.status_code not in (200, 304):
        return response
    filename = (request.view_args or {}).get("filename", "")
    version = request.args.get(VERSION_ARG)
    if version and version == static_version(filename):
        response.cache_control.no_cache = None
        response.cache_control.public = True
        response.cache_control.max_age = LONG_CACHE_SECONDS
        response.cache_control.immutable = True
        response.expires = None
    else:
        # No version, or an old one (a page from before a deploy): this answer must not be
        # kept under that address, so the browser asks again (a 304 when unchanged).
        response.cache_control.no_cache = True
        response.cache_control.max_age = None
        response.cache_control.public = None
    return response
