"""Free-minute bundles: drawn first at authorization and hang-up, per period, never overdrawn."""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from portal.billing.run import run_billing
from portal.billing.usage import group_usage, usage_of
from portal.calls import bundles
from portal.calls.engine import authorize_call
from portal.calls.service import end_call, reap
from portal.extensions import db
from portal.models import (
    Account,
    AccountType,
    BillingSchedule,
    BundleUsage,
    Call,
    CallCharge,
    CallStatus,
    Document,
    DocumentKind,
    EntryKind,
    LedgerEntry,
    Product,
    ProductPeriod,
    ProductPrefix,
    Status,
    Subscription,
    utcnow,
)
from portal.rules.bundles import bundled_duration, split_duration
from tests.conftest import PASSWORD, Browser, make_caller

LONDON = "442079460958"  # 4420: 0.10 connect, 0.60/min, 30 s then 6 s increments
MOBILE = "447911123456"  # 44: 0.60/min in whole minutes


def subscribe(
    account: Account,
    minutes: int = 100,
    prefixes=("44",),
    period=ProductPeriod.MONTHLY,
    start: date = date(2026, 1, 1),
    end: date | None = None,
    status=Status.ACTIVE,
) -> Subscription:
    """Subscribe `account` to a new bundle of `minutes` free minutes to `prefixes`."""
    product = Product(
        name=f"{minutes} min {'/'.join(prefixes) or 'any'}",
        period=period,
        free_minutes=minutes,
        status=status,
        prefixes=[ProductPrefix(prefix=prefix) for prefix in prefixes],
    )
    subscription = Subscription(
        account_id=account.id, product=product, start_date=start, end_date=end
    )
    db.session.add(subscription)
    db.session.commit()
    return subscription


def call_of(call_id: str) -> Call:
    db.session.expire_all()
    return db.session.scalar(select(Call).where(Call.call_id == call_id))


def usage_rows(subscription: Subscription) -> list[BundleUsage]:
    db.session.expire_all()
    return list(
        db.session.scalars(
            select(BundleUsage)
            .where(BundleUsage.subscription_id == subscription.id)
            .order_by(BundleUsage.period_start)
        )
    )


def balance(account: Account) -> Decimal:
    db.session.expire_all()
    return db.session.get(Account, account.id).balance


def at(monkeypatch, moment: datetime) -> None:
    """Bundles see `moment` (naive UTC) as now."""
    monkeypatch.setattr(bundles, "utcnow", lambda: moment)


# --- Pure rules ---------------------------------------------------------------------------


class R:
    connect_cost = Decimal("0.1")
    cost_per_minute = Decimal("0.6")
    initial_increment = 30
    increment = 6


def test_the_bundle_goes_first_then_what_the_funds_buy():
    assert bundled_duration(R(), Decimal(0), 3600, 600) == (600, 0)
    assert bundled_duration(R(), Decimal("1.00"), 3600, 600) == (600, 90)  # 0.10 + 90 s
    assert bundled_duration(R(), Decimal("1.00"), 3600, 5000) == (3600, 0)  # capped
    assert bundled_duration(R(), Decimal("1.00"), 620, 600) == (600, 20)  # the cap's rest
    assert split_duration(100, 60) == (60, 40)
    assert split_duration(45, 60) == (45, 0)
    assert split_duration(0, 60) == (0, 0)


# --- Authorization and hang-up --------------------------------------------------------------


def test_a_covered_call_is_free_and_draws_on_the_bundle(api, call_rates):
    account = make_caller("5100000001", call_rates, "10")
    subscription = subscribe(account, minutes=100)
    answer = api.authorize(call_id="b1", account=account.account_number, destination=MOBILE).json
    # 100 free minutes (capped at the 3600 s reserve) and nothing from the funds.
    assert answer["allowed"] and answer["max_duration_seconds"] == 3600
    live = call_of("b1")
    assert live.bundle_reserved_seconds == 3600 and live.reserved == 0
    [row] = usage_rows(subscription)
    assert (row.period_start, row.used_seconds, row.reserved_seconds) == (
        date.today().replace(day=1),
        0,
        3600,
    )
    assert api.end("b1", 125).status_code == 200
    ended = call_of("b1")
    assert (ended.free_seconds, ended.cost, ended.bundle_reserved_seconds) == (125, 0, 0)
    [row] = usage_rows(subscription)
    assert (row.used_seconds, row.reserved_seconds) == (125, 0)
    assert balance(account) == 10
    assert (
        db.session.scalar(
            select(func.count())
            .select_from(LedgerEntry)
            .where(LedgerEntry.account_id == account.id, LedgerEntry.kind == EntryKind.USAGE)
        )
        == 0
    )


