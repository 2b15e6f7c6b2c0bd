"""The Calls page: filters and totals in the viewer's timezone, scoping, paging, CSV export."""

import csv
import html
import io
import re
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import insert, select

from portal import downloads
from portal.extensions import db
from portal.models import Account, Call, CallCharge, CallStatus, Job, JobFile, JobStatus
from tests.conftest import Browser

JAN = datetime(2026, 1, 1)
BULK_PER_ACCOUNT = 75
KOLKATA, NEW_YORK = "Asia/Kolkata", "America/New_York"


def _bulk_spec(index: int) -> dict:
    """The n-th generated call of an account: every 3 h over ~9 days in January."""
    status = CallStatus.ENDED
    if index % 10 == 9:
        status = CallStatus.REAPED
    if index % 15 == 14:
        status = CallStatus.REFUSED
    answered = status != CallStatus.REFUSED
    return {
        "started_at": JAN + timedelta(hours=3 * index, minutes=index % 60),
        "destination": ("4420" if index % 2 else "331") + f"{index:06d}",
        "status": status,
        "duration_seconds": 10 * (index % 7) if answered else None,
        "cost": Decimal(index % 5) / 10 if answered else None,
    }


def _add_calls(account: Account, specs: list[dict], tag: str) -> None:
    """Insert calls of `account` (one statement)."""
    rows = [
        {
            "call_id": f"{tag}-{account.account_number}-{n}",
            "account_id": account.id,
            "translated_destination": spec["destination"],
            "cause": "" if spec["status"] != CallStatus.REFUSED else "NO_SUFFICIENT_FUND",
            **spec,
        }
        for n, spec in enumerate(specs)
    ]
    db.session.execute(insert(Call), rows)
    db.session.commit()


def _special(account: Account, tag: str, started: str, seconds, cost, status=CallStatus.ENDED):
    """One hand-placed call; returns its id."""
    call = Call(
        call_id=f"special-{tag}",
        account_id=account.id,
        destination="4420700",
        translated_destination="4420700",
        status=status,
        started_at=datetime.fromisoformat(started),
        duration_seconds=seconds,
        cost=None if cost is None else Decimal(cost),
    )
    db.session.add(call)
    db.session.commit()
    return call.id


def _charge(call_id: int, reseller: Account, level: int, cost: str) -> None:
    """What `reseller` (at `level` up the chain) paid its parent for a call."""
    db.session.add(
        CallCharge(
            call_id=call_id,
            account_id=reseller.id,
            level=level,
            rate_prefix="44",
            connect_cost=0,
            cost_per_minute=0,
            initial_increment=1,
            increment=1,
            reserved=0,
            cost=Decimal(cost),
        )
    )
    db.session.commit()


@pytest.fixture
def cdr(app, admin, subadmin, customer, tenants):
    """Two tenants (resellers A with sub-reseller A1, and B) and the admins' customer, in three
    timezones, with 75 generated calls each in January and a few hand-placed ones in February."""
    world = dict(tenants, admin=admin, subadmin=subadmin, customer=customer)
    tenants["a"].timezone = KOLKATA
    tenants["a1_customer"].timezone = KOLKATA
    subadmin.timezone = NEW_YORK
    tenants["b"].timezone = NEW_YORK
    tenants["b_customer"].currency = "EUR"
    db.session.commit()
    specs = [_bulk_spec(n) for n in range(BULK_PER_ACCOUNT)]
    callers = ("customer", "a_customer", "a1_customer", "b_customer")
    for name in callers:
        _add_calls(world[name], specs, "bulk")
    world["bulk"] = dict.fromkeys(callers, specs)
    a_customer, a1_customer = tenants["a_customer"], tenants["a1_customer"]
    # 23:30 UTC on 1 Feb is 05:00 on 2 Feb in Kolkata and 18:30 on 1 Feb in New York.
    s1 = _special(a_customer, "s1", "2026-02-01 23:30", 90, "0.45")
    s2 = _special(a_customer, "s2", "2026-02-02 10:00", 30, "0.10")
    # 18:45 UTC on 2 Feb is 00:15 on 3 Feb in Kolkata.
    _special(a_customer, "s3", "2026-02-02 18:45", 125, "1.05", CallStatus.REAPED)
    _special(a_customer, "s4", "2026-02-02 12:00", None, None, CallStatus.REFUSED)
    s5 = _special(a1_customer, "s5", "2026-02-02 09:00", 60, "1.00")
    _charge(s1, tenants["a"], 1, "0.30")
    _charge(s2, tenants["a"], 1, "0.05")
    _charge(s5, tenants["a1"], 1, "0.70")
    _charge(s5, tenants["a"], 2, "0.50")
    # An admin's own call: sub-admins never see the admins' accounts.
    _special(admin, "admin", "2026-02-02 11:00", 10, "0.01")
    return world


