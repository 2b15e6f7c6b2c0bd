"""The cost chain: a reseller's customer's call is checked, reserved and debited at every level."""

import re
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from portal.billing.service import add_payment
from portal.calls import service
from portal.calls.engine import authorize_call
from portal.calls.service import end_call
from portal.extensions import db
from portal.models import (
    Account,
    AccountType,
    Call,
    CallCharge,
    CallStatus,
    EntryKind,
    LedgerEntry,
    Rate,
    RateGroup,
    Role,
    Status,
    utcnow,
)
from tests.conftest import Browser, make_account

MOBILE = "447911123456"
LEVELS = ("reseller", "sub", "customer")  # top-down: admin -> reseller -> sub -> customer
NUMBERS = {"reseller": "2100000001", "sub": "2100000002", "customer": "2100000003"}
# What each level pays per minute of UK mobile (its own rate group, assigned by its parent).
PER_MINUTE = {"reseller": "0.30", "sub": "0.40", "customer": "0.60"}


def _group(name: str, per_minute: str, owner: Account | None) -> RateGroup:
    """An active rate group of `owner` (None: the admins') with a UK rate per whole minute."""
    group = RateGroup(name=name, status=Status.ACTIVE, reseller_id=owner.id if owner else None)
    db.session.add(group)
    db.session.commit()
    db.session.add(
        Rate(
            rate_group_id=group.id,
            prefix="44",
            destination="UK",
            cost_per_minute=Decimal(per_minute),
            initial_increment=60,
            increment=60,
        )
    )
    db.session.commit()
    return group


def _chain(funds: dict | None = None, **changes) -> dict[str, Account]:
    """admin -> reseller -> sub-reseller -> customer, each prepaid with funds (ledger entries)."""
    funds = {"reseller": "100", "sub": "100", "customer": "10", **(funds or {})}
    group = _group("Wholesale", PER_MINUTE["reseller"], None)
    world: dict[str, Account] = {}
    parent = None
    for level in LEVELS:
        account = make_account(
            Role.CUSTOMER if level == "customer" else Role.RESELLER,
            NUMBERS[level],
            reseller=parent,
            tenant_path=parent.subtree_path if parent else "",
            **{"rate_group_id": group.id, **changes.get(level, {})},
        )
        if Decimal(funds[level]) > 0:
            add_payment(None, account, funds[level])
        world[level] = account
        if level != "customer":  # the plan this level assigns to the level below it
            below = LEVELS[LEVELS.index(level) + 1]
            group = _group(f"Plan of {level}", PER_MINUTE[below], account)
        parent = account
    return world


def _state(world: dict) -> dict:
    """(live calls, reserved, balance) of each level, fresh from the database."""
    db.session.expire_all()
    return {
        level: (account.live_calls, account.reserved, account.balance)
        for level, account in ((lv, db.session.get(Account, a.id)) for lv, a in world.items())
    }


def _usage(account: Account) -> list[Decimal]:
    return list(
        db.session.scalars(
            select(LedgerEntry.amount).where(
                LedgerEntry.account_id == account.id, LedgerEntry.kind == EntryKind.USAGE
            )
        )
    )


