"""Dashboards: figures from the call rollups, scoped to each viewer, equal to a recount."""

import random
import re
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select, update

from portal.billing.service import add_payment
from portal.calls.engine import authorize_call
from portal.calls.service import end_call, reap
from portal.dashboard.figures import month_usage
from portal.extensions import db
from portal.models import (
    Account,
    Call,
    CallRollup,
    CallStatus,
    Document,
    DocumentKind,
    Rate,
    RateGroup,
    Role,
    Status,
    utcnow,
)
from tests.conftest import Browser, make_account

TODAY = datetime.now(UTC).date()


def _group(name: str, owner: Account | None, currency: str, rates: dict) -> RateGroup:
    """A rate group with whole-minute rates {prefix: (destination, per minute)}."""
    group = RateGroup(
        name=name, status=Status.ACTIVE, currency=currency, reseller_id=owner.id if owner else None
    )
    db.session.add(group)
    db.session.commit()
    for prefix, (destination, per_minute) in rates.items():
        db.session.add(
            Rate(
                rate_group_id=group.id,
                prefix=prefix,
                destination=destination,
                cost_per_minute=Decimal(per_minute),
                initial_increment=60,
                increment=60,
            )
        )
    db.session.commit()
    return group


def _account(role, number, parent=None, funds="1000", **fields) -> Account:
    """An account under `parent` (None: the admins) with `funds` paid in (a ledger entry)."""
    account = make_account(
        role,
        number,
        reseller=parent,
        tenant_path=parent.subtree_path if parent else "",
        **fields,
    )
    if Decimal(funds) > 0:
        add_payment(None, account, funds)
    return account


@pytest.fixture
def world(admin):
    """The admins' customer (USD, Auckland), reseller A (USD) with sub-reseller A1, B (EUR)."""
    uk, fr = "UK", "France"
    wholesale = _group("Wholesale", None, "USD", {"44": (uk, "0.30"), "33": (fr, "0.30")})
    wholesale_eur = _group("Wholesale EUR", None, "EUR", {"44": (uk, "0.25")})
    retail = _group("Retail", None, "USD", {"44": (uk, "1.00"), "33": (fr, "1.00")})
    w = {"admin": admin}
    w["direct"] = _account(
        Role.CUSTOMER, "4000000001", rate_group_id=retail.id, timezone="Pacific/Auckland"
    )
    w["a"] = _account(Role.RESELLER, "4000000002", rate_group_id=wholesale.id)
    plan_a = _group("Plan A", w["a"], "USD", {"44": (uk, "0.60")})
    w["a1"] = _account(Role.RESELLER, "4000000003", w["a"], rate_group_id=plan_a.id)
    plan_a1 = _group("Plan A1", w["a1"], "USD", {"44": (uk, "0.90")})
    w["b"] = _account(Role.RESELLER, "4000000004", rate_group_id=wholesale_eur.id, currency="EUR")
    plan_b = _group("Plan B", w["b"], "EUR", {"44": (uk, "0.40")})
    w["a_customer"] = _account(
        Role.CUSTOMER, "4000000005", w["a"], rate_group_id=plan_a.id, timezone="America/New_York"
    )
    w["a1_customer"] = _account(Role.CUSTOMER, "4000000006", w["a1"], rate_group_id=plan_a1.id)
    w["b_customer"] = _account(
        Role.CUSTOMER,
        "4000000007",
        w["b"],
        rate_group_id=plan_b.id,
        currency="EUR",
        timezone="Europe/Berlin",
    )
    w["subadmin"] = make_account(Role.SUBADMIN, "4000000008")
    return w


def _call(world, caller: str, number: str, started: datetime, seconds: int | None) -> Call:
    """A call authorized through the service, started at `started`; ended unless seconds=None."""
    call_id = f"c{random.getrandbits(64):x}"
    decision = authorize_call(
        world["admin"], call_id, number, account_number=world[caller].account_number
    )
    assert decision.allowed, decision.cause
    db.session.execute(update(Call).where(Call.call_id == call_id).values(started_at=started))
    db.session.commit()
    call = db.session.scalar(select(Call).where(Call.call_id == call_id))
    if seconds is not None:
        end_call(call, seconds, "NORMAL_CLEARING")
    return call