def login(app, account: Account) -> Browser:
    """A browser of its own, logged in as `account`."""
    browser = Browser(app.test_client())
    assert browser.login(account.account_number).status_code == 303
    return browser


def page_text(browser: Browser, query: str = "", status: int = 200) -> str:
    """The Calls page for `query`, entities decoded, Babel's no-break spaces as spaces."""
    response = browser.get("/calls/?" + query)
    assert response.status_code == status, response.get_data(as_text=True)[:3000]
    return html.unescape(response.get_data(as_text=True)).replace("\xa0", " ")


def figure(text: str, element_id: str) -> str:
    """The text of the totals cell with `element_id`."""
    match = re.search(rf'id="{element_id}">([^<]*)<', text)
    assert match, element_id
    return match.group(1).strip()


def shown_accounts(text: str) -> set[str]:
    """The account numbers in the calls table."""
    table = text.split('id="calls"', 1)[1].split("</table>", 1)[0]
    return set(re.findall(r'<td class="account">(\d+)</td>', table))


FEB2 = "start=2026-02-02&end=2026-02-02"


def test_a_call_at_2330_utc_is_the_next_day_in_kolkata(app, cdr):
    """Reseller A (Asia/Kolkata), 2 Feb: s1 (05:00), s2 (15:30), s5 (14:30); s3 is 3 Feb."""
    text = page_text(login(app, cdr["a"]), FEB2)
    assert figure(text, "total-calls") == "3"
    assert figure(text, "total-minutes") == "3 min"  # 90 + 30 + 60 s
    assert "USD 1.55" in text  # 0.45 + 0.10 + 1.00
    assert figure(text, "total-own-cost") == "USD 0.85"  # 0.30 + 0.05 + 0.50
    assert figure(text, "total-margin") == "USD 0.40"  # 0.15 + 0.05 + (0.70 - 0.50)
    assert "2 Feb 2026, 05:00:00" in text  # s1 in the viewer's time


def test_the_same_day_in_utc_and_in_new_york(app, cdr):
    """The admin (UTC) and the sub-admin (New York) count 2 Feb with their own midnights."""
    admin_text = page_text(login(app, cdr["admin"]), FEB2)
    # s2, s3 (reaped is completed), s5, the admin's own call; s1 is 1 Feb, s4 refused.
    assert figure(admin_text, "total-calls") == "4"
    assert figure(admin_text, "total-minutes") == "3.75 min"  # 30+125+60+10 s
    assert "USD 2.16" in admin_text  # 0.10 + 1.05 + 1.00 + 0.01
    sub = login(app, cdr["subadmin"])
    # New York's 2 Feb is 05:00 UTC 2 Feb to 05:00 UTC 3 Feb: s2, s3, s5, not the admin's.
    text = page_text(sub, FEB2)
    assert figure(text, "total-calls") == "3"
    assert figure(text, "total-minutes") == "3.58 min"  # 215 s
    assert "USD 2.15" in text
    # New York's 1 Feb holds s1 (18:30 local).
    text = page_text(sub, "start=2026-02-01&end=2026-02-01")
    assert figure(text, "total-calls") == "1"
    assert "USD 0.45" in text and "1 Feb 2026, 18:30:00" in text