def test_each_level_reserves_and_pays_its_own_rate(api):
    world = _chain()
    answer = api.authorize(call_id="c1", account=NUMBERS["customer"], destination=MOBILE).json
    assert answer["allowed"] is True and answer["cause"] == "OK"
    # The customer's own rate is the one the softswitch hears; 10.00 at 0.60 buys 16 minutes,
    # fewer than either reseller's funds: the shortest level sets the call's length.
    assert answer["rate"]["cost_per_minute"] == "0.60000"
    assert answer["max_duration_seconds"] == 960
    state = _state(world)
    assert state["customer"][:2] == (1, Decimal("9.6"))
    assert state["sub"][:2] == (1, Decimal("6.4"))  # 16 minutes at 0.40
    assert state["reseller"][:2] == (1, Decimal("4.8"))  # 16 minutes at 0.30
    call = db.session.scalar(select(Call).where(Call.call_id == "c1"))
    charges = db.session.scalars(select(CallCharge).order_by(CallCharge.level)).all()
    assert [(c.level, c.account_id, c.cost_per_minute) for c in charges] == [
        (1, world["sub"].id, Decimal("0.4")),
        (2, world["reseller"].id, Decimal("0.3")),
    ]

    ended = api.end("c1", 110)  # two whole minutes at every level
    assert ended.status_code == 200 and ended.json["cost"] == "1.20000"
    state = _state(world)
    assert state == {
        "reseller": (0, Decimal(0), Decimal("99.4")),
        "sub": (0, Decimal(0), Decimal("99.2")),
        "customer": (0, Decimal(0), Decimal("8.8")),
    }
    # One usage entry per level, each at its own rate.
    assert _usage(world["customer"]) == [Decimal("-1.2")]
    assert _usage(world["sub"]) == [Decimal("-0.8")]
    assert _usage(world["reseller"]) == [Decimal("-0.6")]
    db.session.refresh(call)
    costs = {
        charge.level: charge.cost
        for charge in db.session.scalars(select(CallCharge).where(CallCharge.call_id == call.id))
    }
    costs[0] = call.cost
    assert costs == {0: Decimal("1.2"), 1: Decimal("0.8"), 2: Decimal("0.6")}
    # Margins: the sub-reseller keeps 0.40, the reseller 0.20; with what the reseller pays
    # the operator they add up to what the customer paid.
    margins = [costs[0] - costs[1], costs[1] - costs[2]]
    assert margins == [Decimal("0.4"), Decimal("0.2")]
    assert sum(margins) + costs[2] == costs[0]
    # A repeated end changes nothing anywhere.
    assert api.end("c1", 110).json["cost"] == "1.20000"
    assert _state(world) == state
    assert (
        db.session.scalar(
            select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == EntryKind.USAGE)
        )
        == 3
    )


def _logged_in(app, number: str) -> Browser:
    """A fresh browser logged in as the account `number`."""
    user = Browser(app.test_client())
    assert user.login(number).status_code in (302, 303)
    return user


def _resold_rows(app, number: str) -> list[list[str]]:
    """The cells of the Resold calls table, as the reseller logged in as `number` sees them."""
    user = _logged_in(app, number)
    page = user.get("/my/account/calls")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    body = html.split('id="resold-calls"', 1)[1].split("</tbody>", 1)[0]
    return [
        [
            " ".join(re.sub(r"<[^>]+>", "", cell).split())
            for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        ]
        for row in re.findall(r"<tr>(.*?)</tr>", body.split("<tbody>", 1)[1], re.S)
    ]


def test_each_reseller_sees_its_resold_calls_with_its_margin(app, api, tenants):
    _chain()
    assert api.authorize(call_id="c1", account=NUMBERS["customer"], destination=MOBILE).json[
        "allowed"
    ]
    assert api.end("c1", 110).status_code == 200
    # The sub-reseller was paid the customer's 1.20 and paid 0.80; the reseller 0.80 and 0.60.
    sub = _resold_rows(app, NUMBERS["sub"])
    assert len(sub) == 1 and sub[0][1] == NUMBERS["customer"]
    assert sub[0][3:] == ["110 s", "USD 1.20", "USD 0.80", "USD 0.40"]
    top = _resold_rows(app, NUMBERS["reseller"])
    assert len(top) == 1 and top[0][3:] == ["110 s", "USD 0.80", "USD 0.60", "USD 0.20"]
    # Another reseller sees none of it; a customer has no such page.
    assert _resold_rows(app, tenants["b"].account_number) == [["No rated calls yet."]]
    assert _logged_in(app, NUMBERS["customer"]).get("/my/account/calls").status_code == 403