def test_the_part_past_the_bundle_is_rated_with_its_connect_cost(app, api, call_rates):
    account = make_caller("5100000002", call_rates, "1.00")
    subscription = subscribe(account, minutes=1, prefixes=("4420",))
    answer = api.authorize(call_id="b2", account=account.account_number, destination=LONDON).json
    assert answer["max_duration_seconds"] == 60 + 90  # the bundle, then 0.10 + 90 s
    assert call_of("b2").reserved == Decimal("1.00")
    api.end("b2", 100)
    ended = call_of("b2")
    # 60 s free; 40 s paid: connect 0.10 + 30 s + 12 s at 0.01/s = 0.52.
    assert (ended.free_seconds, ended.cost) == (60, Decimal("0.52"))
    assert balance(account) == Decimal("0.48")
    assert (
        usage_rows(subscription)[0].used_seconds,
        usage_rows(subscription)[0].reserved_seconds,
    ) == (60, 0)
    # The bundle is used up: the next call is rated in full (and needs funds to start).
    answer = api.authorize(call_id="b3", account=account.account_number, destination=LONDON).json
    assert answer["max_duration_seconds"] == 36  # 0.10 + 30 s + 6 s of the 0.48 left
    api.end("b3", 31)
    assert (call_of("b3").free_seconds, call_of("b3").cost) == (0, Decimal("0.46"))


def test_a_bundle_needs_no_funds_to_start(api, call_rates):
    account = make_caller("5100000003", call_rates, "0")
    subscribe(account, minutes=5)
    answer = api.authorize(
        call_id="b4", account=account.account_number, destination=MOBILE, explain=True
    ).json
    assert answer["allowed"] and answer["max_duration_seconds"] == 300
    checks = {check["check"]: check for check in answer["checks"]}
    assert checks["funds"]["passed"]
    api.end("b4", 400)  # the softswitch cut it at 300 s: never billed past it
    assert (call_of("b4").duration_seconds, call_of("b4").cost) == (300, 0)
    refused = api.authorize(call_id="b5", account=account.account_number, destination=MOBILE).json
    assert refused["cause"] == "NO_SUFFICIENT_FUND"


def test_three_parallel_calls_never_draw_more_than_the_bundle(app, admin, call_rates):
    app.config["CALL_RESERVE_SECONDS"] = 3000  # 50 minutes each
    account = make_caller("5100000004", call_rates, "100")
    subscription = subscribe(account, minutes=100)
    barrier = threading.Barrier(3)
    owner_id, number = admin.id, account.account_number  # not loaded from the threads

    def one(call_id: str) -> dict:
        barrier.wait()
        with app.app_context():
            owner = db.session.get(Account, owner_id)
            return authorize_call(owner, call_id, MOBILE, account_number=number).answer(
                explain=False
            )

    with ThreadPoolExecutor(max_workers=3) as pool:
        answers = list(pool.map(one, ["p1", "p2", "p3"]))
    assert all(answer["allowed"] for answer in answers)
    [row] = usage_rows(subscription)
    assert row.reserved_seconds == 6000 and row.used_seconds == 0
    assert bundles.live_holds(row.id) == 6000
    held = sorted(call_of(call_id).bundle_reserved_seconds for call_id in ("p1", "p2", "p3"))
    assert held == [0, 3000, 3000]
    for call_id in ("p1", "p2", "p3"):
        end_call(call_of(call_id), 3000, "NORMAL_CLEARING")
    [row] = usage_rows(subscription)
    assert (row.used_seconds, row.reserved_seconds) == (6000, 0)
    costs = sorted(call_of(call_id).cost for call_id in ("p1", "p2", "p3"))
    assert costs == [0, 0, Decimal("30.00")]  # 50 minutes at 0.60
    assert balance(account) == Decimal("70.00")
    account = db.session.get(Account, account.id)
    assert (account.live_calls, account.reserved) == (0, 0)