def _at(days_ago: int, hour: int, minute: int) -> datetime:
    """A naive UTC time `days_ago` days before today."""
    return datetime.combine(TODAY - timedelta(days=days_ago), time(hour, minute))


@pytest.fixture
def traffic(world):
    """250 ended calls in the window, 3 outside it and one live call (figures worked by hand)."""
    for _ in range(100):  # 90 s = 2 whole minutes of France at 1.00: 2.00 USD each
        _call(world, "direct", "33123456789", _at(1, 23, 30), 90)
    for _ in range(10):  # not answered: counted as calls, 0 s, 0.00
        _call(world, "direct", "33123456789", _at(1, 23, 59), 0)
    for _ in range(60):  # A's customer: 0.60 to A, A pays 0.30 to the operator
        _call(world, "a_customer", "447911123456", _at(0, 0, 30), 60)
    for _ in range(30):  # A1's customer: 0.90 to A1, A1 pays 0.60 to A, A pays 0.30
        _call(world, "a1_customer", "447911123456", _at(2, 12, 0), 60)
    for _ in range(50):  # B's customer: 2 min at 0.40 EUR to B, B pays 2 x 0.25 EUR
        _call(world, "b_customer", "447911123456", _at(1, 8, 0), 120)
    for caller in ("direct", "a1_customer", "b_customer"):  # older than the 30 days shown
        _call(world, caller, "447911123456", _at(31, 12, 0), 600)
    _call(world, "b_customer", "447911123456", utcnow(), None)  # live
    return world


def _logged_in(app, account: Account) -> Browser:
    """A client logged in as `account`."""
    browser = Browser(app.test_client())
    response = browser.login(account.account_number)
    assert response.status_code in (302, 303)
    return browser


def _figure(html: str, name: str) -> str:
    """The text of the data-figure `name` on a page."""
    match = re.search(rf'data-figure="{name}">([^<]*)<', html)
    assert match, name
    return match.group(1).replace("\xa0", " ")


def _table(html: str, table_id: str) -> list[list[str]]:
    """The body rows of a table as lists of cell texts (tags stripped)."""
    body = re.search(rf'id="{table_id}">.*?<tbody>(.*?)</tbody>', html, re.S).group(1)
    rows = re.findall(r"<tr>(.*?)</tr>", body, re.S)
    return [
        [
            re.sub(r"<[^>]+>", "", cell).replace("\xa0", " ").strip()
            for cell in re.findall(r"<td[^>]*>(.*?)</td>", row, re.S)
        ]
        for row in rows
    ]


def _day_row(html: str, table_id: str, days_ago: int) -> list[str]:
    """The row of a per-day table for the day `days_ago` days before today."""
    label = (TODAY - timedelta(days=days_ago)).strftime("%-d %b %Y")
    rows = [row for row in _table(html, table_id) if row[0] == label]
    assert len(rows) == 1, label
    return rows[0]


