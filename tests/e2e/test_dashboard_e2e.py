"""Dashboards on the real server: charts drawn from calls the softswitch API ended."""

from playwright.sync_api import expect

from tests.e2e.conftest import ADMIN, nav
from tests.e2e.steps import account_of, api_call, create_api_key, main, uk_caller

DESTINATION = "442079460958"


def _calls_through_the_api(browse, portal) -> str:
    """A customer of the admins (postpaid) whose 3 calls the softswitch API authorized and ended."""
    page = browse.page(ADMIN)
    page.goto(portal("/dashboard/"))
    browse.check(page, "Dashboard before any call")
    key = create_api_key(page, "switch")
    browse.check(page, "API keys with a new key")
    caller = uk_caller(browse, page, "dashboard.caller@example.com")
    for serial, seconds in enumerate((60, 120, 0)):
        body = {
            "call_id": f"e2e-dashboard-{serial}",
            "account": caller.identifier,
            "destination": DESTINATION,
        }
        assert api_call(page, portal, key, body, seconds)["allowed"]
    page.context.close()
    browse.contexts.remove(page.context)
    return caller


def _drawn(page, charts: int) -> None:
    """`charts` canvases, each drawn by Chart.js, with their tables for screen readers."""
    expect(page.locator("canvas[data-chart]")).to_have_count(charts)
    expect(page.locator("canvas[data-drawn]")).to_have_count(charts)
    assert page.evaluate(
        "() => [...document.querySelectorAll('canvas[data-chart]')]"
        ".every(canvas => window.Chart.getChart(canvas) !== undefined)"
    )
    expect(page.locator("#calls-per-day")).to_be_attached()


def test_dashboards_draw_their_charts_for_each_role(browse, portal):
    caller = _calls_through_the_api(browse, portal)
    for width in (1366, 390):
        page = browse.page(ADMIN, width=width)
        page.goto(portal("/dashboard/"))
        _drawn(page, 2)  # calls and minutes; revenue in USD
        expect(page.locator('[data-figure="calls"]')).to_have_text("3")
        expect(page.locator('[data-figure="asr"]')).to_have_text("66.7 %")
        # 60 s and 120 s at 0.60 a minute: USD 1.80, in the table behind the chart.
        main(page).get_by_text("Revenue per day as a table").click()
        expect(page.locator("#revenue-per-day")).to_contain_text("USD\u00a01.80")
        expect(page.locator("#top-minutes")).to_contain_text("United Kingdom")
        browse.check(page, f"Dashboard with charts at {width} px")

    # A reseller sees its own subtree: no calls yet, and none of the admins'.
    reseller = account_of(browse, ADMIN, "reseller")
    page = browse.page(reseller)
    page.goto(portal("/dashboard/"))
    _drawn(page, 1)
    expect(page.locator('[data-figure="calls"]')).to_have_text("0")
    expect(main(page)).not_to_contain_text("United Kingdom")
    browse.check(page, "Dashboard of the reseller with its charts")
    # Reached by a boosted link (htmx swaps the page in), the charts are drawn too.
    nav(page, "Tariff · Rate Groups")
    browse.check(page, "Rate Groups of the reseller")
    nav(page, "Dashboard")
    _drawn(page, 1)

    for width in (1366, 390):
        page = browse.page(caller, width=width)
        page.goto(portal("/my/"))
        expect(page.locator('[data-figure="month-calls"]')).to_have_text("3")
        expect(page.locator('[data-figure="month-cost"]')).to_have_text("USD\u00a01.80")
        browse.check(page, f"Customer's dashboard at {width} px")
