"""Jobs on the real server (gunicorn and the consumer) for each role that starts or reads them."""

import re

from playwright.sync_api import expect

from tests.e2e.conftest import ADMIN, nav
from tests.e2e.steps import account_of, field, main

JOB_PAGE = re.compile(r"/jobs/\d+$")
MASS = 501  # over the 500 a page creates at once: a job


def _wait_until_done(page, result: str) -> None:
    """The job page's progress fragment says done with `result` (polled by htmx every second)."""
    expect(page.locator("#job-status")).to_have_text("Done", timeout=120_000)
    expect(page.locator("#job-result")).to_contain_text(result)
    expect(page.locator("#job-bar")).to_have_attribute("value", "100")


def test_a_reseller_mass_creates_through_a_job_and_sees_only_its_jobs(browse, portal):
    reseller = account_of(browse, ADMIN, "reseller")
    page = browse.page(reseller)
    page.goto(portal("/dashboard/"))
    browse.check(page, "Dashboard (reseller)")
    nav(page, "Tariff · Rate Groups")
    browse.check(page, "Rate groups (reseller)")
    main(page).get_by_role("link", name="Create Rate Group").click()
    browse.check(page, "Create Rate Group (reseller)")
    field(page, "Name").fill("Bulk Plan")
    page.get_by_role("button", name="Save").click()
    expect(main(page)).to_contain_text('Rate group "Bulk Plan" created.')
    browse.check(page, "Rate group (reseller)")

    nav(page, "Customers")
    browse.check(page, "Customers (reseller)")
    main(page).get_by_role("link", name="Mass create").click()
    browse.check(page, "Mass create (reseller)")
    field(page, "Number of accounts").fill(str(MASS))
    field(page, "Rate Group").select_option(label="Bulk Plan (USD)")
    page.get_by_role("button", name="Create accounts").click()
    expect(page).to_have_url(JOB_PAGE)
    _wait_until_done(page, f"{MASS} customers created.")
    browse.check(page, "Job done (reseller)")
    job_url = page.url

    page.get_by_role("button", name="Show the credentials").click()
    expect(page.locator("#credentials tbody tr")).to_have_count(MASS)
    browse.check(page, "Job credentials (reseller)")
    page.goto(job_url)
    expect(main(page)).to_contain_text("were shown once")
    expect(page.get_by_role("button", name="Show the credentials")).to_have_count(0)

    nav(page, "Jobs")
    browse.check(page, "Jobs (reseller)")
    expect(main(page).get_by_role("link", name=f"Mass create of {MASS} customers")).to_be_visible()

    # Staff see the reseller's job, never its passwords; another reseller does not find it.
    admin = browse.page(ADMIN)
    admin.goto(job_url)
    expect(main(admin)).to_contain_text(f"{MASS} customers created.")
    expect(admin.get_by_role("button", name="Show the credentials")).to_have_count(0)
    other = account_of(browse, reseller, "reseller")
    assert browse.page(other).request.get(job_url).status == 404


def test_an_admin_runs_billing_now_and_a_subadmin_reads_the_jobs(browse, portal):
    page = browse.page(ADMIN)
    page.goto(portal("/dashboard/"))
    browse.check(page, "Dashboard (admin)")
    nav(page, "Jobs")
    browse.check(page, "Jobs (admin)")
    page.get_by_role("button", name="Run billing now").click()
    expect(page).to_have_url(JOB_PAGE)
    _wait_until_done(page, "accounts examined")
    browse.check(page, "Billing run job")
    nav(page, "Jobs")
    page.get_by_role("button", name="Billing dry run").click()
    expect(page).to_have_url(JOB_PAGE)
    _wait_until_done(page, "Dry run, nothing was written")
    browse.check(page, "Billing dry run job")

    subadmin = account_of(browse, ADMIN, "subadmin")
    staff = browse.page(subadmin)
    staff.goto(portal("/dashboard/"))
    browse.check(staff, "Dashboard (sub-admin)")
    nav(staff, "Jobs")
    browse.check(staff, "Jobs (sub-admin)")
    expect(main(staff).get_by_role("link", name="Billing run", exact=True).first).to_be_visible()
    expect(staff.get_by_role("button", name="Run billing now")).to_have_count(0)
