"""A 1,000-line import with chosen passwords on the real consumer, while the call API answers."""

import http.client
import json
import re
import threading
import time
from urllib.parse import urlsplit

from playwright.sync_api import expect

from tests.e2e.conftest import ADMIN, Login, nav
from tests.e2e.steps import (
    account_of,
    add_rate,
    create_account,
    create_api_key,
    download,
    field,
    main,
    rate_group_id,
    read_csv,
    write_csv,
)

IMPORTED = 1000
JOB_PAGE = re.compile(r"/jobs/\d+$")
# 1,000 scrypt hashes take about a minute on a 2-core machine; a stuck job fails long before.
IMPORT_TIMEOUT_S = 600
DESTINATION = "442079460958"
# Not a latency figure (bench/bench_jobs.py measures those): an answer held up behind the
# import's hashing, as when the web workers did it, takes tens of seconds. On SQLite the
# import's one transaction holds the database's single write lock while it inserts, and a
# hang-up waits for it: about a second on a busy 2-core machine (seen: 1.37 s of 4,470).
STARVED_S = 5.0


class Softswitch(threading.Thread):
    """Authorizes and ends calls against the served API until stopped: every answer kept."""

    def __init__(self, url: str, key: str, account: str):
        super().__init__(name="softswitch", daemon=True)
        address = urlsplit(url)
        self.host, self.port = address.hostname, address.port
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self.account = account
        self.answers: list[tuple[str, int | str, float, dict]] = []
        self.stopped = threading.Event()

    def post(self, path: str, body: dict) -> dict:
        """POST `body`; keep (path, status or error, seconds, answer)."""
        connection = http.client.HTTPConnection(self.host, self.port, timeout=30)
        started = time.perf_counter()
        try:
            connection.request("POST", path, json.dumps(body), self.headers)
            response = connection.getresponse()
            status, answer = response.status, json.loads(response.read() or b"{}")
        except (OSError, http.client.HTTPException, ValueError) as error:
            status, answer = f"{type(error).__name__}: {error}", {}
        finally:
            connection.close()
        self.answers.append((path, status, time.perf_counter() - started, answer))
        return answer

    def run(self) -> None:
        serial = 0
        while not self.stopped.is_set():
            serial += 1
            call_id = f"e2e-import-{serial}"
            body = {"call_id": call_id, "account": self.account, "destination": DESTINATION}
            if self.post("/api/v1/calls/authorize", body).get("allowed"):
                self.post(f"/api/v1/calls/{call_id}/end", {"duration_seconds": 30})
            self.stopped.wait(0.05)


def _api_key_and_caller(browse, portal) -> tuple[str, Login, str]:
    """An API key made on its page, a rate for the destination, a postpaid customer, and the
    id of the rate group "Default"."""
    page = browse.page(ADMIN)
    page.goto(portal("/dashboard/"))
    browse.check(page, "Dashboard")
    key = create_api_key(page, "switch")
    browse.check(page, "API keys with a new key")
    nav(page, "Tariff · Rate Groups")
    browse.check(page, "Rate Groups")
    group_id = rate_group_id(page, "Default")
    main(page).get_by_role("link", name="Default", exact=True).click()
    browse.check(page, "Rate group Default")
    add_rate(page, "44", "United Kingdom", "0.01")
    browse.check(page, "Rate group Default with a rate")
    caller, _url = create_account(
        browse,
        ADMIN,
        "customer",
        "Caller",
        "caller@example.com",
        Rate_Group=("select", "Default (USD)"),
        Account_Type=("select", "Postpaid"),
        Credit_Limit="100",
    )
    return key, caller, group_id


def _import_file(group_id: str, tmp_path):
    """The CSV of IMPORTED customers of the rate group `group_id`, each with a chosen password."""
    rows = [
        {
            "first_name": "Imported",
            "last_name": f"Person {n}",
            "email": f"imported{n}@example.com",
            "password": f"Chosen-pass-{n}",
            "rate_group_id": group_id,
        }
        for n in range(IMPORTED)
    ]
    return write_csv(tmp_path / "people.csv", rows, list(rows[0]))


def test_a_big_import_runs_on_the_consumer_while_calls_are_authorized(browse, portal, tmp_path):
    key, caller, group_id = _api_key_and_caller(browse, portal)
    upload = _import_file(group_id, tmp_path)
    page = browse.page(ADMIN)
    page.goto(portal("/dashboard/"))
    nav(page, "Customers")
    browse.check(page, "Customers")
    main(page).get_by_role("link", name="Import CSV").click()
    browse.check(page, "Import customers")
    field(page, "CSV file").set_input_files(upload)
    page.get_by_role("button", name="Import").click()

    # The page answers at once with the job's page; the softswitch calls while the job runs.
    expect(page).to_have_url(JOB_PAGE)
    job_url = page.url
    softswitch = Softswitch(portal.url, key, caller.identifier)
    softswitch.start()
    browse.check(page, "Import job")
    bar = page.locator("#job-bar")
    seen = set()
    deadline = time.monotonic() + IMPORT_TIMEOUT_S
    try:
        while not page.locator("#job-result, #job-error").count():
            assert time.monotonic() < deadline, f"the import did not end; the bar showed {seen}"
            value = int(bar.get_attribute("value"))
            if 0 < value < 100:
                seen.add(value)
            page.wait_for_timeout(250)
    finally:
        softswitch.stopped.set()
        softswitch.join()
    expect(page.locator("#job-result")).to_have_text(f"{IMPORTED:,} customers created.")
    expect(bar).to_have_attribute("value", "100")
    assert len(seen) >= 2, f"the progress bar did not move: {sorted(seen)}"
    browse.check(page, "Import job, done")

    # Every authorization made during the import was answered, none held up behind it.
    authorizations = [a for a in softswitch.answers if a[0].endswith("/authorize")]
    assert len(authorizations) >= 10, softswitch.answers
    problems = [a for a in softswitch.answers if a[1] != 200 or a[2] >= STARVED_S]
    assert not problems, f"{len(problems)} of {len(softswitch.answers)}: {problems[:5]}"
    assert all(answer["allowed"] for _path, _status, _s, answer in authorizations)

    # The credentials: shown once, downloaded, then gone.
    page.locator("#show-credentials").click()
    expect(page.locator("#credentials tbody tr")).to_have_count(IMPORTED)
    browse.check(page, "Import credentials")
    credentials = read_csv(download(page, "Download credentials CSV", tmp_path))
    assert len(credentials) == IMPORTED
    chosen = {row["password"] for row in credentials}
    assert chosen == {f"Chosen-pass-{n}" for n in range(IMPORTED)}
    page.goto(job_url)
    expect(main(page)).to_contain_text("The credentials were shown once (or expired) and are gone")
    expect(page.locator("#show-credentials")).to_have_count(0)
    browse.check(page, "Import job, credentials taken")

    # An imported customer logs in with the password chosen for it.
    first = credentials[0]
    customer = browse.page(Login("customer", first["account_number"], first["password"]))
    customer.goto(portal("/my/"))
    expect(customer.get_by_role("heading", level=1)).to_contain_text(first["account_number"])
    browse.check(customer, "My account (imported)")

    # Another tenant does not find the job.
    reseller = browse.page(account_of(browse, ADMIN, "reseller"))
    assert reseller.request.get(job_url).status == 404
    assert reseller.request.get(job_url + "/progress").status == 404
    reseller.goto(portal("/jobs/"))
    expect(main(reseller)).not_to_contain_text("people.csv")
    browse.check(reseller, "Jobs of the reseller")
