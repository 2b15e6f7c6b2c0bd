"""POST /api/v1/calls/authorize: the softswitch's hot path, with a WSGI lane of its own."""

import base64
import contextlib
import json
import re
from http import HTTPStatus
from urllib.parse import parse_qs

from flask import Flask
from sqlalchemy.exc import DBAPIError
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wsgi import get_input_stream

from portal import CALLS_BIND, HTTP_ERRORS
from portal.api.errors import ApiError, check_json_depth
from portal.api.openapi import MAX_BODY_BYTES
from portal.apikeys.service import WRONG_ADDRESS, identify, key_state, note_use
from portal.calls.service import Busy, CallEnded, CallIdTaken, KeyRefused, authorize
from portal.extensions import db
from portal.headers import NO_STORE, SECURITY_HEADERS
from portal.rules.addresses import source_key
from portal.web import NUL_MESSAGE

PATH = "/api/v1/calls/authorize"
DIGITS = re.compile(r"\+?[0-9*#]{1,32}")  # the whole destination (fullmatch)
FIELDS = frozenset({"call_id", "destination", "account", "sip_username", "source_ip"})
CALLERS = ("account", "sip_username", "source_ip")  # exactly one says who calls


def required_key(authorization: str) -> str:
    """The presented key (see presented_key); a 401 if there is none."""
    key = presented_key(authorization)
    if not key:
        raise ApiError(401, "Send an API key: Authorization: Bearer <key>.")
    return key


def presented_key(authorization: str) -> str:
    """The key from `Authorization: Bearer`, or Basic auth's password (mod_xml_curl)."""
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(value).decode().partition(":")[2]
        except (ValueError, UnicodeDecodeError):
            return ""
    return ""


def is_json(content_type: str) -> bool:
    """True for application/json and application/*+json, as Flask's request.is_json."""
    mimetype = content_type.partition(";")[0].strip().lower()
    return mimetype == "application/json" or (
        mimetype.startswith("application/") and mimetype.endswith("+json")
    )


def answer(
    authorization: str, content_type: str, body: bytes, client_ip: str, explain: bool
) -> tuple[int, dict]:
    """(HTTP status, JSON body) of one authorization request, errors included."""
    try:
        return 200, _answer(authorization, content_type, body, client_ip, explain)
    except ApiError as error:
        return error.status, error.body()


def _answer(authorization, content_type, body, client_ip, explain) -> dict:
    """The decision as JSON; ApiError for a refused key or a bad request."""
    key = required_key(authorization)
    # The key is identified here, but its state (revocation, address list, owner) is read and
    # checked with the caller's account, in one statement.
    identity, why = identify(key)
    if identity is None:
        raise ApiError(401, why)
    try:
        call_id, destination, account, sip_username, source_ip = _request_fields(content_type, body)
    except ApiError:
        # A refused key must hear that, not what is wrong with its request.
        state, why = key_state(identity.key_id, client_ip)
        if why:
            raise key_refused(why) from None
        note_use(identity.key_id, state.key_last_used_at)
        raise
    try:
        decision = _authorize_on_own_connection(
            identity.owner,
            call_id,
            destination,
            account,
            sip_username,
            explain=explain,
            key=(identity.key_id, client_ip),
            source_ip=source_ip,
        )
    except KeyRefused as refused:
        raise key_refused(refused.why) from None
    except CallIdTaken as taken:
        raise ApiError(409, "This call id is already taken.", taken.errors) from taken
    except CallEnded as ended:
        # Not a decision: the softswitch reused or retried the id of a finished call.
        raise ApiError(409, "This call has already ended.", ended.errors) from ended
    except Busy as busy:
        raise ApiError(503, "The account's funds kept changing; retry the authorization.") from busy
    # After the connection went back: noting the use may take one, and a request never holds
    # two at once (with every pooled connection held, each would wait for another).
    note_use(identity.key_id, decision.key_last_used)
    return decision.answer(explain)


def key_refused(why: str) -> ApiError:
    """The error for a key that may not be used: 403 from a wrong address, else 401."""
    return ApiError(403 if why == WRONG_ADDRESS else 401, why)


def _authorize_on_own_connection(*args, **kwargs):
    """authorize() on a pooled connection of its own, without a Session around it."""
    # A Session costs more than the few statements an authorization runs. The call API has a
    # pool of its own (portal.CALLS_BIND), without a test query per checkout: a connection the
    # server dropped (a restart) fails its statement, and the authorization runs once more on
    # a new one. Safe even if the write had committed: the call id then replays its answer.
    # On PostgreSQL the pool's connections are in autocommit (create_app): every write is one
    # statement (portal.calls.service._record), so the server is spared a BEGIN and a COMMIT.
    engine = db.engines.get(CALLS_BIND, db.engine)

    def once():
        with engine.connect() as connection:
            return authorize(*args, connection=connection, **kwargs)

    try:
        return once()
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise
    return once()