def test_many_parallel_calls_share_the_bundle_exactly(app, admin, call_rates):
    app.config["CALL_RESERVE_SECONDS"] = 900
    account = make_caller("5100000014", call_rates, "1000")
    subscription = subscribe(account, minutes=100)
    call_ids = [f"q{index}" for index in range(8)]
    barrier = threading.Barrier(len(call_ids))
    owner_id, number = admin.id, account.account_number

    def one(call_id: str) -> dict:
        barrier.wait()
        with app.app_context():
            owner = db.session.get(Account, owner_id)
            return authorize_call(owner, call_id, MOBILE, account_number=number).answer(
                explain=False
            )

    with ThreadPoolExecutor(max_workers=len(call_ids)) as pool:
        answers = list(pool.map(one, call_ids))
    assert all(answer["allowed"] for answer in answers)
    held = sorted(call_of(call_id).bundle_reserved_seconds for call_id in call_ids)
    assert held == [0, 600, 900, 900, 900, 900, 900, 900]  # 6000 s: the whole bundle
    [row] = usage_rows(subscription)
    assert (row.used_seconds, row.reserved_seconds) == (0, 6000)
    # Each call's funds cover the rest of its 900 s: 0.60 a minute.
    reserved = sorted(call_of(call_id).reserved for call_id in call_ids)
    assert reserved == [0] * 6 + [Decimal("3.00"), Decimal("9.00")]


def test_parallel_hangups_and_calls_keep_the_bundle_exact(app, admin, call_rates):
    app.config["CALL_RESERVE_SECONDS"] = 600
    account = make_caller("5100000015", call_rates, "1000", max_channels=20)
    subscription = subscribe(account, minutes=60)
    owner_id, number = admin.id, account.account_number
    for index in range(5):
        authorize_call(
            db.session.get(Account, owner_id), f"a{index}", MOBILE, account_number=number
        )
    # Each live call is ended twice at once (the second changes nothing), next to new calls.
    tasks = [("end", f"a{i}") for i in range(5)] * 2 + [("call", f"b{i}") for i in range(5)]
    barrier = threading.Barrier(len(tasks))

    def hang_up_or_call(task: tuple[str, str]) -> None:
        kind, call_id = task
        barrier.wait()
        with app.app_context():
            if kind == "end":
                end_call(db.session.scalar(select(Call).where(Call.call_id == call_id)), 301, "")
            else:
                owner = db.session.get(Account, owner_id)
                authorize_call(owner, call_id, MOBILE, account_number=number)

    with ThreadPoolExecutor(max_workers=len(tasks)) as pool:
        list(pool.map(hang_up_or_call, tasks))
    [row] = usage_rows(subscription)
    free = db.session.scalar(
        select(func.sum(Call.free_seconds)).where(Call.status == CallStatus.ENDED)
    )
    assert row.used_seconds == free == 5 * 301
    assert row.reserved_seconds == bundles.live_holds(row.id) > 0
    assert row.used_seconds + row.reserved_seconds <= 3600


def test_a_call_takes_what_is_left_and_pays_the_rest(api, call_rates):
    account = make_caller("5100000005", call_rates, "100")
    subscription = subscribe(account, minutes=100)
    api.authorize(call_id="s1", account=account.account_number, destination=MOBILE)
    api.end("s1", 3000)
    answer = api.authorize(call_id="s2", account=account.account_number, destination=MOBILE).json
    assert answer["max_duration_seconds"] == 3600
    assert call_of("s2").bundle_reserved_seconds == 3000
    assert call_of("s2").reserved == Decimal("6.00")  # 600 s at 0.60/min
    api.end("s2", 3600)
    assert (call_of("s2").free_seconds, call_of("s2").cost) == (3000, Decimal("6.00"))
    [row] = usage_rows(subscription)
    assert (row.used_seconds, row.reserved_seconds) == (6000, 0)
    assert balance(account) == Decimal("94.00")