def test_refused_attempts_show_only_when_asked(app, cdr):
    """The default leaves refused attempts out; the status filter shows them alone."""
    browser = login(app, cdr["admin"])
    text = page_text(browser, FEB2 + "&status=refused&account=" + cdr["a_customer"].account_number)
    assert figure(text, "total-calls") == "1" and "NO_SUFFICIENT_FUND" not in text
    assert "refused" in text
    text = page_text(browser, FEB2 + "&status=all&account=" + cdr["a_customer"].account_number)
    assert figure(text, "total-calls") == "3"  # s2, s3, s4


def _expected(specs, keep) -> tuple[int, int, Decimal]:
    """Calls, seconds and cost of the generated calls `keep` selects (computed here, in Python)."""
    kept = [s for s in specs if keep(s)]
    seconds = sum(s["duration_seconds"] or 0 for s in kept)
    return len(kept), seconds, sum((s["cost"] or Decimal(0) for s in kept), Decimal(0))


COMPLETED = (CallStatus.ENDED, CallStatus.REAPED)
JANUARY = "start=2026-01-01&end=2026-01-31"
FILTERS = [
    ("", lambda s: s["status"] in COMPLETED),
    ("&prefix=4420", lambda s: s["status"] in COMPLETED and s["destination"].startswith("4420")),
    ("&prefix=%2B44", lambda s: False),  # the dialled numbers carry no +
    ("&min_duration=40", lambda s: s["status"] in COMPLETED and s["duration_seconds"] >= 40),
    ("&status=reaped", lambda s: s["status"] == CallStatus.REAPED),
    (
        "&status=ended&min_duration=60",
        lambda s: s["status"] == CallStatus.ENDED and s["duration_seconds"] == 60,
    ),
    ("&status=refused", lambda s: s["status"] == CallStatus.REFUSED),
]


@pytest.mark.parametrize(("query", "keep"), FILTERS)
def test_filters_and_totals_of_one_account_match_the_calls_counted_by_hand(app, cdr, query, keep):
    """Each filter on one account: the totals equal what Python counts over the same calls."""
    number = cdr["b_customer"].account_number
    text = page_text(login(app, cdr["admin"]), f"{JANUARY}&account={number}{query}")
    calls, seconds, cost = _expected(cdr["bulk"]["b_customer"], keep)
    assert figure(text, "total-calls") == str(calls)
    minutes = (Decimal(seconds) / 60).quantize(Decimal("0.01")).normalize()
    assert figure(text, "total-minutes") == f"{minutes:f} min"
    if calls:
        assert f"EUR {cost:.2f}" in text


def test_a_window_in_the_middle_of_january_in_new_york(app, cdr):
    """5 to 7 Jan in New York (UTC-5) against the generated start times, for reseller B."""
    start, end = datetime(2026, 1, 5, 5), datetime(2026, 1, 8, 5)
    calls, seconds, cost = _expected(
        cdr["bulk"]["b_customer"],
        lambda s: s["status"] in COMPLETED and start <= s["started_at"] < end,
    )
    text = page_text(login(app, cdr["b"]), "start=2026-01-05&end=2026-01-07")
    assert figure(text, "total-calls") == str(calls) and calls > 10
    assert f"EUR {cost:.2f}" in text


def test_the_admin_totals_every_tenant_per_currency(app, cdr):
    """January for the admin: three USD accounts and one EUR account, each line on its own."""
    text = page_text(login(app, cdr["admin"]), JANUARY)
    calls, _seconds, cost = _expected(cdr["bulk"]["b_customer"], lambda s: s["status"] in COMPLETED)
    assert figure(text, "total-calls") == str(4 * calls)
    assert f"EUR {cost:.2f}" in text and f"USD {3 * cost:.2f}" in text


