"""A hang-up from the softswitch: of a recorded call, or of one the portal never recorded."""

from sqlalchemy import select

from portal.api.errors import ApiError
from portal.calls.checks import callers
from portal.calls.service import end_call
from portal.calls.unrecorded import Caller, end_unrecorded
from portal.extensions import db
from portal.models import Account, Call, CallStatus
from portal.softswitch.authorize import unstorable
from portal.softswitch.fields import validated
from portal.softswitch.schemas import CallEnd

# What an end of a call the portal never recorded must carry to be billed (the 404's fields).
UNRECORDED_FIELDS = {
    "destination": "The number dialled: needed to bill a call the portal has no record of.",
    "account": "Who called: exactly one of account, sip_username and source_ip.",
}


def end_fields(body: bytes) -> tuple[int, str, str | None, Caller | None]:
    """(duration, hang-up cause, destination, caller) of an end request's JSON, or a 400."""
    ended = validated(CallEnd, body)
    sent = ended.account or ended.sip_username or ended.source_ip
    caller = Caller(ended.account, ended.sip_username, ended.source_ip) if sent else None
    return ended.duration_seconds, ended.hangup_cause, ended.destination, caller


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
