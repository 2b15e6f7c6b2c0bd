"""No call unbilled: a hang-up of a call the portal never recorded is stored, rated, billed once."""

from decimal import Decimal

from sqlalchemy import delete, func, select, update

from portal.apikeys.service import create_key
from portal.extensions import db
from portal.models import (
    Account,
    Call,
    CallCharge,
    CallRollup,
    CallStatus,
    EntryKind,
    LedgerEntry,
    Status,
    utcnow,
)
from tests.conftest import Api, Browser, in_threads, make_caller

LONDON = "442079460958"  # 0.10 connect, 0.60/min, 30 s then 6 s increments
MOBILE = "447911123456"  # 0.60/min in whole minutes


def _end(api: Api, call_id: str, seconds: int, **caller):
    """POST /api/v1/calls/<call_id>/end with the caller fields of an unrecorded call."""
    body = {"duration_seconds": seconds, "hangup_cause": "NORMAL_CLEARING", **caller}
    return api.post(f"/api/v1/calls/{call_id}/end", json=body)


def _usage(account_id: int) -> list[Decimal]:
    """The amounts of the account's usage entries."""
    return list(
        db.session.scalars(
            select(LedgerEntry.amount).where(
                LedgerEntry.account_id == account_id, LedgerEntry.kind == EntryKind.USAGE
            )
        )
    )


def _counters(account_id: int) -> tuple[int, Decimal]:
    """The account's live calls and reserved credit."""
    db.session.expire_all()
    account = db.session.get(Account, account_id)
    return account.live_calls, account.reserved


def test_an_unknown_call_with_its_caller_is_stored_rated_and_billed_once(api, call_rates):
    account = make_caller("5100000001", call_rates, "10")
    response = _end(api, "lost-1", 47, destination=LONDON, account=account.account_number)
    assert response.status_code == 200
    assert response.json == {
        "call_id": "lost-1",
        "status": "ended",
        "duration_seconds": 47,
        "cost": "0.58000",  # as an authorized call: 0.10 + 48 s at 0.01/s
        "unauthorized": True,
    }
    assert _usage(account.id) == [Decimal("-0.58")]
    for _ in range(2):  # repeated ends, even with another duration, change nothing
        again = _end(api, "lost-1", 300, destination=LONDON, account=account.account_number)
        assert again.status_code == 200 and again.json == response.json
        assert api.end("lost-1", 300).json == response.json  # and without the caller too
    assert _usage(account.id) == [Decimal("-0.58")]
    assert db.session.get(Account, account.id).balance == Decimal("9.42")
    call = db.session.scalar(select(Call))
    assert call.unauthorized and call.account_id == account.id
    assert (call.rate_destination, call.translated_destination) == ("UK London", LONDON)
    assert call.hangup_cause == "NORMAL_CLEARING" and call.reserved == 0
    assert _counters(account.id) == (0, 0)
    rollup = db.session.scalar(select(CallRollup).where(CallRollup.tenant_key == 0))
    assert (rollup.calls, rollup.seconds, rollup.revenue) == (1, 47, Decimal("0.58"))


def test_the_whole_duration_is_billed_whatever_the_funds(api, call_rates):
    account = make_caller("5100000002", call_rates, "1")  # authorization would allow 60 s
    response = _end(api, "lost-2", 600, destination=MOBILE, account=account.account_number)
    assert response.json["cost"] == "6.00000" and response.json["duration_seconds"] == 600
    assert db.session.get(Account, account.id).balance == Decimal("-5")


def test_an_inactive_or_deleted_account_is_still_billed(api, call_rates):
    account = make_caller("5100000003", call_rates, "10", status=Status.INACTIVE)
    account.deleted_at = utcnow()
    db.session.commit()
    response = _end(api, "lost-3", 60, destination=MOBILE, account=account.account_number)
    assert response.status_code == 200 and response.json["cost"] == "0.60000"
    assert _usage(account.id) == [Decimal("-0.60")]


