"""POST /api/v1/calls/authorize: the softswitch's hot path, answered by a WSGI lane of its own."""

import json
from http import HTTPStatus
from urllib.parse import parse_qs

from flask import Flask
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wsgi import get_input_stream

from portal.api.caller import key_refused, required_key
from portal.api.errors import ApiError, check_json_depth
from portal.api.openapi import MAX_BODY_BYTES
from portal.apikeys.service import identify, key_state, note_use
from portal.calls.engine import authorize_call
from portal.calls.service import Busy, CallEnded, CallIdTaken, KeyRefused
from portal.headers import NO_STORE, SECURITY_HEADERS
from portal.softswitch.fields import NOT_AN_OBJECT, validated
from portal.softswitch.schemas import CallAuthorization
from portal.web import HTTP_ERRORS, NUL_MESSAGE

PATH = "/api/v1/calls/authorize"


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
        decision = authorize_call(
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


def _request_fields(content_type: str, body: bytes) -> tuple:
    """(call_id, destination, account, sip_username, source_ip) of an authorization, or a 400."""
    if not is_json(content_type):
        raise ApiError(400, NOT_AN_OBJECT)
    check_json_depth(body)
    request = validated(CallAuthorization, body)
    return (
        request.call_id,
        request.destination,
        request.account,
        request.sip_username,
        request.source_ip,
    )


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
    # database, teardown), the key check, the body limit and JSON errors. It is the path's only
    # handler (other methods get its 405); portal.softswitch.views documents it.

    def __init__(self, app: Flask, wsgi_app):
        self.app = app
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        """Answer an authorization here (any method: the path is the lane's); pass the rest on."""
        if environ.get("PATH_INFO") != PATH:
            return self.wsgi_app(environ, start_response)
        headers = [*SECURITY_HEADERS, NO_STORE]
        if environ.get("REQUEST_METHOD") == "POST":
            with self.app.app_context():
                status, body = self._respond(environ)
        else:
            status, body = 405, {"error": HTTP_ERRORS[405][1]}
            headers.append(("Allow", "POST"))
        payload = json.dumps(body).encode()
        headers += [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
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
