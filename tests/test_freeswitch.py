"""FreeSWITCH's formats: mod_xml_curl dialplan requests, mod_json_cdr and mod_xml_cdr CDRs."""

import base64
import json
from datetime import timedelta
from decimal import Decimal
from urllib.parse import quote

import pytest
from defusedxml import ElementTree
from sqlalchemy import func, select

from portal.billing.service import add_payment
from portal.extensions import db
from portal.models import (
    Account,
    AccountBlockedPrefix,
    Call,
    CallStatus,
    EntryKind,
    LedgerEntry,
    Status,
    utcnow,
)
from portal.softswitch.freeswitch import HANGUP_CAUSES, BadCdr, parse_cdr
from tests.conftest import Api, make_caller

LONDON = "442079460958"  # 0.10 connect, 0.60/min, 30 s then 6 s increments
MOBILE = "447911123456"  # 0.60/min in whole minutes
UUID = "a1b2c3d4-0000-4000-8000-00000000c0de"


def dialplan_form(destination: str, call_id: str = UUID, **variables) -> dict:
    """A mod_xml_curl dialplan request as FreeSWITCH posts it (trimmed channel data)."""
    form = {
        "hostname": "fs1",
        "section": "dialplan",
        "tag_name": "",
        "key_name": "",
        "key_value": "",
        "Event-Name": "REQUEST_PARAMS",
        "Core-UUID": "5c4f1a9e-1111-4e4e-9e9e-0123456789ab",
        "FreeSWITCH-Hostname": "fs1",
        "Event-Calling-File": "mod_dialplan_xml.c",
        "Event-Calling-Function": "dialplan_xml_locate",
        "Channel-State": "CS_ROUTING",
        "Channel-Name": "sofia/internal/1000@sip.example.com",
        "Unique-ID": call_id,
        "Call-Direction": "inbound",
        "Answer-State": "ringing",
        "Caller-Direction": "inbound",
        "Caller-Username": variables.pop("username", "1000"),
        "Caller-Dialplan": "XML",
        "Caller-Caller-ID-Name": "Customer",
        "Caller-Caller-ID-Number": "1000",
        "Caller-Network-Addr": variables.pop("network_addr", "198.51.100.7"),
        "Caller-ANI": "1000",
        "Caller-Destination-Number": destination,
        "Caller-Unique-ID": call_id,
        "Caller-Source": "mod_sofia",
        "Caller-Context": "public",
        "Channel-Call-UUID": call_id,
        "Hunt-Context": "public",
        "Hunt-Destination-Number": destination,
        "variable_direction": "inbound",
        "variable_uuid": call_id,
        "variable_sip_from_user": "1000",
        "variable_sip_network_ip": "198.51.100.7",
    }
    form.update({f"variable_{name}": value for name, value in variables.items()})
    return form


def json_cdr(call_id: str, billsec: int, destination: str = LONDON, **variables) -> dict:
    """A mod_json_cdr CDR of an A-leg (trimmed; values URL-encoded, as encode-values=true)."""
    values = {
        "direction": "inbound",
        "uuid": call_id,
        "session_id": "12",
        "sip_from_user": "1000",
        "sip_network_ip": "198.51.100.7",
        "sip_req_user": destination,
        "start_stamp": quote("2026-12-02 10:00:00"),
        "answer_stamp": quote("2026-12-02 10:00:05"),
        "end_stamp": quote("2026-12-02 10:00:52"),
        "duration": str(billsec + 5),
        "billsec": str(billsec),
        "hangup_cause": "NORMAL_CLEARING",
        "hangup_cause_q850": "16",
        **variables,
    }
    return {
        "core-uuid": "5c4f1a9e-1111-4e4e-9e9e-0123456789ab",
        "switchname": "fs1",
        "channel_data": {"state": "CS_REPORTING", "direction": "inbound", "state_number": "11"},
        "variables": values,
        "app_log": {"applications": [{"app_name": "bridge", "app_data": "sofia/gateway/x/1"}]},
        "callflow": [
            {
                "dialplan": "XML",
                "profile_index": "1",
                "extension": {"name": "portal", "number": destination},
                "caller_profile": {
                    "username": "1000",
                    "caller_id_number": "1000",
                    "network_addr": "198.51.100.7",
                    "destination_number": destination,
                    "uuid": call_id,
                    "context": "public",
                },
                "times": {"created_time": "1764669600000000", "hangup_time": "1764669652000000"},
            }
        ],
    }


