"""FreeSWITCH's own formats: mod_xml_curl's dialplan, mod_json_cdr's and mod_xml_cdr's CDRs."""

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import unquote
from xml.etree.ElementTree import Element, ParseError
from xml.sax.saxutils import quoteattr

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring
from flask import Response, current_app, g, jsonify, request
from pydantic import BaseModel, ConfigDict, Field

from portal.api.errors import ApiError, check_json_depth
from portal.api.openapi import MAX_BODY_BYTES, operation
from portal.calls.access import DESTINATION_BLOCKED
from portal.calls.checks import (
    ACCOUNT_EXPIRE,
    ACCOUNT_INACTIVE_DELETED,
    AUTHENTICATION_FAIL,
    CHANNEL_LIMIT,
    NO_SUFFICIENT_FUND,
    ORIGINATION_RATE_NOT_FOUND,
)
from portal.calls.engine import authorize_call
from portal.calls.service import Busy, CallEnded, CallIdTaken
from portal.calls.unrecorded import Caller
from portal.models import CallStatus
from portal.rules.addresses import source_key
from portal.softswitch import bp
from portal.softswitch.authorize import unstorable
from portal.softswitch.hangups import end
from portal.softswitch.schemas import DIGITS
from portal.softswitch.xml import NOT_FOUND_XML

# The portal's refusal causes as FreeSWITCH hang-up causes (and the SIP answer each becomes).
HANGUP_CAUSES = {
    AUTHENTICATION_FAIL: "CALL_REJECTED",  # 403
    ACCOUNT_INACTIVE_DELETED: "CALL_REJECTED",  # 403
    ACCOUNT_EXPIRE: "CALL_REJECTED",  # 403
    ORIGINATION_RATE_NOT_FOUND: "NO_ROUTE_DESTINATION",  # 404
    NO_SUFFICIENT_FUND: "OUTGOING_CALL_BARRED",  # 403
    DESTINATION_BLOCKED: "OUTGOING_CALL_BARRED",  # 403
    CHANNEL_LIMIT: "USER_BUSY",  # 486
}
INVALID_NUMBER = "INVALID_NUMBER_FORMAT"  # 484: no destination the portal can rate
REJECTED = "CALL_REJECTED"  # no caller, an unusable call id, a call id already ended
TRY_AGAIN = "NORMAL_TEMPORARY_FAILURE"  # 503: the account's funds kept changing

# A FreeSWITCH Unique-ID is a UUID; nothing here can start a ${...} expansion in `set` data.
CALL_ID = re.compile(r"[A-Za-z0-9._:@+-]{1,128}")
CONTEXT = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class DialplanRequest(BaseModel):
    """mod_xml_curl's dialplan request (a form of channel variables): the fields read."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    section: str = Field("dialplan", description='Only "dialplan" is answered.')
    unique_id: str = Field("", alias="Unique-ID", description="The call id (the channel's UUID).")
    destination: str = Field(
        "", alias="Caller-Destination-Number", description="The number dialled."
    )
    accountcode: str = Field(
        "", alias="variable_accountcode", description="The calling account's number."
    )
    auth_username: str = Field(
        "", alias="variable_sip_auth_username", description="The SIP user that authenticated."
    )
    network_addr: str = Field(
        "", alias="Caller-Network-Addr", description="The address of an IP trunk's call."
    )
    username: str = Field("", alias="Caller-Username", description="The caller's SIP user.")


class JsonCdr(BaseModel):
    """mod_json_cdr's CDR (or mod_xml_cdr's, as a `cdr` form field or an XML body)."""

    model_config = ConfigDict(extra="allow")

    variables: dict[str, str] = Field(
        description="The channel variables: uuid (or portal_call_id), billsec, hangup_cause, "
        "and for a call never authorized accountcode / sip_auth_username / sip_network_ip / "
        "sip_from_user and destination_number. Values may be URL-encoded (encode-values)."
    )
    callflow: list[dict] | dict | None = None
    channel_data: dict | None = None


class CdrOut(BaseModel):
    """A CDR's call after its end (as /calls/<call_id>/end answers), or why it billed nothing."""

    call_id: str | None = None
    status: CallStatus | None = None
    duration_seconds: int | None = None
    cost: str | None = None
    unauthorized: bool = False
    ignored: str | None = Field(None, description="Why nothing was billed: a B-leg's CDR.")


@dataclass(frozen=True)
class CallAsk:
    """An authorization asked by a dialplan request."""

    call_id: str
    destination: str
    caller: Caller | None
    context: str


@dataclass(frozen=True)
class CdrEnd:
    """A hang-up told by a CDR."""

    call_id: str
    duration_seconds: int
    hangup_cause: str
    destination: str | None
    caller: Caller | None
    b_leg: bool


class BadCdr(Exception):
    """The body is no CDR this API can read: the reason."""


def _clean(value, limit: int) -> str:
    """`value` if it is a storable, printable string of at most `limit` characters, else ""."""
    if not isinstance(value, str) or len(value) > limit or unstorable(value):
        return ""
    return value if value.isprintable() else ""


