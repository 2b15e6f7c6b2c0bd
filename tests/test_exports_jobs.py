"""Large exports and rate imports as jobs: the streamed CSV, tenancy, all or none."""

import csv
import html
import io
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from portal import downloads
from portal.accounts import bulk
from portal.accounts.bulk import export_accounts, import_accounts, mass_create
from portal.accounts.service import store_search_tokens
from portal.background import records
from portal.extensions import db
from portal.models import Account, Job, JobFile, JobStatus, Rate, utcnow
from portal.tariffs import rate_files
from portal.tariffs.rate_csv import HEADER, parse_rates
from tests.conftest import Browser

RATES = "/tariff/rate-groups/"
RATE_LINES = [
    "44,United Kingdom,0.01,0.025,30,6",
    "1,USA,0,0.01,60,60",
    "49,Germany,0,0.02,60,60",
    ",Anywhere,0,0.5,60,60",
]


@pytest.fixture
def jobs_for_all(monkeypatch):
    """Every export and every rate file with more than one line runs as a job."""
    monkeypatch.setattr(bulk, "INLINE_EXPORT_ROWS", 0)
    monkeypatch.setattr(rate_files, "INLINE_EXPORT_ROWS", 0)
    monkeypatch.setattr(rate_files, "INLINE_IMPORT_ROWS", 1)
    # Small batches, so a few rows are read (and counted) in several of them.
    monkeypatch.setattr(downloads, "BATCH_ROWS", 2)


def logged_in(app, account: Account) -> Browser:
    """A browser of its own, logged in as `account`."""
    browser = Browser(app.test_client())
    assert browser.login(account.account_number).status_code == 303
    return browser


def job_of(response) -> Job:
    """The job a 303 to its page names."""
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    match = re.search(r"/jobs/(\d+)$", response.headers["Location"])
    assert match, response.headers["Location"]
    return db.session.get(Job, int(match.group(1)))


def page_of(browser: Browser, job: Job) -> str:
    """The job's page as text, entities decoded."""
    return html.unescape(browser.get(f"/jobs/{job.id}").get_data(as_text=True))


def numbers_in(content: bytes) -> set[str]:
    """The account numbers of a customer CSV."""
    return {row["account_number"] for row in csv.DictReader(io.StringIO(content.decode()))}


def rate_file(*lines: str) -> bytes:
    """A rate CSV with these lines under the header."""
    return (",".join(HEADER) + "\n" + "".join(line + "\n" for line in lines)).encode()


def upload_rates(browser: Browser, group, content: bytes, mode: str = "replace"):
    """Post a rate file to the group's import form (replacing confirmed)."""
    page = f"{RATES}{group.id}"
    data = {"file": (io.BytesIO(content), "rates.csv"), "mode": mode, "confirm_replace": "y"}
    return browser.post(f"{page}/import", data, token_from=page, content_type="multipart/form-data")


def prefixes(group) -> list[str]:
    """The group's rate prefixes, in order."""
    statement = select(Rate.prefix).where(Rate.rate_group_id == group.id).order_by(Rate.prefix)
    return list(db.session.scalars(statement))


