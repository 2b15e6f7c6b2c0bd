"""Call authorization, hang-up and the FreeSWITCH directory, for API key holders."""

import base64
import re
from xml.sax.saxutils import quoteattr

from flask import Response, g, jsonify, request
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from portal import CALLS_BIND
from portal.api import bp
from portal.api.errors import ApiError
from portal.api.keys import WRONG_ADDRESS, authenticate, identify, key_state, note_use
from portal.api.openapi import PUBLIC_ENDPOINTS
from portal.calls.checks import callers
from portal.calls.service import (
    Busy,
    CallEnded,
    CallIdTaken,
    KeyRefused,
    authorize,
    end_call,
)
from portal.extensions import db
from portal.models import Account, Call, SipDevice, Status
from portal.security import visible_accounts

DIGITS = re.compile(r"^\+?[0-9*#]{1,32}$")
NOT_FOUND_XML = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<document type="freeswitch/xml">'
    '<section name="result"><result status="not found"/></section></document>'
)


def _presented_key() -> str:
    """The key from `Authorization: Bearer`, or Basic auth's password (mod_xml_curl)."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer":
        return value.strip()
    if scheme.lower() == "basic":
        try:
            return base64.b64decode(value).decode().partition(":")[2]
        except (ValueError, UnicodeDecodeError):
            return ""
    return ""


@bp.before_request
def require_key():
    """Every API call needs a valid key; it acts as the account that created the key."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        return
    key = _presented_key()
    if not key:
        raise ApiError(401, "Send an API key: Authorization: Bearer <key>.")
    if request.endpoint == "api.calls_authorize":
        # The hot path: the key is identified here, but its state (revocation, address list,
        # owner) is read and checked with the caller's account, in one statement.
        identity, why = identify(key)
        if identity is None:
            raise ApiError(401, why)
        g.api_owner, g.api_key_id = identity.owner, identity.key_id
        return
    owner, why = authenticate(key, request.remote_addr or "")
    if owner is None:
        raise _key_refused(why)
    g.api_owner = owner