@pytest.mark.parametrize(
    ("viewer", "sees"),
    [
        ("admin", {"customer", "a_customer", "a1_customer", "b_customer"}),
        ("subadmin", {"customer", "a_customer", "a1_customer", "b_customer"}),
        ("a", {"a_customer", "a1_customer"}),
        ("a1", {"a1_customer"}),
        ("b", {"b_customer"}),
        ("b_customer", {"b_customer"}),
    ],
)
def test_each_role_sees_its_own_tenant_only(app, cdr, viewer, sees):
    """Every account on the pages of a long window is one the viewer may see."""
    browser = login(app, cdr[viewer])
    seen = set()
    query = f"{JANUARY}&per_page=200"
    while True:
        text = page_text(browser, query)
        seen |= shown_accounts(text) if viewer != "b_customer" else {"x"}
        match = re.search(r'href="/calls/\?([^"]*after=[^"]*)" rel="next"', text)
        if not match:
            break
        query = html.unescape(match.group(1))
    if viewer == "b_customer":
        calls, _s, _c = _expected(cdr["bulk"]["b_customer"], lambda s: s["status"] in COMPLETED)
        assert figure(text, "total-calls") == str(calls)
        for other in ("a_customer", "customer"):
            assert cdr[other].account_number not in text
        return
    assert seen == {cdr[name].account_number for name in sees}


def test_another_tenants_account_or_reseller_is_a_field_error(app, cdr):
    """Reseller B filtering by A's customer or by A: "no such account", and no calls shown."""
    browser = login(app, cdr["b"])
    text = page_text(browser, f"account={cdr['a_customer'].account_number}", 422)
    assert "among the accounts you can see" in text and 'id="calls"' not in text
    text = page_text(browser, f"reseller={cdr['a'].account_number}", 422)
    assert "No reseller" in text
    # A customer has no account filter: another account's number changes nothing.
    customer = login(app, cdr["b_customer"])
    text = page_text(customer, f"{JANUARY}&account={cdr['customer'].account_number}")
    own, _s, _c = _expected(cdr["bulk"]["b_customer"], lambda s: s["status"] in COMPLETED)
    assert figure(text, "total-calls") == str(own)


def test_the_reseller_filter_takes_a_subtree(app, cdr):
    """The admin filtering by reseller A gets A's and A1's customers, not B's."""
    text = page_text(login(app, cdr["admin"]), f"{FEB2}&reseller={cdr['a'].account_number}")
    assert figure(text, "total-calls") == "3"  # s2, s3, s5 (UTC)
    assert shown_accounts(text) == {
        cdr["a_customer"].account_number,
        cdr["a1_customer"].account_number,
    }


BAD = [
    ("start=2026-02-31", "start", "Not a valid date"),
    ("start=9999-01-01", "start", "Enter a date from 2000 to 2100."),
    ("start=0001-01-01", "start", "Enter a date from 2000 to 2100."),
    ("start=2026-02-02&end=2026-02-01", "end", "The end date is before the start date."),
    ("end=2001-01-01", "end", "The end date is before the start date."),
    ("min_duration=-5", "min_duration", "Enter 0 to 604800 seconds."),
    ("min_duration=99999999999999999999", "min_duration", "Enter a whole number"),
    ("min_duration=abc", "min_duration", "Not a valid integer"),
    ("prefix=44%25", "prefix", "Enter 1 to 32 digits"),
    ("prefix=" + "4" * 10_000, "prefix", "Enter 1 to 32 digits"),
    ("account=" + "1" * 10_000, "account", "Enter an account number"),
    ("status=bogus", "status", "Not a valid choice"),
    ("status=" + "x" * 10_000, "status", "Not a valid choice"),
]


@pytest.mark.parametrize(("query", "field", "message"), BAD)
def test_bad_query_strings_are_field_errors(app, cdr, query, field, message):
    """Each bad value is told on its field, with a 422 and no calls shown."""
    text = page_text(login(app, cdr["admin"]), query, 422)
    block = text.split(f'id="field-{field}"', 1)[1].split("</div>", 1)[0]
    assert message in block
    assert 'id="calls"' not in text


@pytest.mark.parametrize(
    "query", ["sort=bogus", "per_page=7", "per_page=" + "9" * 400, "sort=" + "-" * 10_000]
)
def test_unknown_sorts_and_page_sizes_fall_back_to_the_defaults(app, cdr, query):
    """Not a 500: the list uses its default sort and page size."""
    text = page_text(login(app, cdr["admin"]), f"{JANUARY}&{query}")
    assert 'aria-sort="descending"' in text