def test_a_large_customer_export_is_a_job_whose_file_is_the_streamed_one(
    app, as_admin, admin, default_rate_group, jobs_for_all
):
    mass_create(admin, {"count": 5, "rate_group_id": default_rate_group.id})
    job = job_of(as_admin.post("/accounts/export", {}, token_from="/accounts/"))
    assert (job.kind, job.status, job.label) == (
        "customer_export",
        JobStatus.DONE,
        "Export of 5 customers",
    )
    assert (job.done, job.total, job.outcome) == (5, 5, {"rows": 5})
    page = page_of(as_admin, job)
    assert "5 rows." in page and "Download customers.csv" in page
    download = as_admin.get(f"/jobs/{job.id}/download")
    assert download.mimetype == "text/csv"
    assert 'filename="customers.csv"' in download.headers["Content-Disposition"]
    assert download.data == as_admin.get("/accounts/export.csv").data
    assert download.data == "".join(export_accounts(admin)).encode()
    # It goes back in: new numbers are drawn for the lines whose number is left empty.
    rows = list(csv.DictReader(io.StringIO(download.data.decode())))
    for row in rows:
        row["account_number"] = ""
    again = io.StringIO()
    writer = csv.DictWriter(again, list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    assert len(import_accounts(admin, again.getvalue()).account_ids) == 5


def test_a_customer_export_job_keeps_the_list_search(app, as_admin, admin, tenants, jobs_for_all):
    for name in ("a", "b"):
        store_search_tokens(tenants[f"{name}_customer"])
    db.session.commit()
    started = as_admin.post("/accounts/export", {"q": "customerb"}, token_from="/accounts/")
    job = job_of(started)
    assert job.kind == "customer_export" and job.label.endswith(" matching “customerb”")
    content = as_admin.get(f"/jobs/{job.id}/download").data
    assert numbers_in(content) == {tenants["b_customer"].account_number}


def test_a_resellers_export_job_holds_only_its_customers_and_is_its_own(app, tenants, jobs_for_all):
    reseller = logged_in(app, tenants["a"])
    job = job_of(reseller.post("/accounts/export", {}, token_from="/accounts/"))
    content = reseller.get(f"/jobs/{job.id}/download").data
    # Its own customer and its sub-reseller's; never reseller B's.
    assert numbers_in(content) == {
        tenants["a_customer"].account_number,
        tenants["a1_customer"].account_number,
    }
    other = logged_in(app, tenants["b"])
    for path in ("", "/progress", "/download"):
        assert other.get(f"/jobs/{job.id}{path}").status_code == 404
    assert job.label not in other.get("/jobs/").get_data(as_text=True)


def test_an_export_job_holds_what_the_actor_sees_when_it_runs(app, tenants):
    job = Job(
        kind="customer_export",
        label="Export",
        started_by_id=tenants["a"].id,
        owner_id=tenants["a"].id,
        params='{"query": ""}',
    )
    db.session.add(job)
    tenants["a1_customer"].deleted_at = utcnow()  # deleted while the job waited
    db.session.commit()
    records.execute(job.id)
    content = records.file_info(job, records.OUTPUT).content
    assert numbers_in(content) == {tenants["a_customer"].account_number}


def test_an_export_whose_worker_died_runs_again(app, admin, default_rate_group):
    mass_create(admin, {"count": 3, "rate_group_id": default_rate_group.id})
    job = Job(
        kind="customer_export",
        label="Export",
        started_by_id=admin.id,
        status=JobStatus.RUNNING,
        attempts=1,
        heartbeat_at=utcnow() - timedelta(seconds=records.STALE_SECONDS + 5),
    )
    db.session.add(job)
    db.session.commit()
    assert records.recover_stale() == (1, 0)
    db.session.expire_all()
    assert job.status == JobStatus.DONE and job.outcome == {"rows": 3}
    assert records.file_info(job, records.OUTPUT).filename == "customers.csv"


def test_a_small_export_streams_at_once_without_a_job(as_admin, default_rate_group):
    group = f"{RATES}{default_rate_group.id}"
    started = as_admin.post(f"{group}/export", {}, token_from=group)
    assert started.status_code == 303 and started.headers["Location"] == f"{group}/export.csv"
    started = as_admin.post("/accounts/export", {}, token_from="/accounts/")
    assert started.status_code == 303 and started.headers["Location"] == "/accounts/export.csv"
    assert db.session.scalar(select(func.count()).select_from(Job)) == 0


def test_a_large_rate_export_is_a_job_whose_file_is_the_streamed_one(
    app, as_admin, default_rate_group, jobs_for_all
):
    db.session.add_all(
        Rate(rate_group_id=default_rate_group.id, **row.__dict__)
        for row in parse_rates(rate_file(*RATE_LINES)).rows
    )
    db.session.commit()
    group = f"{RATES}{default_rate_group.id}"
    job = job_of(as_admin.post(f"{group}/export", {}, token_from=group))
    assert (job.kind, job.status, job.label) == (
        "rate_export",
        JobStatus.DONE,
        "Export of 4 rates of “Default”",
    )
    assert job.outcome == {"rows": 4} and "Download rates-Default.csv" in page_of(as_admin, job)
    download = as_admin.get(f"/jobs/{job.id}/download")
    assert download.data == as_admin.get(f"{group}/export.csv").data
    assert [row.prefix for row in parse_rates(download.data).rows] == ["", "1", "44", "49"]


def test_another_reseller_cannot_export_or_see_a_resellers_rate_export(app, tenants, jobs_for_all):
    reseller = logged_in(app, tenants["a"])
    group = f"{RATES}{tenants['a_group'].id}"
    job = job_of(reseller.post(f"{group}/export", {}, token_from=group))
    assert job.status == JobStatus.DONE and job.owner_id == tenants["a"].id
    assert parse_rates(reseller.get(f"/jobs/{job.id}/download").data).rows[0].prefix == "44"
    other = logged_in(app, tenants["b"])
    assert other.get(f"/jobs/{job.id}").status_code == 404
    assert other.get(f"/jobs/{job.id}/download").status_code == 404
    assert other.post(f"{group}/export", {}, token_from="/jobs/").status_code == 404


def test_a_large_rate_file_with_a_bad_line_fails_its_job_and_saves_nothing(
    app, as_admin, default_rate_group, jobs_for_all
):
    db.session.add(Rate(rate_group_id=default_rate_group.id, prefix="33", destination="France"))
    db.session.commit()
    bad = rate_file(RATE_LINES[0], RATE_LINES[1], "49,Germany,0,abc,60,60")
    job = job_of(upload_rates(as_admin, default_rate_group, bad))
    assert (job.kind, job.status) == ("rate_import", JobStatus.FAILED)
    assert job.error == "Nothing was imported: 1 problem found."
    page = page_of(as_admin, job)
    assert '<td>4</td><td>cost_per_minute</td><td>Enter a number, e.g. 10.50. Got "abc".' in page
    assert prefixes(default_rate_group) == ["33"]  # replacing was all or nothing
    assert db.session.scalar(select(func.count()).select_from(JobFile)) == 0  # the upload too


def test_a_large_rate_file_replaces_the_rates_in_a_job(
    app, as_admin, default_rate_group, jobs_for_all
):
    db.session.add(Rate(rate_group_id=default_rate_group.id, prefix="33", destination="France"))
    db.session.commit()
    job = job_of(upload_rates(as_admin, default_rate_group, rate_file(*RATE_LINES)))
    assert job.status == JobStatus.DONE, job.error
    assert job.label == "Import of rates.csv into “Default” (4 lines)"
    assert job.arguments == {"group_id": default_rate_group.id, "replace": True}
    assert (job.done, job.total) == (4, 4)
    assert "4 rates imported into Default." in re.sub(r"<[^>]+>", "", page_of(as_admin, job))
    assert prefixes(default_rate_group) == ["", "1", "44", "49"]
    merged = job_of(
        upload_rates(
            as_admin, default_rate_group, rate_file("33,F,0,1,1,1", "34,E,0,1,1,1"), "merge"
        )
    )
    assert merged.status == JobStatus.DONE and merged.arguments["replace"] is False
    assert prefixes(default_rate_group) == ["", "1", "33", "34", "44", "49"]


def test_a_small_rate_file_still_imports_at_once(as_admin, default_rate_group, jobs_for_all):
    response = upload_rates(as_admin, default_rate_group, rate_file(RATE_LINES[0]))
    assert response.status_code == 303
    assert response.headers["Location"] == f"{RATES}{default_rate_group.id}"
    assert prefixes(default_rate_group) == ["44"]
    assert db.session.scalar(select(func.count()).select_from(Job)) == 0


def test_replacing_by_a_job_still_needs_the_box_ticked(as_admin, default_rate_group, jobs_for_all):
    page = f"{RATES}{default_rate_group.id}"
    data = {"file": (io.BytesIO(rate_file(*RATE_LINES)), "rates.csv"), "mode": "replace"}
    response = as_admin.post(
        f"{page}/import", data, token_from=page, content_type="multipart/form-data"
    )
    assert response.status_code == 422
    assert db.session.scalar(select(func.count()).select_from(Job)) == 0


def test_a_rate_job_of_a_group_no_longer_visible_fails_clearly(app, tenants):
    job = records.start(
        tenants["a"], "rate_export", "x", params={"group_id": tenants["b_group"].id}
    )
    assert job.status == JobStatus.FAILED
    assert job.error == "The rate group is no longer yours to manage."