def caller_of(lookup: Callable[[str], str]) -> Caller | None:
    """Who calls, from channel variables: account code, SIP user, trunk address, From user."""
    # The directory sets accountcode for the portal's SIP users; a digest-authenticated user
    # is its SIP device; a call without either came through an IP trunk (its address), and
    # the From user is the last resort (a SIP device's username).
    if account := _clean(lookup("accountcode"), 20):
        return Caller(account_number=account)
    if username := _clean(lookup("sip_auth_username"), 64):
        return Caller(sip_username=username)
    address = _clean(lookup("sip_network_ip"), 45)
    if address and source_key(address) is not None:
        return Caller(source_ip=address)
    if username := _clean(lookup("sip_from_user"), 64):
        return Caller(sip_username=username)
    return None


def dialplan_ask(form: Mapping[str, str]) -> CallAsk:
    """The authorization a mod_xml_curl dialplan request asks for (fields may be empty)."""
    variables = {
        "accountcode": form.get("variable_accountcode", ""),
        "sip_auth_username": form.get("variable_sip_auth_username", ""),
        "sip_network_ip": form.get("Caller-Network-Addr") or form.get("variable_sip_network_ip"),
        "sip_from_user": form.get("Caller-Username") or form.get("variable_sip_from_user"),
    }
    call_id = form.get("Unique-ID") or form.get("Channel-Call-UUID") or ""
    context = form.get("Hunt-Context") or form.get("Caller-Context") or ""
    return CallAsk(
        call_id=call_id if CALL_ID.fullmatch(call_id) else "",
        destination=_clean(form.get("Caller-Destination-Number", ""), 64),
        caller=caller_of(lambda name: variables[name] or ""),
        context=context if CONTEXT.fullmatch(context) else "default",
    )


def _document(context: str, actions: list[tuple[str, str]]) -> str:
    """A dialplan document: one extension running `actions` (application, data) in `context`."""
    lines = "".join(
        f"<action application={quoteattr(app)} data={quoteattr(data)}/>" for app, data in actions
    )
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
        '<document type="freeswitch/xml"><section name="dialplan" description="Portal">'
        f'<context name={quoteattr(context)}><extension name="portal">'
        f'<condition field="destination_number" expression="^(.*)$">{lines}</condition>'
        "</extension></context></section></document>"
    )


def allowed_xml(ask: CallAsk, number: str, max_duration_seconds: int, gateway: str) -> str:
    """An allowed call's dialplan: cut at its max duration, bridged to the translated number."""
    return _document(
        ask.context,
        [
            ("set", f"portal_call_id={ask.call_id}"),
            ("set", f"portal_translated_destination={number}"),
            ("set", f"portal_max_duration={max_duration_seconds}"),
            ("set", "hangup_after_bridge=true"),
            ("set", f"execute_on_answer=sched_hangup +{max_duration_seconds} allotted_timeout"),
            ("bridge", f"{gateway}{number}"),
        ],
    )


def refused_xml(context: str, hangup_cause: str) -> str:
    """The dialplan of a refused call: hang up with `hangup_cause`."""
    return _document(context, [("set", f"portal_refused={hangup_cause}"), ("hangup", hangup_cause)])


def parse_cdr(body: bytes, form_cdr: str | None) -> CdrEnd:
    """The hang-up in a mod_json_cdr or mod_xml_cdr POST (a `cdr` form field, or the body)."""
    if form_cdr is not None:
        text = form_cdr
    else:
        try:
            text = body.decode()
        except UnicodeDecodeError:
            raise BadCdr("The CDR is not UTF-8 text.") from None
    text = text.strip()
    if text.startswith("{"):
        variables, destination, direction = _json_cdr(text)
    elif text.startswith("<"):
        variables, destination, direction = _xml_cdr(text)
    else:
        raise BadCdr("Send mod_json_cdr's JSON or mod_xml_cdr's XML.")
    # Values are URL-encoded unless the module's encode-values is false (FreeSWITCH's values
    # of these variables never hold a "%" of their own).
    variables = {name: unquote(value) for name, value in variables.items()}
    call_id = variables.get("portal_call_id") or variables.get("uuid") or ""
    if not CALL_ID.fullmatch(call_id):
        raise BadCdr("The CDR has no usable uuid.")
    billsec = variables.get("billsec", "")
    if not billsec.isdigit() or not 0 <= int(billsec) <= 86400:
        raise BadCdr("The CDR's billsec is not a number of seconds from 0 to 86400.")
    destination = _clean(variables.get("destination_number") or destination, 64)
    # A B-leg (the bridged call out, posted with log-b-leg=true) is the same call again.
    b_leg = "portal_call_id" not in variables and (
        direction == "outbound" or bool(variables.get("originating_leg_uuid"))
    )
    return CdrEnd(
        call_id=call_id,
        duration_seconds=int(billsec),
        hangup_cause=_clean(variables.get("hangup_cause", ""), 40),
        destination=destination if DIGITS.fullmatch(destination) else None,
        caller=caller_of(lambda name: variables.get(name, "")),
        b_leg=b_leg,
    )