@pytest.mark.parametrize("cursor", ["x" * 10_000, "WzEsMl0", "bm90IGpzb24"])
def test_a_tampered_cursor_is_not_found(app, cdr, cursor):
    """A cursor no page of ours made names no position: 404, never a 500."""
    response = login(app, cdr["admin"]).get(f"/calls/?{JANUARY}&after={cursor}")
    assert response.status_code == 404


@pytest.mark.parametrize(
    "sort", ["-started", "started", "-duration", "duration", "-cost", "account"]
)
def test_paging_forwards_and_back_visits_every_call_once(app, cdr, sort):
    """Next links reach every call once, in the sort's order; Previous gives the pages back."""
    browser = login(app, cdr["b"])
    base = f"{JANUARY}&sort={sort}&per_page=25"
    pages, query = [], base
    while True:
        text = page_text(browser, query)
        pages.append((query, text.split('id="calls"', 1)[1].split("</table>", 1)[0]))
        match = re.search(r'href="/calls/\?([^"]*)" rel="next"', text)
        if not match:
            break
        query = html.unescape(match.group(1))
    # January in New York starts at 05:00 UTC on 1 Jan.
    calls, _s, _c = _expected(
        cdr["bulk"]["b_customer"],
        lambda s: s["status"] in COMPLETED and s["started_at"] >= datetime(2026, 1, 1, 5),
    )
    rows = sum(part.split("<tbody>", 1)[1].count("<tr>") for _q, part in pages)
    assert rows == calls and len(pages) == -(-calls // 25)
    # From the last page, Previous shows the page before it again.
    text = page_text(browser, pages[-1][0])
    match = re.search(r'href="/calls/\?([^"]*)" rel="prev"', text)
    back = page_text(browser, html.unescape(match.group(1)))
    assert back.split('id="calls"', 1)[1].split("</table>", 1)[0] == pages[-2][1]


@pytest.mark.parametrize("query", ["account=12%00", "reseller=%00", "start=%00", "after=%00"])
def test_a_nul_in_the_query_string_is_a_bad_request(app, cdr, query):
    """The portal refuses any NUL in a query string up front (400), before the page's form."""
    response = login(app, cdr["admin"]).get("/calls/?" + query)
    assert response.status_code == 400 and "Bad request" in response.get_data(as_text=True)


def _export(browser: Browser, query: dict):
    """POST the Calls page's Export button with the page's CSRF token."""
    return browser.post("/calls/export", query, token_from="/calls/")


def _job_csv(app, response) -> list[list[str]]:
    """The rows of the CSV file the export job made (after its 303 to the job page)."""
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    job_id = int(re.search(r"/jobs/(\d+)$", response.headers["Location"]).group(1))
    assert db.session.get(Job, job_id).status == JobStatus.DONE
    stored = db.session.scalars(
        select(JobFile).where(JobFile.job_id == job_id, JobFile.name == "output")
    ).one()
    return list(csv.reader(io.StringIO(stored.content.decode())))


def test_the_export_job_writes_the_filtered_calls_in_the_viewers_time(app, cdr, monkeypatch):
    """Reseller A's export of 2 Feb (Kolkata): its three calls, margin columns, local times."""
    monkeypatch.setattr(downloads, "BATCH_ROWS", 2)  # several batches for three rows
    browser = login(app, cdr["a"])
    rows = _job_csv(app, _export(browser, {"start": "2026-02-02", "end": "2026-02-02"}))
    assert rows[0][0] == "Start (Asia/Kolkata)"
    assert rows[0][-2:] == ["Your cost (USD)", "Margin (USD)"]
    by_start = {row[0]: row for row in rows[1:]}
    assert set(by_start) == {"2026-02-02 05:00:00", "2026-02-02 15:30:00", "2026-02-02 14:30:00"}
    s1 = by_start["2026-02-02 05:00:00"]
    assert s1[1] == cdr["a_customer"].account_number
    assert s1[7:10] == ["90", "0.45", "USD"] and s1[-2:] == ["0.30", "0.15"]
    assert by_start["2026-02-02 14:30:00"][-2:] == ["0.50", "0.20"]


def test_an_export_holds_the_tenants_calls_only(app, cdr):
    """Reseller B's January export: every B call, no other tenant's."""
    rows = _job_csv(
        app, _export(login(app, cdr["b"]), {"start": "2026-01-01", "end": "2026-01-31"})
    )
    # January in New York starts at 05:00 UTC on 1 Jan.
    calls, _s, cost = _expected(
        cdr["bulk"]["b_customer"],
        lambda s: s["status"] in COMPLETED and s["started_at"] >= datetime(2026, 1, 1, 5),
    )
    assert len(rows) == calls + 1
    assert {row[1] for row in rows[1:]} == {cdr["b_customer"].account_number}
    assert sum(Decimal(row[8]) for row in rows[1:]) == cost
    assert rows[0][0] == "Start (America/New_York)" and "Margin (EUR)" not in rows[0]


def test_a_customer_downloads_its_own_calls_at_once(app, cdr):
    """A customer has no Jobs page: its export streams, its own calls only."""
    browser = login(app, cdr["a_customer"])
    response = _export(browser, {"start": "2026-02-01", "end": "2026-02-03"})
    assert response.status_code == 303 and "/calls/export.csv?" in response.headers["Location"]
    response = browser.get(response.headers["Location"])
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0][0] == "Start (UTC)" and len(rows) == 4  # s1, s2, s3
    assert {row[1] for row in rows[1:]} == {cdr["a_customer"].account_number}


