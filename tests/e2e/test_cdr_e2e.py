"""The Calls page on the real server: calls made through the API, filtered, sorted, exported."""

import re

from playwright.sync_api import expect

from tests.e2e.conftest import ADMIN, nav
from tests.e2e.steps import (
    account_of,
    api_call,
    create_api_key,
    download,
    field,
    main,
    read_csv,
    uk_caller,
)

DESTINATION = "442079460958"
DURATIONS = (30, 90, 150)  # 0.60 a minute in whole minutes: 0.60, 1.20, 1.80
JOB_PAGE = re.compile(r"/jobs/\d+$")


def _calls_through_the_api(browse, portal):
    """A caller with three answered calls and one refused attempt, made as a softswitch would."""
    page = browse.page(ADMIN)
    page.goto(portal("/dashboard/"))
    browse.check(page, "Dashboard")
    key = create_api_key(page, "switch")
    browse.check(page, "API keys with a new key")
    caller = uk_caller(browse, page, "cdr.caller@example.com")
    for n, seconds in enumerate(DURATIONS):
        body = {"call_id": f"cdr-{n}", "account": caller.identifier, "destination": DESTINATION}
        assert api_call(page, portal, key, body, seconds)["allowed"]
    body = {"call_id": "cdr-refused", "account": caller.identifier, "destination": "999"}
    assert not api_call(page, portal, key, body, None)["allowed"]
    return caller


def test_calls_are_filtered_totalled_sorted_and_exported(browse, portal, tmp_path):
    caller = _calls_through_the_api(browse, portal)

    # The admin: every call, filtered by account, sorted by duration, exported by a job.
    page = browse.page(ADMIN)
    page.goto(portal("/dashboard/"))
    nav(page, "Calls")
    browse.check(page, "Calls of the admin")
    field(page, "Account").fill(caller.identifier)
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#total-calls")).to_have_text("3")
    expect(page.locator("#total-minutes")).to_have_text("4.5 min")
    expect(page.locator("#call-totals")).to_contain_text("USD 3.60")
    browse.check(page, "Calls of one account")
    page.locator("#calls").get_by_role("link", name="Duration").click()
    expect(page.locator("#calls tbody tr").first).to_contain_text("150 s")
    browse.check(page, "Calls sorted by duration")
    page.get_by_label("Status").select_option("refused")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#total-calls")).to_have_text("1")
    expect(page.locator("#calls")).to_contain_text("refused")
    # The browser refuses -1 in the field itself (min="0"); the server tells it too.
    page.goto(portal(f"/calls/?account={caller.identifier}&min_duration=-1&end=2001-01-01"))
    expect(main(page)).to_contain_text("Enter 0 to 604800 seconds.")
    expect(main(page)).to_contain_text("The end date is before the start date.")
    browse.check(page, "Calls with a bad filter")
    page.get_by_label("To", exact=True).fill("")
    page.get_by_label("Minimum duration (s)").fill("60")
    page.get_by_label("Status").select_option("completed")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#total-calls")).to_have_text("2")
    page.get_by_role("button", name="Export CSV").click()
    expect(page).to_have_url(JOB_PAGE)
    expect(page.locator("#job-download")).to_be_visible()
    browse.check(page, "Calls export job")
    rows = read_csv(download(page, "Download calls.csv", tmp_path))
    assert sorted(row["Duration (s)"] for row in rows) == ["150", "90"]
    assert {row["Cost"] for row in rows} == {"1.80", "1.20"}
    assert {row["Account"] for row in rows} == {caller.identifier}
    assert "Start (UTC)" in rows[0]

    page.goto(portal("/calls/live"))
    expect(main(page)).to_contain_text("No live calls.")
    browse.check(page, "Live calls")

    # A reseller: none of the admins' customers' calls, on the page or in its export.
    reseller = account_of(browse, ADMIN, "reseller")
    page = browse.page(reseller)
    page.goto(portal("/dashboard/"))
    nav(page, "Calls")
    expect(page.locator("#total-calls")).to_have_text("0")
    expect(main(page)).not_to_contain_text(caller.identifier)
    expect(page.locator("#calls")).to_contain_text("Margin")
    browse.check(page, "Calls of the reseller")
    assert page.request.get(portal("/calls/live")).status == 403
    page.get_by_role("button", name="Export CSV").click()
    expect(page).to_have_url(JOB_PAGE)
    browse.check(page, "The reseller's calls export job")
    path = download(page, "Download calls.csv", tmp_path)
    assert read_csv(path) == []
    assert "Margin (USD)" in path.read_text(encoding="utf-8").splitlines()[0]

    # The customer: its own calls, from its portal, downloaded at once.
    page = browse.page(caller)
    page.goto(portal("/my/"))
    browse.check(page, "The customer's portal")
    main(page).get_by_role("link", name="All calls, with filters and totals").click()
    expect(page.locator("#total-calls")).to_have_text("3")
    expect(field(page, "Account")).to_have_count(0)
    browse.check(page, "Calls of the customer")
    rows = read_csv(download(page, "Export CSV", tmp_path))
    assert len(rows) == 3 and {row["Account"] for row in rows} == {caller.identifier}
