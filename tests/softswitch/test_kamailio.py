"""Real calls through Kamailio (contrib/kamailio/kamailio.cfg) authorized and billed by the
served portal: SIPp calls as a SIP user, another SIPp answers as the gateway."""

import re
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from sqlalchemy import delete, select, update

from portal.extensions import db
from portal.models import Account, Call, CallStatus, Rate, RateGroup, Status
from tests.conftest import free_port, make_caller, make_sip_device

UK = "442079460958"
NOWHERE = "3312345678"  # no rate in the group
PER_SECOND = Decimal("0.6")  # a minute: 0.01 a second, billed by the second
CUT_AFTER_S = 10  # 0.10 of funds buys 10 s


@pytest.fixture
def per_second_rates(app):
    """A rate group "Seconds": UK (44) at 0.60 a minute, billed per second."""
    group = RateGroup(name="Seconds", status=Status.ACTIVE)
    db.session.add(group)
    db.session.commit()
    db.session.add(
        Rate(
            rate_group_id=group.id,
            prefix="44",
            destination="UK",
            connect_cost=Decimal(0),
            cost_per_minute=PER_SECOND,
            initial_increment=1,
            increment=1,
        )
    )
    db.session.commit()
    return group


def _subscriber(number: str, group: RateGroup, funds: str, **fields) -> Account:
    """A customer with `funds` and a SIP device named after its account number."""
    account = make_caller(number, group, funds, **fields)
    make_sip_device(account, f"sip{number}", f"Secret-{number}")
    return account


def _call(call_id_part: str) -> Call:
    """The portal's record of the one call whose Call-ID contains `call_id_part`."""
    db.session.rollback()  # see what gunicorn committed
    calls = db.session.scalars(select(Call).where(Call.call_id.contains(call_id_part))).all()
    assert len(calls) == 1, [c.call_id for c in calls]
    return calls[0]


def _wait_ended(account: Account, seconds: float = 10) -> Call:
    """The account's call once the portal has ended it (Kamailio posts /end after the BYE)."""
    return _wait_for(account, CallStatus.ENDED, seconds)


def _wait_for(account: Account, status: CallStatus, seconds: float) -> Call:
    """The account's call once it has `status`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        db.session.rollback()
        call = db.session.scalar(select(Call).where(Call.account_id == account.id))
        if call is not None and call.status == status:
            return call
        time.sleep(0.1)
    raise AssertionError(f"no {status.value} call of {account.account_number} within {seconds} s")


def _listed(served, identifier: str, path: str) -> str:
    """The text of the page at `path` as `identifier` sees it (logged in anew), without tags."""
    reader = type(served)(served.server)
    reader.login(identifier)
    page = reader.get(path)
    assert page.status == 200
    return " ".join(re.sub(r"<[^>]+>", " ", page.body.decode()).replace("\xa0", " ").split())


def _balance(account: Account) -> Decimal:
    """The account's balance as committed."""
    db.session.rollback()
    return db.session.get(Account, account.id).balance


def test_an_answered_call_is_billed_for_its_duration(
    kamailio, sipp, served, per_second_rates, admin
):
    account = _subscriber("5000000701", per_second_rates, "5")
    callee = sipp.start("callee.xml", kamailio.gateway, "-m", "1")
    caller = sipp.run(
        "caller.xml",
        kamailio.port,
        "-s",
        UK,
        "-key",
        "caller",
        "sip5000000701",
        "-d",
        "3000",
        "-m",
        "1",
    )
    assert caller.returncode == 0, caller.errors + caller.messages
    assert callee.wait(timeout=10) == 0
    assert caller.received_codes()[-2:] == [200, 200]  # the INVITE's, then the BYE's
    call = _wait_ended(account)
    assert call.sip_username == "sip5000000701" and call.destination == UK
    assert call.hangup_cause == "NORMAL_CLEARING"
    assert call.duration_seconds == 3  # from the answer to the BYE, to the nearest second
    assert call.cost == PER_SECOND * call.duration_seconds / 60
    assert _balance(account) == Decimal(5) - call.cost

    seconds = f"{call.duration_seconds} s"
    text = _listed(served, admin.account_number, "/calls/?status=ended")
    assert f"{account.account_number} {UK} (UK) ended {seconds}" in text
    text = _listed(served, account.account_number, "/my/calls")
    assert f"{UK} {seconds} USD 0.03 ended" in text


