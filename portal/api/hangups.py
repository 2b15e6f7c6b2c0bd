"""A hang-up from the softswitch: of a recorded call, or of one the portal never recorded."""

from sqlalchemy import select

from portal.api.authorize import CALLERS, DIGITS, text_field, unstorable
from portal.api.errors import ApiError
from portal.calls.checks import callers
from portal.calls.service import end_call
from portal.calls.unrecorded import Caller, end_unrecorded
from portal.extensions import db
from portal.models import Account, Call, CallStatus
from portal.rules.addresses import source_key

END_FIELDS = frozenset({"duration_seconds", "hangup_cause", "destination", *CALLERS})

# What an end of a call the portal never recorded must carry to be billed (the 404's fields).
UNRECORDED_FIELDS = {
    "destination": "The number dialled: needed to bill a call the portal has no record of.",
    "account": "Who called: exactly one of account, sip_username and source_ip.",
}


def end_fields(data: dict) -> tuple[int, str, str | None, Caller | None]:
    """(duration, hang-up cause, destination, caller) of an end request's JSON, or a 400."""
    errors: dict[str, str] = {}
    duration = data.get("duration_seconds")
    if not isinstance(duration, int) or isinstance(duration, bool) or not 0 <= duration <= 86400:
        errors["duration_seconds"] = "A whole number of seconds from 0 to 86400."
    cause = data.get("hangup_cause", "")
    if not isinstance(cause, str) or len(cause) > 40:
        errors["hangup_cause"] = "A string of at most 40 characters."
    elif why := unstorable(cause):
        errors["hangup_cause"] = why
    destination = text_field(data, "destination", 64, errors, required=False)
    if destination and not DIGITS.fullmatch(destination):
        errors["destination"] = "Digits, with an optional leading + (and * or #), 1 to 32."
    account = text_field(data, "account", 20, errors, required=False)
    sip_username = text_field(data, "sip_username", 64, errors, required=False)
    source_ip = text_field(data, "source_ip", 45, errors, required=False)
    if source_ip is not None and source_key(source_ip) is None:
        errors["source_ip"] = "An IPv4 or IPv6 address, such as 203.0.113.7 or 2001:db8::7."
    sent = [name for name in CALLERS if data.get(name) is not None]
    if len(sent) > 1 and not errors.keys() & set(CALLERS):
        errors["account"] = "Send at most one of account, sip_username and source_ip."
    if sent and data.get("destination") is None:
        errors["destination"] = "Required with the caller: the number dialled."
    if data.get("destination") is not None and not sent and "account" not in errors:
        errors["account"] = "Send one of account, sip_username and source_ip with the destination."
    unknown = data.keys() - END_FIELDS
    errors.update(dict.fromkeys(sorted(unknown), "Unknown field."))
    if errors:
        raise ApiError(400, "Invalid request.", errors)
    caller = Caller(account, sip_username, source_ip) if sent else None
    return duration, cause, destination, caller


def end(owner, call_id: str, duration: int, cause: str, destination, caller) -> dict:
    """End the call once and answer it; an unrecorded one is billed when its caller is sent."""
    if "\x00" in call_id:  # no call id holds one, and PostgreSQL refuses it in a query
        raise ApiError(404, "No such call.")
    # Deleted accounts included: a call that was live when its account was deleted still ends.
    visible = callers(owner).with_only_columns(Account.id)
    call = db.session.scalar(
        select(Call).where(Call.call_id == call_id[:128], Call.account_id.in_(visible))
    )
    if call is not None and call.status == CallStatus.REFUSED and duration and caller:
        # Refused, yet answered: the switch connected it anyway. Billed as never recorded;
        # the refusal's row is replaced (SQLite may give the new row its id).
        db.session.expunge(call)
        call = end_unrecorded(owner, call.call_id, destination, caller, duration, cause, call.id)
        if call is None:
            raise ApiError(404, "No such call.")
    elif call is not None:
        end_call(call, duration, cause)
    elif caller is None:
        message = "No such call: send its caller and destination to bill it."
        raise ApiError(404, message, dict(UNRECORDED_FIELDS))
    elif len(call_id) > 128 or unstorable(call_id):
        raise ApiError(404, "No such call.")  # no call could be recorded under this id
    else:
        call = end_unrecorded(owner, call_id, destination, caller, duration, cause)
        if call is None:
            raise ApiError(404, "No such call.")
    db.session.refresh(call)
    return {
        "call_id": call.call_id,
        "status": call.status.value,
        "duration_seconds": call.duration_seconds,
        "cost": str(call.cost) if call.cost is not None else None,
        "unauthorized": call.unauthorized,
    }
