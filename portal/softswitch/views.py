"""What a switch talks to besides the authorization lane: hang-ups and the FreeSWITCH directory."""

from xml.sax.saxutils import quoteattr

from flask import Response, g, jsonify, request
from sqlalchemy import select

from portal.ancestors import stopped_by
from portal.api.caller import authenticate_request
from portal.api.errors import ApiError, check_json_depth
from portal.api.openapi import MAX_BODY_BYTES, declare, operation
from portal.extensions import db
from portal.models import Account, SipDevice, Status
from portal.security import visible_accounts
from portal.softswitch import bp, schemas
from portal.softswitch.authorize import PATH
from portal.softswitch.fields import NOT_AN_OBJECT
from portal.softswitch.hangups import end, end_fields
from portal.softswitch.xml import NOT_FOUND_XML

# Answered by the WSGI lane alone (portal.softswitch.authorize.AuthorizeLane), documented here.
declare(
    PATH.removeprefix(bp.url_prefix),
    "POST",
    "softswitch.calls_authorize",
    summary="May this call start, at which rate and for how long (the softswitch's question).",
    tag="Calls",
    responses={200: schemas.CallDecisionOut},
    body=schemas.CallAuthorization,
    query=schemas.CallExplainQuery,
    errors=(409, 503),
    invalid_status=400,
    notes={
        400: "Not a JSON object, or invalid fields: `fields` names each one with its reason.",
        409: "The call id belongs to a call that has ended, or to another tenant's call.",
        503: "The account's funds kept changing under the authorization: retry it.",
    },
)


@bp.before_request
def require_key():
    """Every request of a switch needs a valid key; it acts as the account that created it."""
    authenticate_request()


@operation(
    "/calls/<call_id>/end",
    "POST",
    blueprint=bp,
    summary="Rate a finished call once and free its reservation; a repeated end changes nothing.",
    tag="Calls",
    body=schemas.CallEnd,
    responses={200: schemas.CallEndedOut},
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
    request.max_content_length = MAX_BODY_BYTES
    if not request.is_json:
        raise ApiError(400, NOT_AN_OBJECT)
    body = request.get_data(cache=True)
    check_json_depth(body)
    duration, cause, destination, caller = end_fields(body)
    return jsonify(end(g.api_owner, call_id, duration, cause, destination, caller))


@operation(
    "/freeswitch/directory",
    "POST",
    blueprint=bp,
    summary="FreeSWITCH mod_xml_curl directory: an active SIP user's XML, else not found.",
    tag="Calls",
    body=schemas.DirectoryLookup,
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