def test_kamailio_cuts_the_call_when_the_funds_run_out(kamailio, sipp, per_second_rates, admin):
    account = _subscriber("5000000702", per_second_rates, "0.10")
    callee = sipp.start("callee.xml", kamailio.gateway, "-m", "1")
    started = time.monotonic()
    # The caller never hangs up: it waits for the BYE that Kamailio sends at the limit.
    caller = sipp.run(
        "caller_waits.xml",
        kamailio.port,
        "-s",
        UK,
        "-key",
        "caller",
        "sip5000000702",
        "-m",
        "1",
        timeout=CUT_AFTER_S + 30,
    )
    lasted = time.monotonic() - started
    assert caller.returncode == 0, caller.errors + caller.messages
    assert callee.wait(timeout=10) == 0  # the callee got a BYE too
    assert "BYE sip:" in caller.messages
    # The dialog timer ticks by the second: it fires up to 1 s early.
    assert CUT_AFTER_S - 1 <= lasted < CUT_AFTER_S + 5
    call = _wait_ended(account)
    assert call.duration_seconds == CUT_AFTER_S and call.hangup_cause == "ALLOTTED_TIMEOUT"
    assert call.cost == Decimal("0.10")
    assert _balance(account) == 0


@pytest.mark.parametrize(
    ("funds", "status", "number", "code", "cause"),
    [
        ("0", Status.ACTIVE, UK, 402, "NO_SUFFICIENT_FUND"),
        ("5", Status.ACTIVE, NOWHERE, 404, "ORIGINATION_RATE_NOT_FOUND"),
        ("5", Status.INACTIVE, UK, 403, "ACCOUNT_INACTIVE_DELETED"),
    ],
)
def test_a_refused_call_gets_the_sip_code_of_its_cause(
    kamailio, sipp, served, per_second_rates, admin, funds, status, number, code, cause
):
    account = _subscriber("5000000703", per_second_rates, funds, status=status)
    caller = sipp.run(
        "refused.xml", kamailio.port, "-s", number, "-key", "caller", "sip5000000703", "-m", "1"
    )
    assert caller.returncode == 0, caller.errors + caller.messages
    assert caller.received_codes() == [100, code]
    assert f"X-Portal-Cause: {cause}" in caller.messages
    call = db.session.scalar(select(Call).where(Call.account_id == account.id))
    assert call.status == CallStatus.REFUSED and call.cause == cause
    assert _balance(account) == Decimal(funds)
    listed = _listed(served, admin.account_number, "/calls/?status=refused")
    assert f"refused · {cause}" in listed


def test_an_unknown_sip_user_is_forbidden(kamailio, sipp, per_second_rates, admin):
    caller = sipp.run("refused.xml", kamailio.port, "-s", UK, "-key", "caller", "nobody", "-m", "1")
    assert caller.received_codes() == [100, 403]
    assert "X-Portal-Cause: AUTHENTICATION_FAIL" in caller.messages


def test_an_unreachable_portal_is_503_and_a_refused_key_500(
    start_kamailio, sipp, served, per_second_rates, admin
):
    _subscriber("5000000704", per_second_rates, "5")
    nobody_listens = f'"http://127.0.0.1:{free_port()}"'
    cases = [
        ({"PORTAL_URL": nobody_listens}, 503, "PORTAL_UNREACHABLE"),
        (
            {"PORTAL_URL": f'"{served.server.url}"', "PORTAL_API_KEY": '"pk_wrong"'},
            500,
            "PORTAL_ERROR_401",
        ),
    ]
    for defines, code, cause in cases:
        proxy = start_kamailio(**defines)
        caller = sipp.run(
            "refused.xml", proxy.port, "-s", UK, "-key", "caller", "sip5000000704", "-m", "1"
        )
        assert caller.received_codes() == [100, code]
        assert f"X-Portal-Cause: {cause}" in caller.messages


def test_a_call_whose_authorization_was_lost_is_still_billed_once(
    kamailio, sipp, per_second_rates, admin
):
    account = _subscriber("5000000706", per_second_rates, "5")
    callee = sipp.start("callee.xml", kamailio.gateway, "-m", "1")
    args = ("-s", UK, "-key", "caller", "sip5000000706", "-d", "4000", "-m", "1")
    with ThreadPoolExecutor(max_workers=1) as pool:
        caller = pool.submit(sipp.run, "caller.xml", kamailio.port, *args)
        live = _wait_for(account, CallStatus.LIVE, 10)
        # What a database crash can lose with CALLS_ASYNC_COMMIT=1: the call's row and its
        # reservation, while the call goes on.
        db.session.execute(delete(Call).where(Call.id == live.id))
        db.session.execute(
            update(Account).where(Account.id == account.id).values(reserved=0, live_calls=0)
        )
        db.session.commit()
        finished = caller.result(timeout=60)
    assert finished.returncode == 0, finished.errors + finished.messages
    assert callee.wait(timeout=10) == 0
    call = _wait_ended(account)
    assert call.unauthorized and call.call_id == live.call_id
    assert call.duration_seconds == 4 and call.cost == PER_SECOND * 4 / 60
    assert _balance(account) == Decimal(5) - call.cost
    db.session.rollback()
    assert db.session.get(Account, account.id).live_calls == 0