def test_a_destination_without_a_rate_is_stored_at_no_cost_with_the_reason(api, call_rates):
    account = make_caller("5100000004", call_rates, "10")
    response = _end(api, "lost-4", 60, destination="99123", account=account.account_number)
    assert response.status_code == 200 and response.json["cost"] == "0.00000"
    call = db.session.scalar(select(Call))
    assert call.unauthorized and call.cause == "ORIGINATION_RATE_NOT_FOUND"
    assert _usage(account.id) == [] and _counters(account.id) == (0, 0)


def test_a_sip_user_calls_as_its_account(api, call_rates, customer_device, customer):
    customer.rate_group_id = call_rates.id
    db.session.commit()
    response = _end(api, "lost-5", 60, destination=MOBILE, sip_username="1000000004")
    assert response.json["cost"] == "0.60000"
    assert db.session.scalar(select(Call.account_id)) == customer.id


def test_an_unknown_call_without_its_caller_says_what_to_send(api, call_rates):
    response = api.end("lost-6", 60)
    assert response.status_code == 404
    assert set(response.json["fields"]) == {"destination", "account"}
    partial = [
        ({"destination": MOBILE}, "account"),
        ({"account": "5100000001"}, "destination"),
        ({"account": "5100000001", "sip_username": "x", "destination": MOBILE}, "account"),
        ({"account": "5100000001", "destination": "44-79"}, "destination"),
        ({"source_ip": "not-an-address", "destination": MOBILE}, "source_ip"),
        ({"account": "51\x0001", "destination": MOBILE}, "account"),
    ]
    for caller, field in partial:
        response = _end(api, "lost-6", 60, **caller)
        assert response.status_code == 400 and field in response.json["fields"], caller
    assert db.session.scalar(select(func.count(Call.id))) == 0


def test_another_tenants_account_is_never_charged(client, call_rates, tenants_calling):
    theirs = make_caller("5100000007", call_rates, "10")  # an admins' customer
    api = Api(client, create_key(tenants_calling["a"], "reseller switch", "")[1])
    response = _end(api, "lost-7", 60, destination=MOBILE, account=theirs.account_number)
    assert response.status_code == 200 and response.json["cost"] is None
    call = db.session.scalar(select(Call))
    assert call.account_id is None and call.unauthorized
    assert (call.status, call.cause) == (CallStatus.ENDED, "AUTHENTICATION_FAIL")
    assert _usage(theirs.id) == [] and db.session.get(Account, theirs.id).balance == 10
    # A call the other tenant recorded is not found, with or without a caller of one's own.
    db.session.add(
        Call(call_id="theirs", account_id=theirs.id, destination=MOBILE, status=CallStatus.LIVE)
    )
    db.session.commit()
    own = tenants_calling["a_customer"].account_number
    assert _end(api, "theirs", 60, destination="44", account=own).status_code == 404
    assert db.session.scalar(select(Call.status).where(Call.call_id == "theirs")) == "live"


def test_a_resellers_customer_is_billed_at_every_level(client, tenants_calling):
    tenants = tenants_calling
    api = Api(client, create_key(tenants["a"], "reseller switch", "")[1])
    customer = tenants["a1_customer"]
    response = _end(api, "lost-8", 30, destination="4411", sip_username=customer.account_number)
    assert response.status_code == 200 and response.json["cost"] == "0.00000"
    charges = db.session.scalars(select(CallCharge).order_by(CallCharge.level)).all()
    assert [(c.account_id, c.level, c.cost) for c in charges] == [
        (tenants["a1"].id, 1, Decimal(0)),
        (tenants["a"].id, 2, Decimal(0)),
    ]
    for account in (customer, tenants["a1"], tenants["a"]):
        assert _counters(account.id) == (0, 0)