def test_a_monthly_bundle_resets_at_local_midnight(monkeypatch, api, call_rates):
    # Auckland is 13 hours ahead in November: 11:00 UTC on the 30th is 00:00 on 1 December.
    account = make_caller("5100000006", call_rates, "100", timezone="Pacific/Auckland")
    subscription = subscribe(account, minutes=10, start=date(2026, 11, 1))
    at(monkeypatch, datetime(2026, 11, 30, 10, 59))
    api.authorize(call_id="m1", account=account.account_number, destination=MOBILE)
    api.end("m1", 600)
    assert call_of("m1").free_seconds == 600
    api.authorize(call_id="m2", account=account.account_number, destination=MOBILE)
    assert call_of("m2").bundle_usage_id is None  # November's minutes are gone
    api.end("m2", 60)
    assert call_of("m2").cost == Decimal("0.60")
    at(monkeypatch, datetime(2026, 11, 30, 11, 1))  # still November in UTC
    api.authorize(call_id="m3", account=account.account_number, destination=MOBILE)
    api.end("m3", 60)
    assert (call_of("m3").free_seconds, call_of("m3").cost) == (60, 0)
    rows = usage_rows(subscription)
    assert [(row.period_start, row.used_seconds) for row in rows] == [
        (date(2026, 11, 1), 600),
        (date(2026, 12, 1), 60),
    ]


def test_a_daily_bundle_resets_each_local_day(monkeypatch, api, call_rates):
    account = make_caller("5100000007", call_rates, "100", timezone="America/New_York")
    subscription = subscribe(account, minutes=1, period=ProductPeriod.DAILY)
    at(monkeypatch, datetime(2026, 12, 2, 4, 30))  # 23:30 on 1 December in New York
    api.authorize(call_id="d1", account=account.account_number, destination=MOBILE)
    api.end("d1", 90)
    assert (call_of("d1").free_seconds, call_of("d1").cost) == (60, Decimal("0.60"))
    at(monkeypatch, datetime(2026, 12, 2, 5, 30))  # 00:30 on the 2nd
    api.authorize(call_id="d2", account=account.account_number, destination=MOBILE)
    api.end("d2", 90)
    assert (call_of("d2").free_seconds, call_of("d2").cost) == (60, Decimal("0.60"))
    assert [row.period_start for row in usage_rows(subscription)] == [
        date(2026, 12, 1),
        date(2026, 12, 2),
    ]


@pytest.mark.parametrize(
    "fields",
    [
        {"end": date.today() - timedelta(days=2)},  # ended
        {"start": date.today() + timedelta(days=2)},  # not started yet
        {"status": Status.INACTIVE},  # the product was withdrawn
        {"prefixes": ("4420",)},  # another destination
    ],
)
def test_a_call_no_running_bundle_covers_is_billed_normally(api, call_rates, fields):
    account = make_caller("5100000008", call_rates, "10")
    subscribe(account, **fields)
    answer = api.authorize(
        call_id="n1", account=account.account_number, destination=MOBILE, explain=True
    ).json
    assert answer["max_duration_seconds"] == 960  # 10.00 at 0.60/min
    assert "bundle" not in {check["check"] for check in answer["checks"]}
    api.end("n1", 61)
    call = call_of("n1")
    assert (call.bundle_usage_id, call.free_seconds, call.cost) == (None, 0, Decimal("1.20"))


def test_the_longest_prefix_then_the_oldest_bundle_is_drawn_first(api, call_rates):
    account = make_caller("5100000009", call_rates, "10")
    anywhere = subscribe(account, minutes=10, prefixes=("",))
    uk = subscribe(account, minutes=1, prefixes=("44",))
    uk_too = subscribe(account, minutes=1, prefixes=("44",))
    for index in range(4):
        api.authorize(call_id=f"o{index}", account=account.account_number, destination=MOBILE)
        api.end(f"o{index}", 60)
    used = [sum(row.used_seconds for row in usage_rows(s)) for s in (uk, uk_too, anywhere)]
    assert used == [60, 60, 120]  # UK first (the older one first), then the any-number one