def test_a_short_level_sets_the_length_of_the_call(api):
    # The reseller's 0.90 buys 3 minutes at 0.30: the call is cut there for everyone.
    world = _chain({"reseller": "0.90"})
    answer = api.authorize(call_id="c1", account=NUMBERS["customer"], destination=MOBILE).json
    assert answer["allowed"] and answer["max_duration_seconds"] == 180
    state = _state(world)
    assert [state[level][1] for level in LEVELS] == [
        Decimal("0.9"),
        Decimal("1.2"),
        Decimal("1.8"),
    ]


def _refusal_changes(kind: str) -> tuple[dict, dict]:
    """(funds, account fields) that make one level fail the `kind` check."""
    if kind == "funds":
        return {"level": "0"}, {}
    if kind == "expired":
        return {}, {"expiry_date": utcnow() - timedelta(days=1)}
    if kind == "inactive":
        return {}, {"status": Status.INACTIVE}
    if kind == "rate":
        return {}, {"rate_group_id": None}
    return {"customer": "100"}, {"max_channels": 1}  # funds for two calls at every level


CAUSES = {
    "funds": "NO_SUFFICIENT_FUND",
    "expired": "ACCOUNT_EXPIRE",
    "inactive": "ACCOUNT_INACTIVE_DELETED",
    "rate": "ORIGINATION_RATE_NOT_FOUND",
    "channels": "CHANNEL_LIMIT",
}


@pytest.mark.parametrize("kind", list(CAUSES))
@pytest.mark.parametrize("level", LEVELS)
def test_a_refusal_names_the_level_and_reserves_nothing(api, level, kind):
    funds, fields = _refusal_changes(kind)
    funds = {level if name == "level" else name: amount for name, amount in funds.items()}
    world = _chain(
        funds,
        **({level: fields} if fields else {}),
    )
    if kind == "channels":  # the level's one channel is taken by a first call
        first = api.authorize(call_id="first", account=NUMBERS["customer"], destination=MOBILE)
        assert first.json["allowed"] is True
    before = _state(world)
    charges_before = db.session.scalar(select(func.count()).select_from(CallCharge))
    response = api.authorize(
        call_id="c1", account=NUMBERS["customer"], destination=MOBILE, explain=True
    )
    body = response.json
    assert body["allowed"] is False and body["cause"] == CAUSES[kind]
    assert body["max_duration_seconds"] == 0
    assert body["refused_by"] == {
        "level": {"customer": 0, "sub": 1, "reseller": 2}[level],
        "account": NUMBERS[level],
        "account_id": world[level].id,
    }
    failed = [check for check in body["checks"] if not check["passed"]]
    assert failed and failed[0].get("account", NUMBERS["customer"]) == NUMBERS[level]
    # Nothing reserved anywhere, no charge rows; the refusal itself is recorded.
    assert _state(world) == before
    assert db.session.scalar(select(func.count()).select_from(CallCharge)) == charges_before
    call = db.session.scalar(select(Call).where(Call.call_id == "c1"))
    assert call.status == CallStatus.REFUSED and call.cause == CAUSES[kind]
    # The plain answer (what the softswitch hears) is the same, without the explanation.
    plain = api.authorize(call_id="c2", account=NUMBERS["customer"], destination=MOBILE).json
    assert plain["cause"] == CAUSES[kind] and "refused_by" not in plain
    assert _state(world) == before


def test_the_reseller_checks_are_explained_level_by_level(api):
    _chain()
    body = api.authorize(
        call_id="c1", account=NUMBERS["customer"], destination=MOBILE, explain=True
    ).json
    assert body["allowed"] is True and "refused_by" not in body
    levels = [(check.get("level", 0), check["check"]) for check in body["checks"]]
    assert [name for level, name in levels if level == 0][0] == "authentication"
    assert {level for level, _ in levels} == {0, 1, 2}
    funds = [c for c in body["checks"] if c["check"] == "funds" and c.get("level") == 2][0]
    assert funds["account"] == NUMBERS["reseller"] and Decimal(funds["needed_to_start"]) == (
        Decimal("0.3")
    )


