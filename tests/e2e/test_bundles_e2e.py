"""Free-minute bundles on the real server: calls through the API, the minutes on the pages."""

import subprocess

from playwright.sync_api import expect

from tests.e2e.conftest import ADMIN, Login, nav
from tests.e2e.steps import api_call, create_api_key, field, main, uk_caller
from tests.servers import BIN, ROOT

DESTINATION = "447911123456"  # the UK (44) on Default: 0.60 a minute, whole minutes
# A bundle of 5 free minutes to the UK, subscribed from yesterday: the Products page is
# another feature's, so the rows are written straight to the portal's database.
SUBSCRIBE = """
import sys
from datetime import date, timedelta
from sqlalchemy import select
from portal import create_app
from portal.extensions import db
from portal.models import Account, Product, ProductPrefix, Subscription
app = create_app()
with app.app_context():
    account = db.session.scalar(select(Account).where(Account.account_number == sys.argv[1]))
    product = Product(name="UK 5 minutes", free_minutes=5, prefixes=[ProductPrefix(prefix="44")])
    db.session.add(Subscription(account_id=account.id, product=product,
                                start_date=date.today() - timedelta(days=1)))
    db.session.commit()
    print(account.id)
"""


def subscribe(portal, account_number: str) -> int:
    """Subscribe the account to the UK bundle in the portal's database; its id."""
    done = subprocess.run(
        [str(BIN / "python"), "-c", SUBSCRIBE, account_number],
        cwd=ROOT,
        env=portal.env,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return int(done.stdout.split()[-1])


def test_calls_draw_on_the_bundle_and_the_pages_show_the_free_minutes(browse, portal):
    page = browse.page(ADMIN)
    page.goto(portal("/dashboard/"))
    browse.check(page, "Dashboard")
    key = create_api_key(page, "switch")
    browse.check(page, "API keys with a new key")
    caller = uk_caller(browse, page, "bundle.caller@example.com")
    account_id = subscribe(portal, caller.identifier)

    # 2 minutes free; then 3 free minutes and 220 s paid (4 whole minutes: 2.40).
    body = {"call_id": "free-1", "account": caller.identifier, "destination": DESTINATION}
    first = api_call(page, portal, key, body, 120)
    assert first["allowed"] and first["max_duration_seconds"] == 3600
    body = {"call_id": "free-2", "account": caller.identifier, "destination": DESTINATION}
    assert api_call(page, portal, key, body, 400)["allowed"]

    # The admin: the account page's bundle panel and its calls, then the Calls page.
    page.goto(portal(f"/accounts/{account_id}"))
    panel = page.locator("#bundles")
    expect(panel).to_contain_text("UK 5 minutes")
    expect(panel.locator("[data-figure=bundle-remaining]")).to_have_text("0 min")
    expect(panel).to_contain_text("5 min")
    expect(page.locator("#calls")).to_contain_text("120 s free")
    expect(page.locator("#calls")).to_contain_text("180 s free")
    browse.check(page, "Account page with a bundle")
    nav(page, "Calls")
    field(page, "Account").fill(caller.identifier)
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#total-calls")).to_have_text("2")
    expect(page.locator("#call-totals")).to_contain_text("USD 2.40")
    expect(page.locator("#calls")).to_contain_text("180 s free")
    browse.check(page, "Calls with free minutes")

    # The customer: its own page shows the bundle and what it covered.
    own = browse.page(Login("customer", caller.identifier, caller.password))
    own.goto(portal("/my/"))
    expect(main(own).locator("#bundles")).to_contain_text("UK 5 minutes")
    expect(main(own).locator("#calls")).to_contain_text("120 s free")
    browse.check(own, "My account with a bundle")