def test_explain_shows_the_bundle_and_what_the_call_reserves(app, api, call_rates):
    app.config["CALL_RESERVE_SECONDS"] = 120
    account = make_caller("5100000010", call_rates, "1.20")
    subscription = subscribe(account, minutes=3)
    api.authorize(call_id="e0", account=account.account_number, destination=MOBILE)
    api.end("e0", 60)
    api.authorize(call_id="e1", account=account.account_number, destination=MOBILE)  # holds 120
    answer = api.authorize(
        call_id="e2", account=account.account_number, destination=MOBILE, explain=True
    ).json
    checks = {check["check"]: check for check in answer["checks"]}
    assert list(checks)[4:8] == ["rate", "destination_allowed", "bundle", "funds"]
    assert checks["bundle"] == {
        "check": "bundle",
        "passed": True,
        "subscription_id": subscription.id,
        "product": "3 min 44",
        "prefix": "44",
        "period_start": date.today().replace(day=1).isoformat(),
        "free_seconds_per_period": 180,
        "used_seconds": 60,
        "reserved_by_live_calls": 120,
        "remaining_seconds": 0,
        "reserved_for_call": 0,
    }
    assert answer["max_duration_seconds"] == 120  # all from the funds: it holds 1.20
    assert call_of("e2").reserved == Decimal("1.20")
    api.end("e1", 30)  # gives 90 s back
    answer = api.authorize(
        call_id="e3", account=account.account_number, destination=MOBILE, explain=True
    ).json
    checks = {check["check"]: check for check in answer["checks"]}
    assert checks["bundle"]["remaining_seconds"] == 90
    assert checks["bundle"]["reserved_for_call"] == 90
    assert answer["max_duration_seconds"] == 90  # e2 holds the funds


def test_the_reaper_draws_the_held_seconds_and_bills_the_rest(app, api, call_rates):
    app.config["CALL_RESERVE_SECONDS"] = 600
    account = make_caller("5100000011", call_rates, "20")
    subscription = subscribe(account, minutes=4)
    api.authorize(call_id="r1", account=account.account_number, destination=MOBILE)
    call = call_of("r1")
    assert (call.bundle_reserved_seconds, call.reserved) == (240, Decimal("3.60"))
    call.started_at = utcnow() - timedelta(seconds=600 + 301)
    db.session.commit()
    assert reap() == 1
    call = call_of("r1")
    assert call.status == CallStatus.REAPED
    assert (call.duration_seconds, call.free_seconds, call.cost) == (600, 240, Decimal("3.60"))
    [row] = usage_rows(subscription)
    assert (row.used_seconds, row.reserved_seconds) == (240, 0)
    assert balance(account) == Decimal("16.40")
    assert api.end("r1", 30).json["status"] == "reaped"  # changes nothing
    assert usage_rows(subscription)[0].used_seconds == 240


def test_a_retried_authorization_holds_the_bundle_once(api, call_rates):
    account = make_caller("5100000012", call_rates, "10")
    subscription = subscribe(account, minutes=10)
    first = api.authorize(call_id="t1", account=account.account_number, destination=MOBILE).json
    again = api.authorize(call_id="t1", account=account.account_number, destination=MOBILE).json
    assert first == again
    assert usage_rows(subscription)[0].reserved_seconds == 600


def test_only_the_callers_own_bundle_counts_up_a_reseller_chain(api, tenants_calling):
    customer = tenants_calling["a1_customer"]
    subscription = subscribe(customer, minutes=2)
    answer = api.authorize(call_id="c1", account=customer.account_number, destination=MOBILE).json
    assert answer["allowed"]
    call = call_of("c1")
    assert call.bundle_reserved_seconds == 120
    charges = db.session.scalars(select(CallCharge).where(CallCharge.call_id == call.id)).all()
    assert [charge.level for charge in charges] == [1, 2]  # every reseller still reserves
    api.end("c1", 150)
    assert call_of("c1").free_seconds == 120
    assert usage_rows(subscription)[0].used_seconds == 120


def test_a_call_test_on_the_account_page_writes_no_bundle_row(as_admin, call_rates):
    account = make_caller("5100000013", call_rates, "10")
    subscription = subscribe(account, minutes=10)
    page = as_admin.get(f"/accounts/{account.id}/test-call?destination={MOBILE}")
    assert page.status_code == 200
    assert "bundle" in page.get_data(as_text=True).lower()
    assert usage_rows(subscription) == []