def test_a_postpaid_reseller_is_limited_by_its_credit(api):
    world = _chain(
        {"sub": "0"},
        sub={"account_type": AccountType.POSTPAID, "credit_limit": Decimal("2")},
    )
    answer = api.authorize(call_id="c1", account=NUMBERS["customer"], destination=MOBILE).json
    assert answer["allowed"] and answer["max_duration_seconds"] == 300  # 2.00 at 0.40
    api.end("c1", 300)
    db.session.expire_all()
    assert db.session.get(Account, world["sub"].id).balance == Decimal("2")  # owed


def test_the_hang_up_is_all_or_nothing(api, monkeypatch):
    world = _chain()
    api.authorize(call_id="c1", account=NUMBERS["customer"], destination=MOBILE)
    before = _state(world)
    real = service.post

    def failing(account, *args, **kwargs):
        if account.id == world["customer"].id:
            raise RuntimeError("the disk is full")
        return real(account, *args, **kwargs)

    monkeypatch.setattr(service, "post", failing)
    call = db.session.scalar(select(Call).where(Call.call_id == "c1"))
    with pytest.raises(RuntimeError):
        end_call(call, 60, "NORMAL_CLEARING")
    db.session.rollback()
    assert _state(world) == before
    assert (
        db.session.scalar(
            select(func.count()).select_from(LedgerEntry).where(LedgerEntry.kind == EntryKind.USAGE)
        )
        == 0
    )
    monkeypatch.setattr(service, "post", real)
    assert api.end("c1", 60).status_code == 200
    assert [len(_usage(world[level])) for level in LEVELS] == [1, 1, 1]


def test_parallel_calls_never_overdraw_the_reseller(app, admin):
    # The customer and the sub-reseller are rich; the top reseller's 3.00 at 0.30/min is the
    # limit: 2-minute reservations, so 5 of 20 parallel calls get through.
    app.config["CALL_RESERVE_SECONDS"] = 120
    world = _chain({"reseller": "3", "sub": "1000", "customer": "1000"})
    barrier = threading.Barrier(20)
    admin_id = admin.id  # read here: the test's session is not the threads'

    def one(call_id: str) -> dict:
        barrier.wait()
        with app.app_context():
            owner = db.session.get(Account, admin_id)
            decision = authorize_call(owner, call_id, MOBILE, account_number=NUMBERS["customer"])
            return decision.answer(explain=False)

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(one, [f"p{i}" for i in range(20)]))
    granted = [a for a in answers if a["allowed"]]
    assert len(granted) == 5
    assert {a["cause"] for a in answers if not a["allowed"]} == {"NO_SUFFICIENT_FUND"}
    state = _state(world)
    assert state["reseller"][:2] == (5, Decimal(3))
    assert state["sub"][:2] == (5, Decimal(4))
    assert state["customer"][:2] == (5, Decimal(6))
    live = db.session.scalars(select(Call).where(Call.status == CallStatus.LIVE)).all()
    assert len(live) == 5
    assert db.session.scalar(select(func.count()).select_from(CallCharge)) == 10

    def hang_up(call_id: int) -> None:
        with app.app_context():
            end_call(db.session.get(Call, call_id), 120, "NORMAL_CLEARING")

    with ThreadPoolExecutor(max_workers=5) as pool:
        list(pool.map(hang_up, [call.id for call in live]))
    state = _state(world)
    assert state["reseller"] == (0, Decimal(0), Decimal(0))  # spent to the cent, never below
    assert state["sub"] == (0, Decimal(0), Decimal(996))
    assert state["customer"] == (0, Decimal(0), Decimal(994))


def test_test_a_call_names_the_reseller_that_refuses(as_admin):
    world = _chain({"sub": "0"})
    url = f"/accounts/{world['customer'].id}/test-call?destination={MOBILE}"
    text = as_admin.get(url).text
    assert f"Refused: NO_SUFFICIENT_FUND, by reseller {NUMBERS['sub']} (1 level up)." in text
    assert f"account: {NUMBERS['sub']}" in text
    assert db.session.scalar(select(func.count()).select_from(Call)) == 0