def test_the_admins_figures_count_every_tenant_at_what_the_operator_was_paid(app, traffic):
    html = _logged_in(app, traffic["admin"]).get("/dashboard/").get_data(as_text=True)
    assert _figure(html, "calls") == "250"
    assert _figure(html, "minutes") == "340"  # 9,000 + 3,600 + 1,800 + 6,000 s
    assert _figure(html, "asr") == "96 %"  # 240 of 250 answered
    assert _figure(html, "acd") == "85 s"  # 20,400 s / 240
    assert _figure(html, "live") == "1"
    # UTC days: the Auckland customer's 23:30 UTC calls are yesterday's, as the page says.
    assert _day_row(html, "calls-per-day", 1)[1:4] == ["160", "150", "250"]
    assert _day_row(html, "calls-per-day", 0)[1:4] == ["60", "60", "60"]
    assert _day_row(html, "calls-per-day", 2)[1:4] == ["30", "30", "30"]
    assert _day_row(html, "calls-per-day", 3)[1:4] == ["0", "0", "0"]
    # Revenue in each payer's currency: the direct customer's, and what A and B paid.
    assert _day_row(html, "revenue-per-day", 1)[1:] == ["EUR 25.00", "USD 200.00"]
    assert _day_row(html, "revenue-per-day", 0)[1:] == ["EUR 0.00", "USD 18.00"]
    assert _day_row(html, "revenue-per-day", 2)[1:] == ["EUR 0.00", "USD 9.00"]
    assert _table(html, "top-minutes") == [
        ["UK", "44", "140", "190"],
        ["France", "33", "110", "150"],
    ]
    assert _table(html, "top-revenue") == [
        ["UK", "44", "50", "EUR 25.00"],
        ["France", "33", "110", "USD 200.00"],
        ["UK", "44", "90", "USD 27.00"],
    ]
    # Every canvas has its library and a figures table for screen readers beside it.
    assert html.count("<canvas") == 3  # calls and minutes; revenue in EUR and in USD
    assert html.count('data-chart-library="/static/vendor/chart-4.6.1.umd.min.js') == 3


def test_a_sub_admin_sees_the_operators_figures(app, traffic):
    html = _logged_in(app, traffic["subadmin"]).get("/dashboard/").get_data(as_text=True)
    assert _figure(html, "calls") == "250"
    assert _day_row(html, "revenue-per-day", 1)[1:] == ["EUR 25.00", "USD 200.00"]


def test_a_reseller_sees_its_subtree_at_what_it_was_paid_and_nothing_else(app, traffic):
    html = _logged_in(app, traffic["a"]).get("/dashboard/").get_data(as_text=True)
    assert _figure(html, "calls") == "90"  # its customer's 60 and its sub-reseller's 30
    assert _figure(html, "minutes") == "90"
    assert _figure(html, "asr") == "100 %"
    assert _figure(html, "acd") == "60 s"
    assert _figure(html, "live") == "0"  # B's live call is not A's
    assert _day_row(html, "revenue-per-day", 0)[1:] == ["USD 36.00"]  # 60 x 0.60
    assert _day_row(html, "revenue-per-day", 2)[1:] == ["USD 18.00"]  # A1 paid 30 x 0.60
    assert _day_row(html, "calls-per-day", 1)[1:4] == ["0", "0", "0"]
    assert _table(html, "top-minutes") == [["UK", "44", "90", "90"]]
    assert "France" not in html and "EUR" not in html

    html = _logged_in(app, traffic["a1"]).get("/dashboard/").get_data(as_text=True)
    assert _figure(html, "calls") == "30"
    assert _table(html, "top-revenue") == [["UK", "44", "30", "USD 27.00"]]  # 30 x 0.90
    assert _day_row(html, "calls-per-day", 0)[1:4] == ["0", "0", "0"]

    html = _logged_in(app, traffic["b"]).get("/dashboard/").get_data(as_text=True)
    assert _figure(html, "calls") == "50"
    assert _figure(html, "live") == "1"
    assert _table(html, "top-revenue") == [["UK", "44", "50", "EUR 40.00"]]
    assert "USD" not in html.split('id="calls-heading"')[1].split('id="money-heading"')[0]