def _json_cdr(text: str) -> tuple[dict[str, str], str, str]:
    """(variables, destination number, direction) of mod_json_cdr's JSON."""
    check_json_depth(text.encode())
    try:
        data = json.loads(text)
    except ValueError:
        raise BadCdr("The CDR is not valid JSON.") from None
    variables = data.get("variables") if isinstance(data, dict) else None
    if not isinstance(variables, dict):
        raise BadCdr("The CDR has no variables object.")
    variables = {k: v for k, v in variables.items() if isinstance(v, str)}
    destination = ""
    flows = data.get("callflow")
    for flow in flows if isinstance(flows, list) else [flows]:
        profile = flow.get("caller_profile") if isinstance(flow, dict) else None
        if isinstance(profile, dict) and isinstance(profile.get("destination_number"), str):
            destination = profile["destination_number"]
            break
    channel = data.get("channel_data")
    direction = channel.get("direction", "") if isinstance(channel, dict) else ""
    return variables, destination, direction if isinstance(direction, str) else ""


def _xml_cdr(text: str) -> tuple[dict[str, str], str, str]:
    """(variables, destination number, direction) of mod_xml_cdr's XML (no DTD, no entities)."""
    try:
        root: Element = fromstring(text, forbid_dtd=True)
    except (ParseError, DefusedXmlException, ValueError):
        raise BadCdr("The CDR is not XML this API reads (no DTD or entities).") from None
    variables = root.find("variables")
    if root.tag != "cdr" or variables is None:
        raise BadCdr("The CDR has no <cdr><variables>.")
    found = {child.tag: child.text or "" for child in variables}
    destination = root.findtext("callflow/caller_profile/destination_number") or ""
    direction = root.findtext("channel_data/direction") or ""
    return found, destination, direction


def _xml(text: str) -> Response:
    """An XML answer for FreeSWITCH."""
    return Response(text, mimetype="text/xml")


@operation(
    "/freeswitch/dialplan",
    "POST",
    blueprint=bp,
    summary="FreeSWITCH mod_xml_curl dialplan: authorize the call and answer its extension.",
    tag="Calls",
    body=DialplanRequest,
    responses={200: None},
    invalid_status=400,
    form=True,
    answer_type="text/xml",
    basic_auth=True,
)
def freeswitch_dialplan():
    """mod_xml_curl dialplan requests: bridge an allowed call, hang up a refused one."""
    request.max_content_length = MAX_BODY_BYTES
    if request.form.get("section", "dialplan") != "dialplan":
        return _xml(NOT_FOUND_XML)
    ask = dialplan_ask(request.form)
    if not ask.call_id or ask.caller is None:
        return _xml(refused_xml(ask.context, REJECTED))
    if not DIGITS.fullmatch(ask.destination):
        return _xml(refused_xml(ask.context, INVALID_NUMBER))
    try:
        decision = authorize_call(
            g.api_owner,
            ask.call_id,
            ask.destination,
            account_number=ask.caller.account_number,
            sip_username=ask.caller.sip_username,
            source_ip=ask.caller.source_ip,
        )
    except (CallIdTaken, CallEnded):
        return _xml(refused_xml(ask.context, REJECTED))
    except Busy:
        return _xml(refused_xml(ask.context, TRY_AGAIN))
    if not decision.allowed:
        return _xml(refused_xml(ask.context, HANGUP_CAUSES.get(decision.cause, REJECTED)))
    gateway = current_app.config["FREESWITCH_GATEWAY"]
    number = decision.translated_destination
    return _xml(allowed_xml(ask, number, decision.max_duration_seconds, gateway))


@operation(
    "/freeswitch/cdr",
    "POST",
    blueprint=bp,
    summary="FreeSWITCH mod_json_cdr / mod_xml_cdr: end the call once, as /calls/<id>/end does.",
    tag="Calls",
    body=JsonCdr,
    responses={200: CdrOut},
    errors=(404,),
    invalid_status=400,
    basic_auth=True,
    notes={
        400: "Not a CDR: malformed JSON or XML, a DTD or entity, no uuid or billsec.",
        404: "No such call, and the CDR does not say who called and where.",
    },
)
def freeswitch_cdr():
    """A CDR: rate and bill its call once (a call never authorized too); again: no change."""
    request.max_content_length = MAX_BODY_BYTES
    form_cdr = None
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form_cdr = request.form.get("cdr")
        if form_cdr is None:
            raise ApiError(400, "Send the CDR as the cdr form field, or as the body.")
    try:
        cdr = parse_cdr(request.get_data(cache=True), form_cdr)
    except BadCdr as bad:
        raise ApiError(400, str(bad)) from None
    if cdr.b_leg:
        return jsonify({"call_id": cdr.call_id, "ignored": "A B-leg's CDR: the A-leg bills."})
    # Without both the caller and the number, an unknown call is a 404 (FreeSWITCH keeps it).
    billable = cdr.caller is not None and cdr.destination is not None
    answer = end(
        g.api_owner,
        cdr.call_id,
        cdr.duration_seconds,
        cdr.hangup_cause,
        cdr.destination if billable else None,
        cdr.caller if billable else None,
    )
    return jsonify(answer)