def _request_fields(content_type: str, body: bytes) -> tuple:
    """(call_id, destination, account, sip_username, source_ip) of an authorization, or a 400."""
    data = None
    if is_json(content_type):
        check_json_depth(body)
        with contextlib.suppress(ValueError):  # not JSON, or not UTF-8: data stays None
            data = json.loads(body)
    if not isinstance(data, dict):
        raise ApiError(400, "Send a JSON object (Content-Type: application/json).")
    errors: dict[str, str] = {}
    call_id = text_field(data, "call_id", 128, errors)
    destination = text_field(data, "destination", 64, errors)
    account = text_field(data, "account", 20, errors, required=False)
    sip_username = text_field(data, "sip_username", 64, errors, required=False)
    source_ip = text_field(data, "source_ip", 45, errors, required=False)
    if source_ip is not None and source_key(source_ip) is None:
        errors["source_ip"] = "An IPv4 or IPv6 address, such as 203.0.113.7 or 2001:db8::7."
    if destination and not DIGITS.fullmatch(destination):
        errors["destination"] = "Digits, with an optional leading + (and * or #), 1 to 32."
    caller_errors = errors.keys() & set(CALLERS)  # each already said
    sent = [name for name in CALLERS if data.get(name) is not None]
    if len(sent) != 1 and not caller_errors:
        errors["account"] = "Send exactly one of account, sip_username and source_ip."
    unknown = data.keys() - FIELDS
    if unknown:
        errors.update(dict.fromkeys(sorted(unknown), "Unknown field."))
    if errors:
        raise ApiError(400, "Invalid request.", errors)
    return call_id, destination, account, sip_username, source_ip


def text_field(data: dict, name: str, limit: int, errors: dict, required=True) -> str | None:
    """A string field of at most `limit` characters, taken as sent (not trimmed)."""
    value = data.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        errors[name] = "Required: a non-empty string."
        return None
    if len(value) > limit:
        errors[name] = f"At most {limit} characters."
        return None
    if why := unstorable(value):
        errors[name] = why
        return None
    return value


def unstorable(text: str) -> str:
    """Why no database column can hold `text` (a NUL, a lone surrogate), or ""."""
    # PostgreSQL refuses a NUL in a statement, and no driver encodes a lone UTF-16 surrogate
    # (JSON can carry one as "\\ud800"): either would end the request in a 500.
    if "\x00" in text:
        return NUL_MESSAGE
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            return "Must be valid Unicode text (a lone surrogate is not)."
    return ""


class AuthorizeLane:
    """WSGI middleware: POST /api/v1/calls/authorize answered without Flask's request cycle."""

    # A softswitch asks this once per call attempt, so it is the one request whose framework
    # cost matters: Flask's request context, routing and the hooks of CSRF, the
    # login manager and the session cookie cost about as much as the authorization itself
    # (in-process 600 us through Flask, 310 us here; bench/README.md), and none of them
    # applies to a JSON call authenticated by its key (the API is CSRF-exempt, has no session
    # and no limit). The lane keeps what does apply: the app context (configuration,
    # database, teardown), the key check, the body limit and JSON errors. It answers exactly
    # what the blueprint's route answers (both call answer(); a test compares them); every
    # other request, and other methods on this path, go to Flask.

    def __init__(self, app: Flask, wsgi_app):
        self.app = app
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        """Answer an authorization here; pass anything else to the app."""
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "POST":
            return self.wsgi_app(environ, start_response)
        with self.app.app_context():
            status, body = self._respond(environ)
        payload = json.dumps(body).encode()
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(payload))),
            *SECURITY_HEADERS,
            NO_STORE,
        ]
        start_response(f"{status} {HTTPStatus(status).phrase}", headers)
        return [payload]

    def _respond(self, environ) -> tuple[int, dict]:
        """(status, body) for the request in `environ`; a 500 as JSON if anything fails."""
        try:
            try:
                body = get_input_stream(environ, max_content_length=MAX_BODY_BYTES).read()
            except RequestEntityTooLarge:
                return 413, {"error": HTTP_ERRORS[413][1]}
            query = parse_qs(environ.get("QUERY_STRING", ""))
            return answer(
                environ.get("HTTP_AUTHORIZATION", ""),
                environ.get("CONTENT_TYPE", ""),
                body,
                environ.get("REMOTE_ADDR") or "",
                query.get("explain", [""])[0] == "1",
            )
        except Exception:
            propagate = self.app.config["PROPAGATE_EXCEPTIONS"]
            if propagate or (propagate is None and (self.app.testing or self.app.debug)):
                raise  # as Flask does: the test client and the debugger see the exception
            self.app.logger.exception("Exception on %s [POST]", PATH)
            return 500, {"error": HTTP_ERRORS[500][1]}