def test_the_figures_endpoint_is_scoped_like_the_page(app, traffic):
    def days(account):
        answer = _logged_in(app, traffic[account]).get("/dashboard/figures.json")
        assert answer.status_code == 200
        document = answer.get_json()
        return {day["day"]: day for day in document["days"]}, document

    admin_days, admin = days("admin")
    yesterday = (TODAY - timedelta(days=1)).isoformat()
    assert admin_days[yesterday]["calls"] == 160
    assert admin_days[yesterday]["revenue"] == {"EUR": "25.00", "USD": "200.00"}
    assert admin["currencies"] == ["EUR", "USD"] and admin["live_calls"] == 1
    assert len(admin["days"]) == 30
    b_days, b = days("b")
    assert b_days[yesterday] == {
        "day": yesterday,
        "calls": 50,
        "answered": 50,
        "seconds": 6000,
        "revenue": {"EUR": "40.00"},
    }
    assert b["currencies"] == ["EUR"]
    a_days, a = days("a")
    assert sum(day["calls"] for day in a_days.values()) == 90 and a["currencies"] == ["USD"]
    # Customers have their own portal, not these figures.
    customer = _logged_in(app, traffic["a_customer"])
    assert customer.get("/dashboard/figures.json").status_code == 403
    assert customer.get("/dashboard/").status_code == 403


def test_low_balance_and_overdue_invoices_are_scoped(app, world):
    world["b_customer"].low_balance_alert = Decimal("5000")  # funds 1,000: below
    world["a1_customer"].low_balance_alert = Decimal("999")  # funds 1,000: above
    db.session.add(
        Document(
            kind=DocumentKind.INVOICE,
            issuer_key=world["a1"].id,
            number=1,
            account_id=world["a1_customer"].id,
            billing_date=TODAY - timedelta(days=20),
            due_date=TODAY - timedelta(days=5),
            currency="USD",
            subtotal=Decimal("12.5"),
            tax_total=Decimal(0),
            total=Decimal("12.5"),
        )
    )
    db.session.add(
        Document(  # not due yet
            kind=DocumentKind.INVOICE,
            issuer_key=world["b"].id,
            number=1,
            account_id=world["b_customer"].id,
            billing_date=TODAY,
            due_date=TODAY + timedelta(days=15),
            currency="EUR",
            subtotal=Decimal(3),
            tax_total=Decimal(0),
            total=Decimal(3),
        )
    )
    db.session.commit()
    b_number, a1_number = world["b_customer"].account_number, world["a1_customer"].account_number

    html = _logged_in(app, world["admin"]).get("/dashboard/").get_data(as_text=True)
    assert _figure(html, "low-balance") == "1"
    assert [row[0] for row in _table(html, "low-balance")] == [b_number]
    assert _figure(html, "overdue") == "1"
    assert _table(html, "overdue") == [
        [
            "INV-000001",
            a1_number,
            (TODAY - timedelta(days=5)).strftime("%-d %b %Y"),
            "USD 12.50",
        ]
    ]
    assert "1 in USD, USD\xa012.50 due" in html

    for reseller in ("a", "a1"):
        html = _logged_in(app, world[reseller]).get("/dashboard/").get_data(as_text=True)
        assert _figure(html, "low-balance") == "0" and b_number not in html
        assert _figure(html, "overdue") == "1" and a1_number in html

    html = _logged_in(app, world["b"]).get("/dashboard/").get_data(as_text=True)
    assert _figure(html, "low-balance") == "1" and b_number in html
    assert _figure(html, "overdue") == "0" and a1_number not in html


def test_an_empty_dashboard_says_so(app, admin):
    html = _logged_in(app, admin).get("/dashboard/").get_data(as_text=True)
    assert _figure(html, "calls") == "0" and _figure(html, "asr") == "—"
    assert "No revenue in these days." in html and "No calls in these days." in html
    assert html.count("<canvas") == 1