def xml_cdr(call_id: str, billsec: int, destination: str = LONDON, **variables) -> str:
    """A mod_xml_cdr CDR of an A-leg (trimmed; variable values URL-encoded)."""
    values = {
        "direction": "inbound",
        "uuid": call_id,
        "sip_from_user": "1000",
        "sip_network_ip": "198.51.100.7",
        "start_stamp": quote("2026-12-02 10:00:00"),
        "duration": str(billsec + 5),
        "billsec": str(billsec),
        "hangup_cause": "NORMAL_CLEARING",
        **variables,
    }
    cells = "".join(f"<{name}>{value}</{name}>" for name, value in values.items())
    return (
        '<?xml version="1.0"?>\n<cdr core-uuid="5c4f1a9e-1111-4e4e-9e9e-0123456789ab" '
        'switchname="fs1"><channel_data><state>CS_REPORTING</state>'
        "<direction>inbound</direction></channel_data>"
        f"<variables>{cells}</variables>"
        '<app_log><application app_name="bridge" app_data="sofia/gateway/x/1"/></app_log>'
        '<callflow dialplan="XML" profile_index="1"><extension name="portal">'
        '<application app_name="bridge" app_data="sofia/gateway/x/1"/></extension>'
        f"<caller_profile><username>1000</username><destination_number>{destination}"
        "</destination_number><context>public</context></caller_profile>"
        "<times><created_time>1764669600000000</created_time></times></callflow></cdr>"
    )


def _dialplan(api: Api, form: dict):
    """POST the form to the dialplan binding."""
    return api.post("/api/v1/freeswitch/dialplan", data=form)


def _actions(response) -> list[tuple[str, str]]:
    """The (application, data) of each action in a dialplan answer."""
    assert response.status_code == 200 and response.mimetype == "text/xml"
    root = ElementTree.fromstring(response.data)
    assert root.find("section").get("name") == "dialplan"
    return [(a.get("application"), a.get("data")) for a in root.iter("action")]


def _usage(account_id: int) -> list[Decimal]:
    """The amounts of the account's usage entries."""
    return list(
        db.session.scalars(
            select(LedgerEntry.amount).where(
                LedgerEntry.account_id == account_id, LedgerEntry.kind == EntryKind.USAGE
            )
        )
    )


# --- The dialplan ---------------------------------------------------------------------------


def test_an_allowed_call_is_bridged_cut_at_its_max_duration(app, api, call_rates):
    app.config["FREESWITCH_GATEWAY"] = "sofia/gateway/carrier1/"
    account = make_caller("5200000001", call_rates, "10", number_translation="00/")
    form = dialplan_form("00" + LONDON, accountcode=account.account_number)
    actions = _actions(_dialplan(api, form))
    assert ("set", f"portal_call_id={UUID}") in actions
    assert ("set", f"portal_translated_destination={LONDON}") in actions
    assert ("set", "execute_on_answer=sched_hangup +990 allotted_timeout") in actions
    assert actions[-1] == ("bridge", f"sofia/gateway/carrier1/{LONDON}")
    call = db.session.scalar(select(Call))
    assert (call.call_id, call.status, call.max_duration_seconds) == (UUID, CallStatus.LIVE, 990)
    assert (call.destination, call.account_id) == ("00" + LONDON, account.id)
    # FreeSWITCH asking again (a retry) gets the same answer and reserves once.
    assert _actions(_dialplan(api, form)) == actions
    assert db.session.get(Account, account.id).live_calls == 1


