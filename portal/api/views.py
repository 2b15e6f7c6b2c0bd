"""Call authorization, hang-up and the FreeSWITCH directory, for API key holders."""

from xml.sax.saxutils import quoteattr

from flask import Response, g, jsonify, request
from sqlalchemy import select

from portal.ancestors import stopped_by
from portal.api import bp, call_schemas
from portal.api.authorize import answer, key_refused, required_key
from portal.api.errors import ApiError, check_json_depth
from portal.api.hangups import end, end_fields
from portal.api.keys import authenticate
from portal.api.openapi import MAX_BODY_BYTES, PUBLIC_ENDPOINTS, operation
from portal.extensions import db
from portal.models import Account, SipDevice, Status
from portal.security import visible_accounts

NOT_FOUND_XML = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<document type="freeswitch/xml">'
    '<section name="result"><result status="not found"/></section></document>'
)


@bp.before_request
def require_key():
    """Every API call needs a valid key; it acts as the account that created the key."""
    if request.endpoint in PUBLIC_ENDPOINTS or request.endpoint == "api.calls_authorize":
        return  # the authorization checks its key itself (portal.api.authorize)
    key = required_key(request.headers.get("Authorization", ""))
    owner, why = authenticate(key, request.remote_addr or "")
    if owner is None:
        raise key_refused(why)
    g.api_owner = owner


def _json_object() -> dict:
    """The request's JSON object, or a 400."""
    if request.is_json:
        check_json_depth(request.get_data(cache=True))
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise ApiError(400, "Send a JSON object (Content-Type: application/json).")
    return data


@operation(
    "/calls/authorize",
    "POST",
    summary="May this call start, at which rate and for how long (the softswitch's question).",
    tag="Calls",
    body=call_schemas.CallAuthorization,
    query=call_schemas.CallExplainQuery,
    responses={200: call_schemas.CallDecisionOut},
    errors=(409, 503),
    invalid_status=400,
    notes={
        400: "Not a JSON object, or invalid fields: `fields` names each one with its reason.",
        409: "The call id belongs to a call that has ended, or to another tenant's call.",
        503: "The account's funds kept changing under the authorization: retry it.",
    },
)
def calls_authorize():
    """May this call start, with which rate, and for how long at most."""
    # Served by AuthorizeLane ahead of Flask; this route gives the same answer (routing, the
    # OpenAPI document and other methods' 405 go through Flask).
    request.max_content_length = MAX_BODY_BYTES
    status, body = answer(
        request.headers.get("Authorization", ""),
        request.content_type or "",
        request.get_data(),
        request.remote_addr or "",
        request.args.get("explain") == "1",
    )
    return jsonify(body), status


@operation(
    "/calls/<call_id>/end",
    "POST",
    summary="Rate a finished call once and free its reservation; a repeated end changes nothing.",
    tag="Calls",
    body=call_schemas.CallEnd,
    responses={200: call_schemas.CallEndedOut},
    errors=(404,),
    invalid_status=400,
    notes={
        400: "Not a JSON object, or invalid fields: `fields` names each one.",
        404: "No such call: with its caller and destination (`fields` says so) a call the "
        "portal never recorded is stored, rated and billed once, flagged `unauthorized`.",
    },
)
def calls_end(call_id: str):
    """Rate a finished call once; a repeated end changes nothing."""
    duration, cause, destination, caller = end_fields(_json_object())
    return jsonify(end(g.api_owner, call_id, duration, cause, destination, caller))


@operation(
    "/freeswitch/directory",
    "POST",
    summary="FreeSWITCH mod_xml_curl directory: an active SIP user's XML, else not found.",
    tag="Calls",
    body=call_schemas.DirectoryLookup,
    responses={200: None},
    invalid_status=400,
    form=True,
    answer_type="text/xml",
    basic_auth=True,
)
def freeswitch_directory():
    """mod_xml_curl directory lookups: the SIP user's XML, or "not found"."""
    if request.form.get("section", "directory") != "directory":
        return Response(NOT_FOUND_XML, mimetype="text/xml")
    username = request.form.get("user", "")[:64]
    domain = request.form.get("domain", "")[:255]
    if not (username + domain).isprintable():
        # Control characters: no SIP user has them, and the XML could not carry them.
        return Response(NOT_FOUND_XML, mimetype="text/xml")
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
    if stopped_by(db.session.connection(), account.tenant_path):  # a reseller above is inactive
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