def test_a_customers_month_counts_from_midnight_in_its_own_timezone(app, world):
    # Auckland is UTC+13 in December: 11:30 UTC on 30 Nov is already 1 Dec there.
    auckland = world["direct"]
    _call(world, "direct", "33123456789", datetime(2026, 11, 30, 10, 59), 60)  # 23:59 local
    _call(world, "direct", "33123456789", datetime(2026, 11, 30, 11, 0), 120)  # 00:00 local
    _call(world, "direct", "33123456789", datetime(2026, 12, 14, 9, 0), 0)
    usage = month_usage(auckland, now=datetime(2026, 12, 15, 12, 0, tzinfo=UTC))
    assert (usage.calls, usage.seconds, usage.cost) == (2, 120, Decimal("2.00"))
    # New York is UTC-5: 03:00 UTC on 1 Dec is still 30 Nov there.
    _call(world, "a_customer", "447911123456", datetime(2026, 12, 1, 4, 59), 60)
    _call(world, "a_customer", "447911123456", datetime(2026, 12, 1, 5, 0), 60)
    usage = month_usage(world["a_customer"], now=datetime(2026, 12, 1, 6, 0, tzinfo=UTC))
    assert (usage.calls, usage.cost) == (1, Decimal("0.60"))


def test_the_customers_dashboard_shows_its_own_month_only(app, traffic):
    html = _logged_in(app, traffic["a_customer"]).get("/my/").get_data(as_text=True)
    # 60 calls of today (00:30 UTC): in New York's month unless today is the 1st before 05:00.
    local = datetime.now(UTC) - timedelta(hours=5)
    if local.month == TODAY.month:
        assert _figure(html, "month-calls") == "60"
        assert _figure(html, "month-minutes") == "60"
        assert _figure(html, "month-cost") == "USD 36.00"
    assert "Europe/Berlin" not in html and "EUR" not in html
    assert "<canvas" not in html


def _snapshot() -> list[tuple]:
    """Every rollup row as a sorted tuple of its key and counters."""
    return sorted(
        (r.tenant_key, r.day, r.currency, r.rate_prefix, r.rate_destination)
        + (r.calls, r.answered, r.seconds, r.revenue)
        for r in db.session.scalars(select(CallRollup))
    )


def test_the_rollups_equal_a_recount_after_random_calls_ends_and_reaps(app, world):
    rng = random.Random(18)
    callers = ("direct", "a_customer", "a1_customer", "b_customer")
    numbers = ("33123456789", "447911123456", "447700900123")
    live = []
    for _ in range(120):
        caller = rng.choice(callers)
        number = "447911123456" if caller != "direct" else rng.choice(numbers)
        started = utcnow() - timedelta(days=rng.randint(0, 40), minutes=rng.randint(0, 1440))
        ended = rng.random() < 0.8
        call = _call(
            world, caller, number, started, rng.choice((0, 1, 59, 61, 300)) if ended else None
        )
        if not ended:
            live.append(call)
        if live and rng.random() < 0.3:  # a live call ends later, after other calls
            end_call(live.pop(rng.randrange(len(live))), rng.randint(0, 200), "NORMAL_CLEARING")
    # The rest are reaped (billed for their max duration), as the periodic job does.
    assert reap(now=utcnow() + timedelta(days=60)) == len(live)
    assert db.session.scalar(select(Call).where(Call.status == CallStatus.LIVE)) is None
    counted = _snapshot()
    assert counted and {row[0] for row in counted} == {
        0,
        world["a"].id,
        world["a1"].id,
        world["b"].id,
    }

    result = app.test_cli_runner().invoke(args=["reports", "rebuild-rollups"])
    assert result.exit_code == 0, result.output
    assert f"Wrote {len(counted)} rollup rows." in result.output
    db.session.expire_all()
    assert _snapshot() == counted
    # Each tenant's rows count every call once: the operator's count is the calls' count.
    ended = db.session.scalars(select(Call).where(Call.status != CallStatus.REFUSED)).all()
    assert sum(row[5] for row in counted if row[0] == 0) == len(ended)


def test_a_repeated_hang_up_counts_nothing_twice(app, world):
    call = _call(world, "a_customer", "447911123456", utcnow(), 60)
    before = _snapshot()
    end_call(call, 60, "NORMAL_CLEARING")
    assert _snapshot() == before
    assert [row[5:] for row in before] == [(1, 1, 60, Decimal("0.30")), (1, 1, 60, Decimal("0.60"))]