def test_an_export_with_bad_filters_goes_back_to_the_page(app, cdr):
    """A bad posted filter starts no job: back to the page, which shows the error."""
    response = _export(login(app, cdr["admin"]), {"start": "2026-02-03", "end": "2026-02-01"})
    assert response.status_code == 303 and "/calls/?" in response.headers["Location"]


def test_export_needs_a_csrf_token_and_a_login(app, cdr):
    """No token: refused; not logged in: to the login page."""
    browser = login(app, cdr["admin"])
    assert browser.client.post("/calls/export", data={}).status_code == 400
    assert app.test_client().get("/calls/").status_code in (302, 303)


def _live(account: Account, reserved: str, minutes_ago: int) -> None:
    """A call authorized `minutes_ago` and still going."""
    db.session.add(
        Call(
            call_id=f"live-{account.account_number}",
            account_id=account.id,
            destination="4420700",
            status=CallStatus.LIVE,
            reserved=Decimal(reserved),
            started_at=datetime.utcnow() - timedelta(minutes=minutes_ago),
        )
    )
    db.session.commit()


def test_live_calls_for_staff_with_age_and_reservation(app, cdr):
    """Staff see live calls with their age and reservation; others get 403."""
    _live(cdr["b_customer"], "2.5", 5)
    _live(cdr["admin"], "1", 1)
    text = html.unescape(login(app, cdr["admin"]).get("/calls/live").get_data(as_text=True))
    text = text.replace("\xa0", " ")
    assert "EUR 2.50" in text and "0:05:0" in text and "2 live calls" in text
    sub = login(app, cdr["subadmin"]).get("/calls/live")
    assert sub.status_code == 200
    assert cdr["admin"].account_number not in sub.get_data(as_text=True).split("<main", 1)[-1]
    for name in ("a", "b_customer"):
        assert login(app, cdr[name]).get("/calls/live").status_code == 403
    # The streamed download is a customer's; managers export through a job.
    assert login(app, cdr["a"]).get(f"/calls/export.csv?{FEB2}").status_code == 403


def test_the_calls_page_is_linked_for_every_role(app, cdr):
    """The menu links it; a customer's portal and an account page link its calls."""
    for name in ("admin", "a", "b_customer"):
        text = login(app, cdr[name]).get("/calls/").get_data(as_text=True)
        assert 'href="/calls/" aria-current="page"' in text
    text = login(app, cdr["admin"]).get(f"/accounts/{cdr['customer'].id}").get_data(as_text=True)
    assert f"/calls/?account={cdr['customer'].account_number}" in text


def test_a_customer_form_has_no_account_filters(app, cdr):
    """A customer sees its calls only: no account or reseller field."""
    text = page_text(login(app, cdr["b_customer"]), JANUARY)
    assert 'name="account"' not in text and 'name="reseller"' not in text