# --- What people see: invoices, the account page, the calls lists ----------------------------


def test_free_usage_lines_are_at_zero_and_not_counted_in_the_calls_line():
    rows = [("UK", "44", 1, 31, Decimal("0.60"))]
    usage = group_usage(rows, Decimal("0.60"), 1, "USD", [("UK", "44", 2, 120)])
    assert [
        (line.description, line.calls, line.seconds, line.amount, line.free) for line in usage.lines
    ] == [
        ("UK", 1, 31, Decimal("0.60"), False),
        ("UK (free minutes)", 2, 120, Decimal(0), True),
    ]
    assert usage.calls == 1 and usage.total == Decimal("0.60")


def test_the_invoice_shows_the_bundles_minutes_at_zero(as_admin, api, call_rates):
    account = make_caller(
        "5100000020",
        call_rates,
        account_type=AccountType.POSTPAID,
        credit_limit=Decimal(100),
        billing_schedule=BillingSchedule.DAILY,
    )
    subscribe(account, minutes=2)
    for call_id, seconds in (("i1", 90), ("i2", 61)):  # 90 s free; 30 s free + 31 s paid
        assert api.authorize(
            call_id=call_id, account=account.account_number, destination=MOBILE
        ).json["allowed"]
        api.end(call_id, seconds)
    assert run_billing(day=date.today() + timedelta(days=1)).invoiced == 1
    invoice = db.session.scalar(
        select(Document).where(
            Document.account_id == account.id, Document.kind == DocumentKind.INVOICE
        )
    )
    usage = usage_of(invoice)
    assert [(line.description, line.calls, line.seconds, line.amount) for line in usage.lines] == [
        ("UK", 1, 31, Decimal("0.60")),
        ("UK (free minutes)", 2, 120, Decimal(0)),
    ]
    html = as_admin.get(f"/documents/{invoice.id}").get_data(as_text=True)
    free_line = '<td>UK (free minutes)</td><td>44</td><td class="num">2</td><td class="num">2</td>'
    assert free_line + '<td class="num">USD\xa00.00</td>' in html


def test_the_account_page_and_the_customers_own_page_show_the_bundle(
    client, as_admin, api, call_rates
):
    account = make_caller("5100000021", call_rates, "10", email="bundled@example.com")
    subscribe(account, minutes=10)
    api.authorize(call_id="v1", account=account.account_number, destination=MOBILE)
    api.end("v1", 150)
    api.authorize(call_id="v2", account=account.account_number, destination=MOBILE)  # holds 450
    html = as_admin.get(f"/accounts/{account.id}").get_data(as_text=True)
    assert "Free minutes" in html and "10 min 44" in html
    # Used 2.5 minutes, 7.5 held by the live call, nothing left.
    assert '<td class="num">2.5 min</td>\n        <td class="num">7.5 min</td>' in html
    assert '<td class="num" data-figure="bundle-remaining"><strong>0 min</strong></td>' in html
    assert "150 s free" in as_admin.get(f"/accounts/{account.id}/calls").get_data(as_text=True)
    assert "150 s free" in as_admin.get("/calls/").get_data(as_text=True)
    own = Browser(client.application.test_client())
    own.login(account.account_number, PASSWORD)
    html = own.get("/my/").get_data(as_text=True)
    assert "Free minutes" in html and "150 s free" in html


def test_an_account_without_a_running_bundle_shows_no_panel(as_admin, call_rates):
    account = make_caller("5100000022", call_rates, "10")
    subscribe(account, end=date.today() - timedelta(days=1))
    html = as_admin.get(f"/accounts/{account.id}").get_data(as_text=True)
    assert 'id="bundles"' not in html


def test_another_resellers_account_and_its_bundle_are_not_found(user, tenants):
    subscribe(tenants["b_customer"], minutes=10)
    user.login(tenants["a"].account_number)
    assert user.get(f"/accounts/{tenants['b_customer'].id}").status_code == 404
    html = user.get(f"/accounts/{tenants['a_customer'].id}").get_data(as_text=True)
    assert 'id="bundles"' not in html