def test_callers_by_sip_user_and_by_trunk_address(api, call_rates, customer, customer_device):
    customer.rate_group_id = call_rates.id
    db.session.commit()
    add_payment(None, customer, "10")
    form = dialplan_form(MOBILE, sip_auth_username=customer_device.username)
    assert _actions(_dialplan(api, form))[-1][0] == "bridge"
    assert db.session.scalar(select(Call.account_id)) == customer.id
    # No account code, no authenticated user: the From user stands for a SIP device only
    # when the address is not an address (never, from sofia), so an unknown trunk is refused.
    unknown = dialplan_form(MOBILE, "b" + UUID[1:], network_addr="203.0.113.99")
    assert _actions(_dialplan(api, unknown))[-1] == ("hangup", "CALL_REJECTED")


def _refused(call_rates, case: str) -> tuple[str, str]:
    """(account number, destination) of a call refused for `case`."""
    yesterday = utcnow() - timedelta(days=1)
    if case == "AUTHENTICATION_FAIL":
        return "5299999999", MOBILE
    if case == "ACCOUNT_INACTIVE_DELETED":
        return make_caller(
            "5200000011", call_rates, "10", status=Status.INACTIVE
        ).account_number, MOBILE
    if case == "ACCOUNT_EXPIRE":
        return make_caller(
            "5200000012", call_rates, "10", expiry_date=yesterday
        ).account_number, MOBILE
    if case == "ORIGINATION_RATE_NOT_FOUND":
        return make_caller("5200000013", call_rates, "10").account_number, "3312345678"
    if case == "NO_SUFFICIENT_FUND":
        return make_caller("5200000014", call_rates, "0").account_number, MOBILE
    if case == "DESTINATION_BLOCKED":
        account = make_caller("5200000015", call_rates, "10")
        db.session.add(AccountBlockedPrefix(account_id=account.id, prefix="4479"))
        db.session.commit()
        return account.account_number, MOBILE
    account = make_caller("5200000016", call_rates, "10", max_channels=1)
    db.session.add(
        Call(call_id="busy", account_id=account.id, destination="44", status=CallStatus.LIVE)
    )
    account.live_calls = 1
    db.session.commit()
    return account.account_number, MOBILE


@pytest.mark.parametrize(("cause", "hangup"), sorted(HANGUP_CAUSES.items()))
def test_each_refusal_hangs_up_with_its_cause(api, call_rates, cause, hangup):
    number, destination = _refused(call_rates, cause)
    actions = _actions(_dialplan(api, dialplan_form(destination, accountcode=number)))
    assert actions[-1] == ("hangup", hangup)
    assert not any(app == "bridge" for app, _data in actions)
    call = db.session.scalar(select(Call).where(Call.call_id == UUID))
    assert (call.status, call.cause) == (CallStatus.REFUSED, cause)


def test_the_cause_mapping_is_documented_for_every_refusal():
    assert set(HANGUP_CAUSES.values()) <= {
        "CALL_REJECTED",
        "NO_ROUTE_DESTINATION",
        "OUTGOING_CALL_BARRED",
        "USER_BUSY",
    }
    assert len(HANGUP_CAUSES) == 7


@pytest.mark.parametrize(
    ("changes", "hangup"),
    [
        ({"Caller-Destination-Number": "44-79"}, "INVALID_NUMBER_FORMAT"),
        ({"Caller-Destination-Number": ""}, "INVALID_NUMBER_FORMAT"),
        ({"Unique-ID": "${system(rm)}", "Channel-Call-UUID": ""}, "CALL_REJECTED"),
        ({"Unique-ID": "x\x00", "Channel-Call-UUID": ""}, "CALL_REJECTED"),
        ({"variable_accountcode": "52\x0001"}, "CALL_REJECTED"),
    ],
)
def test_unusable_requests_hang_up_and_write_nothing(api, call_rates, changes, hangup):
    form = {**dialplan_form(MOBILE, accountcode="5200000020"), **changes}
    if "variable_accountcode" in changes:
        form.update(
            {
                "Caller-Network-Addr": "",
                "variable_sip_network_ip": "",
                "Caller-Username": "",
                "variable_sip_from_user": "",
            }
        )
    assert _actions(_dialplan(api, form))[-1] == ("hangup", hangup)
    assert db.session.scalar(select(func.count(Call.id))) == 0