def test_a_lost_authorization_is_billed_once_at_the_end(api, call_rates):
    # CALLS_ASYNC_COMMIT=1: a database crash may lose the last authorizations' commits
    # (the call row and its reservation, one statement). The switch's hang-up still bills.
    account = make_caller("5100000009", call_rates, "10")
    granted = api.authorize(call_id="c1", account=account.account_number, destination=LONDON)
    assert granted.json["allowed"] is True
    db.session.execute(delete(Call).where(Call.call_id == "c1"))
    db.session.execute(
        update(Account).where(Account.id == account.id).values(live_calls=0, reserved=0)
    )
    db.session.commit()
    for _ in range(3):
        response = _end(api, "c1", 47, destination=LONDON, account=account.account_number)
        assert response.json["cost"] == "0.58000" and response.json["unauthorized"] is True
    assert _usage(account.id) == [Decimal("-0.58")]
    assert _counters(account.id) == (0, 0)


def test_concurrent_ends_of_one_unknown_call_bill_once(app, api_key, call_rates):
    number = make_caller("5100000010", call_rates, "10").account_number
    answers = []

    def one(_job):
        api = Api(app.test_client(), api_key)  # real HTTP requests, one client per thread
        response = _end(api, "race", 61, destination=MOBILE, account=number)
        answers.append((response.status_code, response.json["cost"]))

    assert in_threads(app, one, list(range(10))) == []
    assert answers == [(200, "1.20000")] * 10  # 61 s: two whole minutes
    account = db.session.scalar(select(Account).where(Account.account_number == number))
    assert _usage(account.id) == [Decimal("-1.20")]
    assert db.session.scalar(select(func.count(Call.id))) == 1
    assert _counters(account.id) == (0, 0)


def test_the_calls_page_lists_calls_not_authorized(client, api, call_rates, as_admin):
    account = make_caller("5100000011", call_rates, "10")
    api.authorize(call_id="normal", account=account.account_number, destination=MOBILE)
    api.end("normal", 60)
    _end(api, "lost-11", 60, destination=LONDON, account=account.account_number)
    page = as_admin.get("/calls/?status=unauthorized").get_data(as_text=True)
    assert "Not authorized" in page
    assert page.count("badge-unauthorized") == 1 and LONDON in page and MOBILE not in page
    everything = as_admin.get("/calls/").get_data(as_text=True)
    assert everything.count("badge-unauthorized") == 1 and MOBILE in everything


def test_a_reseller_reviews_only_its_subtrees_unauthorized_calls(app, client, tenants_calling):
    tenants = tenants_calling
    api = Api(client, create_key(tenants["a"], "reseller switch", "")[1])
    own = tenants["a_customer"].account_number
    assert _end(api, "lost-12", 60, destination="4412", account=own).status_code == 200
    for name, shown in (("a", 1), ("b", 0)):
        browser = Browser(app.test_client())  # a browser of its own: logged out
        assert browser.login(tenants[name].account_number).status_code in (302, 303)
        page = browser.get("/calls/?status=unauthorized").get_data(as_text=True)
        assert page.count("badge-unauthorized") == shown, name


def test_a_refused_call_the_switch_connected_anyway_is_billed_once(api, call_rates):
    account = make_caller("5100000013", call_rates, "0.50")  # below a minute of UK: refused
    refused = api.authorize(call_id="c1", account=account.account_number, destination=MOBILE)
    assert refused.json["cause"] == "NO_SUFFICIENT_FUND"
    unanswered = _end(api, "c1", 0, destination=MOBILE, account=account.account_number)
    assert unanswered.json["status"] == "refused"  # not answered: nothing to bill
    for _ in range(2):
        response = _end(api, "c1", 120, destination=MOBILE, account=account.account_number)
        assert response.json["cost"] == "1.20000" and response.json["unauthorized"] is True
    assert _usage(account.id) == [Decimal("-1.20")]
    call = db.session.scalar(select(Call))
    assert (call.status, call.duration_seconds) == (CallStatus.ENDED, 120)
    assert _counters(account.id) == (0, 0)