def _json_object() -> dict:
    """The request's JSON object, or a 400."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ApiError(400, "Send a JSON object (Content-Type: application/json).")
    return data


def _text(data: dict, name: str, limit: int, errors: dict, required=True) -> str | None:
    """A string field of at most `limit` characters."""
    value = data.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip():
        errors[name] = "Required: a non-empty string."
        return None
    if len(value) > limit:
        errors[name] = f"At most {limit} characters."
        return None
    return value.strip()


@bp.route("/calls/authorize", methods=["POST"])
def calls_authorize():
    """May this call start, with which rate, and for how long at most."""
    try:
        call_id, destination, account, sip_username = _authorization_request()
    except ApiError:
        # The key's state is checked with the account (require_key): a refused key must hear
        # that, not what is wrong with its request.
        state, why = key_state(g.api_key_id, request.remote_addr or "")
        if why:
            raise _key_refused(why) from None
        note_use(g.api_key_id, state.key_last_used_at)
        raise
    explain = request.args.get("explain") == "1"
    try:
        decision = _authorize_on_own_connection(
            g.api_owner,
            call_id,
            destination,
            account,
            sip_username,
            explain=explain,
            key=(g.api_key_id, request.remote_addr or ""),
        )
    except KeyRefused as refused:
        raise _key_refused(refused.why) from None
    except CallIdTaken as taken:
        raise ApiError(409, "This call id is already taken.", taken.errors) from taken
    except CallEnded as ended:
        # Not a decision: the softswitch reused or retried the id of a finished call.
        raise ApiError(409, "This call has already ended.", ended.errors) from ended
    except Busy as busy:
        raise ApiError(503, "The account's funds kept changing; retry the authorization.") from busy
    # After the connection went back: noting the use may take one, and a request never holds
    # two at once (with every pooled connection held, each would wait for another).
    note_use(g.api_key_id, decision.key_last_used)
    return jsonify(decision.answer(explain))


def _authorize_on_own_connection(*args, **kwargs):
    """authorize() on a pooled connection of its own, without a Session around it."""
    # A Session costs more than the few statements an authorization runs. The call API has a
    # pool of its own (portal.CALLS_BIND), without a test query per checkout: a connection the
    # server dropped (a restart) fails its statement, and the authorization runs once more on
    # a new one. Safe even if the write had committed: the call id then replays its answer.
    # On PostgreSQL the connection is in autocommit: every write is one statement
    # (portal.calls.service._record), so the server is spared a BEGIN and a COMMIT.
    engine = db.engines.get(CALLS_BIND, db.engine)

    def once():
        with engine.connect() as connection:
            if connection.dialect.name == "postgresql":
                connection.execution_options(isolation_level="AUTOCOMMIT")
            return authorize(*args, connection=connection, **kwargs)

    try:
        return once()
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise
    return once()


def _key_refused(why: str) -> ApiError:
    """The error for a key that may not be used: 403 from a wrong address, else 401."""
    return ApiError(403 if why == WRONG_ADDRESS else 401, why)


def _authorization_request() -> tuple[str, str, str | None, str | None]:
    """(call_id, destination, account, sip_username) of an authorization, or a 400."""
    data = _json_object()
    errors: dict[str, str] = {}
    call_id = _text(data, "call_id", 128, errors)
    destination = _text(data, "destination", 64, errors)
    account = _text(data, "account", 20, errors, required=False)
    sip_username = _text(data, "sip_username", 64, errors, required=False)
    if destination and not DIGITS.match(destination):
        errors["destination"] = "Digits, with an optional leading + (and * or #), 1 to 32."
    if (account is None) == (sip_username is None) and "account" not in errors:
        errors["account"] = "Send exactly one of account and sip_username."
    unknown = set(data) - {"call_id", "destination", "account", "sip_username"}
    if unknown:
        errors.update(dict.fromkeys(sorted(unknown), "Unknown field."))
    if errors:
        raise ApiError(400, "Invalid request.", errors)
    return call_id, destination, account, sip_username


@bp.route("/calls/<call_id>/end", methods=["POST"])
def calls_end(call_id: str):
    """Rate a finished call once; a repeated end changes nothing."""
    data = _json_object()
    errors = {}
    duration = data.get("duration_seconds")
    if not isinstance(duration, int) or isinstance(duration, bool) or not 0 <= duration <= 86400:
        errors["duration_seconds"] = "A whole number of seconds from 0 to 86400."
    cause = data.get("hangup_cause", "")
    if not isinstance(cause, str) or len(cause) > 40:
        errors["hangup_cause"] = "A string of at most 40 characters."
    if errors:
        raise ApiError(400, "Invalid request.", errors)
    # Deleted accounts included: a call that was live when its account was deleted still ends.
    visible = callers(g.api_owner).with_only_columns(Account.id)
    call = db.session.scalar(
        select(Call).where(Call.call_id == call_id[:128], Call.account_id.in_(visible))
    )
    if call is None:
        raise ApiError(404, "No such call.")
    end_call(call, duration, cause)
    db.session.refresh(call)
    return jsonify(
        {
            "call_id": call.call_id,
            "status": call.status.value,
            "duration_seconds": call.duration_seconds,
            "cost": str(call.cost) if call.cost is not None else None,
        }
    )


@bp.route("/freeswitch/directory", methods=["POST"])
def freeswitch_directory():
    """mod_xml_curl directory lookups: the SIP user's XML, or "not found"."""
    if request.form.get("section", "directory") != "directory":
        return Response(NOT_FOUND_XML, mimetype="text/xml")
    username = request.form.get("user", "")[:64]
    domain = request.form.get("domain", "")[:255]
    visible = visible_accounts(g.api_owner).with_only_columns(Account.id)
    device = db.session.scalar(
        select(SipDevice).where(
            SipDevice.username == username,
            SipDevice.status == Status.ACTIVE,
            SipDevice.account_id.in_(visible),
        )
    )
    account = db.session.get(Account, device.account_id) if device else None
    if device is None or not account.is_active or account.is_expired:
        return Response(NOT_FOUND_XML, mimetype="text/xml")
    variables = {
        "accountcode": account.account_number,
        "user_context": device.context,
        "effective_caller_id_name": device.caller_id_name,
        "effective_caller_id_number": device.caller_id_number,
    }
    xml = (
        '<?xml version="1.0" encoding="UTF-8"?>\n<document type="freeswitch/xml">'
        f'<section name="directory"><domain name={quoteattr(domain)}>'
        f"<user id={quoteattr(device.username)}><params>"
        f'<param name="password" value={quoteattr(device.password)}/></params><variables>'
        + "".join(
            f"<variable name={quoteattr(k)} value={quoteattr(v)}/>" for k, v in variables.items()
        )
        + "</variables></user></domain></section></document>"
    )
    return Response(xml, mimetype="text/xml")