def test_values_are_xml_escaped(api, call_rates):
    account = make_caller("5200000021", call_rates, "10")
    form = dialplan_form(MOBILE, accountcode=account.account_number)
    form["Hunt-Context"] = 'x"/><action application="system'
    response = _dialplan(api, form)
    root = ElementTree.fromstring(response.data)
    assert root.find(".//context").get("name") == "default"  # not a context name: replaced
    assert [a.get("application") for a in root.iter("action")][-1] == "bridge"


def test_other_sections_are_not_found(api):
    response = api.post("/api/v1/freeswitch/dialplan", data={"section": "directory"})
    assert response.status_code == 200 and 'result status="not found"' in response.text


@pytest.mark.parametrize("url", ["/api/v1/freeswitch/dialplan", "/api/v1/freeswitch/cdr"])
def test_a_wrong_or_absent_key_is_401(client, api_key, url):
    assert client.post(url, data={"section": "dialplan"}).status_code == 401
    wrong = base64.b64encode(b"freeswitch:vbp_nope_nope").decode()
    response = client.post(
        url, data={"section": "dialplan"}, headers={"Authorization": f"Basic {wrong}"}
    )
    assert response.status_code == 401 and "error" in response.json


def test_basic_auth_carries_the_key(client, api_key, call_rates):
    account = make_caller("5200000022", call_rates, "10")
    basic = base64.b64encode(f"freeswitch:{api_key}".encode()).decode()
    api = Api(client, "unused")
    response = api.post(
        "/api/v1/freeswitch/dialplan",
        data=dialplan_form(MOBILE, accountcode=account.account_number),
        headers={"Authorization": f"Basic {basic}"},
    )
    assert _actions(response)[-1][0] == "bridge"


# --- CDRs -----------------------------------------------------------------------------------


def _authorized(api: Api, call_rates, number: str, call_id: str = UUID) -> Account:
    """A caller with 10 of funds and a call to LONDON authorized through the dialplan."""
    account = make_caller(number, call_rates, "10")
    form = dialplan_form(LONDON, call_id, accountcode=account.account_number)
    assert _actions(_dialplan(api, form))[-1][0] == "bridge"
    return account


@pytest.mark.parametrize("shape", ["json", "json_form", "xml_form", "xml_body"])
def test_a_cdr_ends_the_call_once(api, call_rates, shape):
    account = _authorized(api, call_rates, "5200000030")
    variables = {"portal_call_id": UUID, "accountcode": account.account_number}
    if shape == "json":
        send = {"json": json_cdr(UUID, 47, **variables)}
    elif shape == "json_form":
        send = {"data": {"cdr": json.dumps(json_cdr(UUID, 47, **variables))}}
    elif shape == "xml_form":
        send = {"data": {"cdr": xml_cdr(UUID, 47, **variables)}}
    else:
        send = {"data": xml_cdr(UUID, 47, **variables), "content_type": "text/xml"}
    for _ in range(3):  # FreeSWITCH retries a post it thinks failed: one debit
        response = api.post("/api/v1/freeswitch/cdr", **send)
        assert response.status_code == 200, response.json
        assert response.json == {
            "call_id": UUID,
            "status": "ended",
            "duration_seconds": 47,
            "cost": "0.58000",
            "unauthorized": False,
        }
    assert _usage(account.id) == [Decimal("-0.58")]
    account = db.session.get(Account, account.id)
    assert (account.live_calls, account.reserved) == (0, 0)
    assert db.session.scalar(select(Call.hangup_cause)) == "NORMAL_CLEARING"


def test_a_cdr_without_an_authorization_bills_the_call_once_flagged(api, call_rates):
    account = make_caller("5200000031", call_rates, "10")
    cdr = json_cdr(UUID, 47, accountcode=account.account_number)
    for _ in range(2):
        response = api.post("/api/v1/freeswitch/cdr", json=cdr)
        assert response.status_code == 200
        assert response.json["cost"] == "0.58000" and response.json["unauthorized"] is True
    assert _usage(account.id) == [Decimal("-0.58")]
    call = db.session.scalar(select(Call))
    assert (call.destination, call.unauthorized, call.duration_seconds) == (LONDON, True, 47)


def test_an_xml_cdr_by_sip_user_without_an_authorization(
    api, call_rates, customer, customer_device
):
    customer.rate_group_id = call_rates.id
    db.session.commit()
    body = xml_cdr(UUID, 60, MOBILE, sip_auth_username=customer_device.username)
    response = api.post("/api/v1/freeswitch/cdr", data={"cdr": body})
    assert response.status_code == 200 and response.json["cost"] == "0.60000"
    assert db.session.scalar(select(Call.account_id)) == customer.id


def test_a_cdr_before_its_authorization_is_billed_and_the_late_one_is_refused(api, call_rates):
    account = make_caller("5200000032", call_rates, "10")
    cdr = json_cdr(UUID, 47, accountcode=account.account_number)
    assert api.post("/api/v1/freeswitch/cdr", json=cdr).json["cost"] == "0.58000"
    late = dialplan_form(LONDON, accountcode=account.account_number)
    assert _actions(_dialplan(api, late))[-1] == ("hangup", "CALL_REJECTED")
    assert _usage(account.id) == [Decimal("-0.58")]


def test_an_unknown_call_without_a_caller_is_404_and_kept_by_freeswitch(api, call_rates):
    cdr = json_cdr(UUID, 47)
    del cdr["variables"]["sip_network_ip"], cdr["variables"]["sip_from_user"]
    response = api.post("/api/v1/freeswitch/cdr", json=cdr)
    assert response.status_code == 404 and "destination" in response.json["fields"]
    assert db.session.scalar(select(func.count(Call.id))) == 0


def test_a_b_legs_cdr_bills_nothing(api, call_rates):
    account = _authorized(api, call_rates, "5200000033")
    cdr = json_cdr(
        "b" + UUID[1:], 47, accountcode=account.account_number, originating_leg_uuid=UUID
    )
    cdr["channel_data"]["direction"] = "outbound"
    response = api.post("/api/v1/freeswitch/cdr", json=cdr)
    assert response.status_code == 200 and "ignored" in response.json
    assert _usage(account.id) == []
    assert db.session.scalar(select(Call.status)) == CallStatus.LIVE


ENTITY = (
    '<?xml version="1.0"?><!DOCTYPE cdr [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>'
    "<cdr><variables><uuid>&b;</uuid><billsec>1</billsec></variables></cdr>"
)


@pytest.mark.parametrize(
    "send",
    [
        {"data": "{not json", "content_type": "application/json"},
        {"data": "[1, 2]", "content_type": "application/json"},
        {"data": '{"variables": 5}', "content_type": "application/json"},
        {"data": "[" * 5000, "content_type": "application/json"},
        {"data": "<cdr><variables><uuid>x</variables>", "content_type": "text/xml"},
        {"data": ENTITY, "content_type": "text/xml"},
        {"data": {"cdr": ENTITY}},
        {"data": {"other": "x"}},
        {"data": b"\xff\xfe<cdr/>", "content_type": "text/xml"},
        {"data": "hello", "content_type": "text/plain"},
        {"json": {"variables": {"uuid": UUID, "billsec": "-1"}}},
        {"json": {"variables": {"uuid": UUID, "billsec": "86401"}}},
        {"json": {"variables": {"uuid": "${x}", "billsec": "1"}}},
        {"json": {"variables": {"uuid": "a\x00b", "billsec": "1"}}},
    ],
)
def test_bad_cdrs_are_400_not_500(api, call_rates, send):
    response = api.post("/api/v1/freeswitch/cdr", **send)
    assert response.status_code == 400 and "error" in response.json
    assert db.session.scalar(select(func.count(Call.id))) == 0


def test_a_cdr_larger_than_the_api_takes_is_413(api):
    cdr = json_cdr(UUID, 1, padding="x" * 300_000)
    assert api.post("/api/v1/freeswitch/cdr", json=cdr).status_code == 413


def test_cdr_values_with_control_characters_are_not_used():
    cdr = json_cdr(UUID, 10, accountcode="52%00", sip_from_user="10%0A00")
    del cdr["variables"]["sip_network_ip"]
    ended = parse_cdr(json.dumps(cdr).encode(), None)
    assert ended.caller is None and ended.duration_seconds == 10
    with pytest.raises(BadCdr):
        parse_cdr(b"", None)
