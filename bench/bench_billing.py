"""`billing run` over 100,000 postpaid accounts with 10 ledger entries each (1,000,000 entries)."""

import argparse
import contextlib
import gc
import importlib.util
import multiprocessing
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402
import pymysql  # noqa: E402
from sqlalchemy import event, func, insert, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from werkzeug.security import generate_password_hash  # noqa: E402

from bench.common import (  # noqa: E402
    FAST_HASH,
    make_app,
    mariadb_database,
    mariadb_server,
    migrate,
    postgres_database,
    sqlite_database,
    write_json,
)
from portal.billing import chunk as billing_chunk  # noqa: E402
from portal.billing import run as billing_run  # noqa: E402
from portal.extensions import db  # noqa: E402
from portal.models import (  # noqa: E402
    Account,
    AccountType,
    BillingSchedule,
    Document,
    DocumentKind,
    DocumentLine,
    EntryKind,
    LedgerEntry,
    OutboxMessage,
    Product,
    ProductPeriod,
    Role,
    Status,
    Subscription,
    Tax,
    account_taxes,
)
from portal.rules.currency import minor_units  # noqa: E402


def _words(text: str) -> tuple[str, ...]:
    """The whitespace-separated words of `text`."""
    return tuple(text.split())


# 10:30 UTC is the 26th from Honolulu (00:30) to Auckland (23:30): every account is due today.
NOW_UTC = datetime(2026, 11, 26, 10, 30)
# (country, currency, timezone, weight): many zones, a few far ones, and a 0-decimal currency.
PLACES = (
    ("US", "USD", "America/New_York", 20),
    ("US", "USD", "America/Los_Angeles", 10),
    ("US", "USD", "Pacific/Honolulu", 1),
    ("CA", "CAD", "America/Toronto", 4),
    ("BR", "BRL", "America/Sao_Paulo", 5),
    ("GB", "GBP", "Europe/London", 10),
    ("DE", "EUR", "Europe/Berlin", 10),
    ("FR", "EUR", "Europe/Paris", 8),
    ("ES", "EUR", "Europe/Madrid", 5),
    ("NG", "NGN", "Africa/Lagos", 3),
    ("IN", "INR", "Asia/Kolkata", 8),
    ("JP", "JPY", "Asia/Tokyo", 4),
    ("AU", "AUD", "Australia/Sydney", 4),
    ("NZ", "NZD", "Pacific/Auckland", 2),
)
# Taxes on some accounts: 30 % pay VAT, 10 % of all also a fixed regulatory fee.
TAXES = (
    {"name": "VAT", "rate": Decimal("20"), "fixed_amount": Decimal(0), "priority": 1},
    {
        "name": "Regulatory fee",
        "rate": Decimal("1.5"),
        "fixed_amount": Decimal("0.5"),
        "priority": 2,
    },
)
FIRST_NAMES = _words(
    "James Mary John Patricia Robert Jennifer Michael Linda David Maria Ahmed Fatima Wei Mei "
    "Hiroshi Yuki Olga Ivan Sven Ingrid Pierre Chloe Luca Giulia Pedro Lucia Kwame Amara Ravi Priya"
)
LAST_NAMES = _words(
    "Smith Johnson Garcia Miller Davis Rodriguez Martinez Lee Perez Nguyen Kim Patel Muller "
    "Schmidt Rossi Dubois Silva Santos Tanaka Sato Ivanov Novak Kowalski Nielsen Okafor"
)
DOMAINS = ("gmail.com", "outlook.com", "example.com", "example.net", "web.de", "orange.fr")
BATCH = 2_000  # accounts per core insert (20,000 ledger entries)
MONEY = Decimal("0.00001")  # Numeric(18, 5)
PG_SMALL, PG_LARGE = 10_000, 100_000
ROOT = Path(__file__).resolve().parent.parent
# The account-by-account run (15 statements per invoice) that the chunks replaced: checked out
# of git into a temporary module for the comparison, never a second code path in portal/.
OLD_RUN_COMMIT = "085935a"
# Chunks billed at once in the in-process run (a consumer runs 2 jobs at once by default).
THREADS = 1


def fake_accounts(count: int, per_account: int, seed: int = 1) -> Iterator[tuple]:
    """Yield (account row, its ledger entry rows, its tax indexes) for ids 1..count."""
    rng = random.Random(seed)
    weights = [place[3] for place in PLACES]
    password_hash = generate_password_hash("Customer-passw0rd", method=FAST_HASH)
    for account_id in range(1, count + 1):
        country, currency, zone, _ = rng.choices(PLACES, weights)[0]
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        email = None
        if rng.random() < 0.9:  # the others get no invoice mail
            email = f"{first}.{last}{account_id}@{rng.choice(DOMAINS)}".lower()
        daily = rng.random() < 0.2
        local_day = NOW_UTC.replace(tzinfo=UTC).astimezone(ZoneInfo(zone)).day
        created = NOW_UTC - timedelta(days=rng.randint(60, 2000))
        entries, balance = [], Decimal(0)
        for index in range(per_account):
            if index == 0:  # a monthly fee, then rated calls of a few cents to a few units
                kind, amount, description = EntryKind.CHARGE, Decimal("9.99"), "Monthly fee"
            else:
                kind = EntryKind.USAGE
                amount = Decimal(rng.randint(100, 250_000)) * MONEY
                description = f"Call to +{rng.randint(10**10, 10**11 - 1)}"
            balance += amount
            entries.append(
                {
                    "account_id": account_id,
                    "kind": kind,
                    "amount": amount,
                    "currency": currency,
                    "description": description,
                    "author_id": None,
                    # Between 30 days and 2 days before the run: before every local cut-off.
                    "created_at": NOW_UTC - timedelta(seconds=rng.randint(2 * 86400, 30 * 86400)),
                    "document_id": None,
                }
            )
        taxes = []
        if rng.random() < 0.3:
            taxes = [0, 1] if rng.random() < 1 / 3 else [0]
        row = {
            "id": account_id,
            "account_number": str(7_000_000_000 + account_id),
            "role": Role.CUSTOMER,
            "reseller_id": None,
            "tenant_path": "",
            "email": email,
            "password_hash": password_hash,
            "session_token": f"{account_id:032x}",
            "pin": None,
            "first_name": first,
            "last_name": last,
            "company": "",
            "telephone": None,
            "country": country,
            "timezone": zone,
            "status": Status.ACTIVE,
            "max_channels": 2,
            "number_translation": "",
            "first_used": created,
            "expiry_date": None,
            "valid_days": 3650,
            "rate_group_id": None,
            "billing_schedule": BillingSchedule.DAILY if daily else BillingSchedule.MONTHLY,
            "billing_day": None if daily else local_day,
            "currency": currency,
            "account_type": AccountType.POSTPAID,
            "credit_limit": Decimal(rng.choice((100, 500, 1000))),
            "balance": balance,  # the sum of its entries, as post() keeps it
            "low_balance_alert": Decimal(0),
            "email_alerts": False,
            "low_balance_alerted": False,
            "created_at": created,
            "updated_at": created,
            "deleted_at": None,
        }
        yield row, entries, taxes


def bulk_load(count: int, per_account: int) -> float:
    """Insert the taxes, `count` accounts and their entries with core inserts; return seconds."""
    started = time.perf_counter()
    taxes = [Tax(status=Status.ACTIVE, **values) for values in TAXES]
    db.session.add_all(taxes)
    db.session.commit()
    tax_ids = [tax.id for tax in taxes]
    connection = db.session.connection()
    accounts, entries, links = [], [], []

    def flush() -> None:
        if accounts:
            connection.execute(insert(Account.__table__), accounts)
            connection.execute(insert(LedgerEntry.__table__), entries)
            if links:
                connection.execute(insert(account_taxes), links)
        accounts.clear()
        entries.clear()
        links.clear()

    for row, rows, tax_indexes in fake_accounts(count, per_account):
        accounts.append(row)
        entries.extend(rows)
        links.extend({"account_id": row["id"], "tax_id": tax_ids[i]} for i in tax_indexes)
        if len(accounts) >= BATCH:
            flush()
    flush()
    db.session.commit()
    if db.engine.dialect.name == "postgresql":
        # The explicit ids left the sequence at 1; then what autovacuum does after a bulk load.
        db.session.execute(text("SELECT setval('accounts_id_seq', (SELECT max(id) FROM accounts))"))
        db.session.commit()
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as autocommit:
            autocommit.exec_driver_sql("VACUUM ANALYZE")
    return time.perf_counter() - started


@contextlib.contextmanager
def cloned(url: str) -> Iterator[str]:
    """A copy of the (disposed) database at `url`, removed after: a file copy or a template."""
    parsed = make_url(url)
    if parsed.drivername.startswith("sqlite"):
        copy = parsed.database + ".copy"
        shutil.copyfile(parsed.database, copy)
        try:
            yield parsed.set(database=copy).render_as_string(hide_password=False)
        finally:
            Path(copy).unlink(missing_ok=True)
        return
    name = parsed.database + "_copy"
    if parsed.get_backend_name() == "mysql":
        with _mariadb_copy(url, name):
            yield parsed.set(database=name).render_as_string(hide_password=False)
        return
    server = parsed.set(drivername="postgresql", database="postgres").render_as_string(False)
    with psycopg.connect(server, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}" TEMPLATE "{parsed.database}"')
    try:
        yield parsed.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(server, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def _mariadb_copy(url: str, name: str) -> Iterator[None]:
    """MariaDB has no template databases: each table copied into `name`, dropped after."""
    source = make_url(url).database
    server = mariadb_server(url)
    with pymysql.connect(**server) as connection, connection.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_nopad_bin")
        cursor.execute("SET SESSION foreign_key_checks = 0")  # tables in any order
        cursor.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (source,)
        )
        for (table,) in cursor.fetchall():
            cursor.execute(f"CREATE TABLE `{name}`.`{table}` LIKE `{source}`.`{table}`")
            copy = f"INSERT INTO `{name}`.`{table}` SELECT * FROM `{source}`.`{table}`"  # noqa: S608
            cursor.execute(copy)  # the names come from information_schema
    try:
        yield
    finally:
        with pymysql.connect(**server) as connection, connection.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")


def _rss_kb(field: str) -> int:
    """VmRSS or VmHWM (peak RSS) of this process in kB, from /proc (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _reset_peak_rss() -> bool:
    """Set VmHWM back to the current RSS (Linux >= 4.0); False where that is not allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
    except OSError:
        return False
    return True


def examine_only(app) -> float:
    """Baseline: stream the accounts in batches as the run does and take their local dates."""
    with app.app_context():
        start = time.perf_counter()
        for batch in billing_run._billed_accounts(AccountType.POSTPAID, 500):
            for account in batch:
                billing_run.local_date(account, NOW_UTC)
        seconds = time.perf_counter() - start
        db.session.remove()
    return seconds


def bill(app, trace: bool = False, runner=None) -> dict:
    """Run the billing once at NOW_UTC: seconds, its report, SQL statements and memory."""
    statements = 0

    def count(*_args) -> None:
        nonlocal statements
        statements += 1

    with app.app_context():
        engine = db.engine
        event.listen(engine, "before_cursor_execute", count)
        gc.collect()
        rss_reset = _reset_peak_rss()
        rss_before = _rss_kb("VmRSS")
        maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if trace:
            tracemalloc.start()  # slows Python code several times: a separate run from the timing
        start, cpu = time.perf_counter(), time.process_time()
        if runner is None:
            report = billing_run.run_billing(now_utc=NOW_UTC, threads=THREADS)
        else:
            report = runner(now_utc=NOW_UTC)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        traced_peak = 0.0
        if trace:
            traced_peak = tracemalloc.get_traced_memory()[1] / 1e6
            tracemalloc.stop()
        if rss_reset:
            rss_growth = (_rss_kb("VmHWM") - rss_before) / 1024
        else:  # only growth beyond the earlier peak shows
            rss_growth = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - maxrss_before) / 1024
        event.remove(engine, "before_cursor_execute", count)
        db.session.remove()
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "examined": report.examined,
        "invoiced": report.invoiced,
        "skipped": report.skipped,
        "failed": len(report.failed),
        "subscription_charges": getattr(report, "subscription_charges", 0),
        "first_failure": report.failed[0] if report.failed else None,
        "mails": len(report.mail_ids),
        "statements": statements,
        "rss_growth_mb": rss_growth,
        "traced_peak_mb": traced_peak,
    }


def old_run_billing():
    """run_billing of the account-by-account code, loaded from git into a temporary module."""
    source = subprocess.run(  # noqa: S603 (our own command line)
        ["git", "-C", str(ROOT), "show", f"{OLD_RUN_COMMIT}:portal/billing/run.py"],  # noqa: S607
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # Since payment allocations an invoice's status is derived, not passed or assigned.
    source = source.replace("            status=DocumentStatus.UNPAID,\n", "").replace(
        "        if invoice.total <= 0:\n            invoice.status = DocumentStatus.PAID\n", ""
    )
    path = Path(tempfile.mkdtemp(prefix="portal-old-run-")) / "old_billing_run.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("old_billing_run", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.run_billing


# A consumer as `make run` starts it: `flask jobs worker --workers 2`, one process whose two
# worker threads each take the next chunk task (while one waits for the database, the other
# computes). CONSUMER_THREADS is that --workers.
CONSUMER_THREADS = 2
# (processes, threads each) of the consumer runs: one worker thread, then as shipped, 1 and 2.
CONSUMER_RUNS = ((1, 1), (1, CONSUMER_THREADS), (2, CONSUMER_THREADS))


def _consumer(url: str, threads: int, tasks, done) -> None:
    """A consumer process: its own app and connections, `threads` workers taking chunks."""
    app = make_app(url, hash_method=FAST_HASH)
    done.put(0)  # started

    def work() -> None:
        while (due := tasks.get()) is not None:
            with app.app_context():
                done.put(billing_chunk.bill(due).invoiced)
                db.session.remove()

    with ThreadPoolExecutor(threads) as pool:
        for _ in range(threads):
            pool.submit(work)


def bill_with_consumers(url: str, consumers: int, threads: int = CONSUMER_THREADS) -> dict:
    """Plan the run, then bill its chunks on `consumers` processes (started before the clock)."""
    spawn = multiprocessing.get_context("spawn")
    tasks, done = spawn.Queue(), spawn.Queue()
    processes = [
        spawn.Process(target=_consumer, args=(url, threads, tasks, done)) for _ in range(consumers)
    ]
    for process in processes:
        process.start()
    for _ in processes:
        done.get()
    app = make_app(url, hash_method=FAST_HASH)
    with app.app_context():
        start = time.perf_counter()
        planned = billing_run.plan(now_utc=NOW_UTC)
        db.session.remove()
    for due in planned.chunks:
        tasks.put(due)
    for _ in range(consumers * threads):
        tasks.put(None)
    invoiced = sum(done.get() for _ in planned.chunks)
    seconds = time.perf_counter() - start
    for process in processes:
        process.join()
    with app.app_context():
        db.engine.dispose()
    return {"consumers": consumers, "threads": threads, "seconds": seconds, "invoiced": invoiced}


def expected_taxes(subtotal: Decimal, taxes: list, currency: str) -> Decimal:
    """An invoice's tax, computed here on its own: each line rounded once, half-up, to 2 places
    (the default tax rounding setting) or to fewer if the currency has fewer (JPY: 0)."""
    step = Decimal(1).scaleb(-min(2, minor_units(currency)))
    return sum(
        (
            (subtotal * tax.rate / 100 + tax.fixed_amount).quantize(step, ROUND_HALF_UP)
            for tax in taxes
        ),
        Decimal(0),
    )


def verify(app, count: int, per_account: int) -> dict:
    """Check the run: one invoice per account, exact totals and balances, numbers 1..N."""
    with app.app_context():
        session = db.session
        invoices = session.execute(
            select(
                Document.id,
                Document.account_id,
                Document.issuer_key,
                Document.number,
                Document.subtotal,
                Document.tax_total,
                Document.total,
            ).where(Document.kind == DocumentKind.INVOICE)
        ).all()
        assert len(invoices) == count, f"{len(invoices):,} invoices for {count:,} accounts"
        by_account = {row.account_id: row for row in invoices}
        assert len(by_account) == count, "an account has two invoices"
        assert {row.issuer_key for row in invoices} == {0}, "not all numbered by the admins"
        numbers = sorted(row.number for row in invoices)
        assert numbers == list(range(1, count + 1)), "invoice numbers are not 1..N without gaps"

        billed: dict[int, Decimal] = defaultdict(Decimal)
        taxed: dict[int, Decimal] = defaultdict(Decimal)
        ledger: dict[int, Decimal] = defaultdict(Decimal)
        items = 0
        columns = (LedgerEntry.account_id, LedgerEntry.kind, LedgerEntry.amount)
        for account_id, kind, amount, document_id in session.execute(
            select(*columns, LedgerEntry.document_id)
        ):
            ledger[account_id] += amount
            assert document_id == by_account[account_id].id, f"entry of {account_id} not billed"
            if kind == EntryKind.TAX:
                taxed[account_id] += amount
            else:
                billed[account_id] += amount
                items += kind != EntryKind.ROUNDING  # to the cent: the rounded lines' sum
        assert items == count * per_account, f"{items:,} billed entries"

        line_sums = dict(
            session.execute(
                select(DocumentLine.document_id, func.sum(DocumentLine.amount)).group_by(
                    DocumentLine.document_id
                )
            ).all()
        )
        taxes = {tax.id: tax for tax in session.scalars(select(Tax))}
        account_tax_list: dict[int, list] = defaultdict(list)
        for account_id, tax_id in session.execute(select(account_taxes)):
            account_tax_list[account_id].append(taxes[tax_id])
        with_tax = 0
        for account_id, balance, currency in session.execute(
            select(Account.id, Account.balance, Account.currency)
        ):
            invoice = by_account[account_id]
            tax = expected_taxes(invoice.subtotal, account_tax_list[account_id], currency)
            with_tax += tax > 0
            assert invoice.subtotal == billed[account_id], f"subtotal of {account_id}"
            assert invoice.tax_total == taxed[account_id] == tax, f"tax of {account_id}"
            assert invoice.total == invoice.subtotal + invoice.tax_total, f"total of {account_id}"
            # SUM over Numeric is a float on SQLite: compared at the column's 5 places.
            lines = Decimal(str(line_sums[invoice.id])).quantize(MONEY)
            assert lines == invoice.total, f"lines of {account_id}"
            assert balance == ledger[account_id], f"balance of {account_id} != its entries"
        outbox = session.scalar(select(func.count()).select_from(OutboxMessage))
        emails = session.scalar(select(func.count(Account.email)))
        assert outbox == emails, f"{outbox:,} invoice mails for {emails:,} e-mail addresses"
        session.remove()
    return {"with_tax": with_tax, "mails": outbox}


def run_size(
    database, label: str, count: int, per_account: int, trace: bool, old: bool, consumers: bool
) -> dict:
    """Load `count` accounts; time the baseline and the billing run; verify; bill again."""
    with database() as url:
        app = make_app(url, hash_method=FAST_HASH)
        migrate(app)
        with app.app_context():
            load_seconds = bulk_load(count, per_account)
            db.session.remove()
            db.engine.dispose()  # no connection left: the file can be copied (or be a template)
        previous = None
        if old:  # the old code on a copy of the same accounts
            with cloned(url) as old_url:
                old_app = make_app(old_url, hash_method=FAST_HASH)
                previous = bill(old_app, runner=old_run_billing())
                assert previous["invoiced"] == count, previous
                with old_app.app_context():
                    db.engine.dispose()
        parallel = []
        if consumers:  # 1 and 2 consumer processes, each on its own copy
            for processes, threads in CONSUMER_RUNS:
                with cloned(url) as copy_url:
                    parallel.append(bill_with_consumers(copy_url, processes, threads))
                    assert parallel[-1]["invoiced"] == count, parallel[-1]
        with cloned(url) if trace else contextlib.nullcontext() as traced_url:
            baseline = examine_only(app)
            first = bill(app)
            assert first["failed"] == 0, first["first_failure"]
            assert first["invoiced"] == count, f"{first['invoiced']:,} invoiced"
            checks = verify(app, count, per_account)
            second = bill(app)
            assert second["invoiced"] == 0 and second["failed"] == 0, second
            with app.app_context():
                db.engine.dispose()
            traced = None
            if trace:
                traced_app = make_app(traced_url, hash_method=FAST_HASH)
                traced = bill(traced_app, trace=True)
                assert traced["invoiced"] == count, traced
                with traced_app.app_context():
                    db.engine.dispose()
    result = {
        "backend": label,
        "accounts": count,
        "entries": count * per_account,
        "load_seconds": load_seconds,
        "examine_seconds": baseline,
        "first": first,
        "second": second,
        "traced": traced,
        "old": previous,
        "consumers": parallel,
        **checks,
    }
    seconds, cpu = first["seconds"], first["cpu_seconds"]
    traced_text = f"; traced run: peak {traced['traced_peak_mb']:.1f} MB" if traced else ""
    print(
        f"{label} {count:,} accounts, {count * per_account:,} entries (loaded in "
        f"{load_seconds:.1f} s)\n"
        f"  billing run   {seconds:7.1f} s ({cpu:.1f} s CPU) = {count / seconds:.0f} invoices/s; "
        f"{seconds / count * 1000:.2f} ms and {first['statements'] / count:.1f} SQL statements "
        f"per invoice; peak RSS growth {first['rss_growth_mb']:.1f} MB{traced_text}\n"
        f"  second run    {second['seconds']:7.2f} s ({second['cpu_seconds']:.1f} s CPU) = "
        f"{count / second['seconds']:.0f} accounts/s, 0 invoices\n"
        f"  baseline      {baseline:7.2f} s: stream the accounts as the run does, bill none\n"
        f"  checked: {count:,} invoices numbered 1..{count:,} ({checks['with_tax']:,} with tax, "
        f"{checks['mails']:,} mails), totals and balances exact"
    )
    if previous:
        print(
            f"  old code      {previous['seconds']:7.1f} s = {count / previous['seconds']:.0f} "
            f"invoices/s, {previous['statements'] / count:.1f} SQL per invoice: the chunks are "
            f"{previous['seconds'] / seconds:.1f}x faster"
        )
    for run_ in parallel:
        print(
            f"  {run_['consumers']} consumer(s) of {run_['threads']} threads  "
            f"{run_['seconds']:7.1f} s = "
            f"{count / run_['seconds']:.0f} invoices/s (processes, plan included)"
        )
    if len(parallel) == len(CONSUMER_RUNS):
        one_thread, one, two = (run_["seconds"] for run_ in parallel)
        print(
            f"  2 consumers / 1: {one / two:.2f}x the rate; 1 consumer of 2 threads / of 1: "
            f"{one_thread / one:.2f}x"
        )
    return result


def run(database, label: str, sizes: list[int], per_account: int, trace: bool, args) -> dict:
    """Both sizes on one backend, and how time and memory scale between them."""
    print(
        f"\n== {label}: billing run at {NOW_UTC:%Y-%m-%d %H:%M} UTC, {per_account} entries each =="
    )
    postgres = label == "PostgreSQL"
    small = run_size(database, label, sizes[0], per_account, trace, not args.no_old, False)
    large = run_size(
        database, label, sizes[1], per_account, trace, False, postgres and not args.no_consumers
    )
    scale = large["accounts"] / small["accounts"]

    def ratio(key: str) -> float:
        return large["first"][key] / small["first"][key]

    ratios = {
        "time_ratio": ratio("seconds"),
        "cpu_ratio": ratio("cpu_seconds"),
        "second_ratio": large["second"]["seconds"] / small["second"]["seconds"],
        "examine_ratio": large["examine_seconds"] / small["examine_seconds"],
    }
    print(
        f"scaling {small['accounts']:,} -> {large['accounts']:,} accounts ({scale:.0f}x, linear "
        f"= {scale:.0f}): billing run {ratios['time_ratio']:.1f}x ({ratios['cpu_ratio']:.1f}x "
        f"CPU), second run {ratios['second_ratio']:.1f}x, baseline {ratios['examine_ratio']:.1f}x;"
        f" peak RSS growth {small['first']['rss_growth_mb']:.1f} -> "
        f"{large['first']['rss_growth_mb']:.1f} MB"
    )
    return {"backend": label, "small": small, "large": large, "scale": scale, **ratios}


def add_subscriptions(count: int, setup_fee: Decimal = Decimal(0)) -> float:
    """One monthly product per currency, and one subscription of each account to its own."""
    started = time.perf_counter()
    currencies = sorted({place[1] for place in PLACES})
    products = {
        currency: Product(
            name=f"Line rental {currency}",
            currency=currency,
            period=ProductPeriod.MONTHLY,
            price=Decimal("10"),
            setup_fee=setup_fee,
        )
        for currency in currencies
    }
    db.session.add_all(products.values())
    db.session.commit()
    connection = db.session.connection()
    # Started on the 1st of the run's month: the run charges November once (and the setup fee).
    start = NOW_UTC.date().replace(day=1)
    rows = db.session.execute(select(Account.id, Account.currency).order_by(Account.id)).all()
    for first in range(0, len(rows), BATCH):
        connection.execute(
            insert(Subscription.__table__),
            [
                {
                    "account_id": account_id,
                    "product_id": products[currency].id,
                    "start_date": start,
                    "created_at": NOW_UTC,
                }
                for account_id, currency in rows[first : first + BATCH]
            ],
        )
    db.session.commit()
    assert len(rows) == count
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as autocommit:
            autocommit.exec_driver_sql("VACUUM ANALYZE")
    return time.perf_counter() - started


def _subscription_round(url: str, mode: str, count: int, label: str, setup_fee: Decimal) -> float:
    """One billing run on a copy, `mode` "with" (one subscription each) or "without"."""
    copy = make_app(url, hash_method=FAST_HASH)
    extra = 0.0
    if mode == "with":
        with copy.app_context():
            extra = add_subscriptions(count, setup_fee)
            db.session.remove()
    result = bill(copy)
    assert result["failed"] == 0, result["first_failure"]
    assert result["invoiced"] == count, result
    assert result["subscription_charges"] == (count if mode == "with" else 0), result
    with copy.app_context():
        if mode == "with":
            kind = LedgerEntry.kind == EntryKind.SUBSCRIPTION
            charged = db.session.scalar(select(func.count()).where(kind))
            assert charged == (2 if setup_fee else 1) * count, charged  # price (and setup fee)
            again = billing_run.run_billing(now_utc=NOW_UTC)
            assert again.subscription_charges == 0, "charged twice"
        db.session.remove()
        db.engine.dispose()
    loaded = f"; subscriptions loaded in {extra:.1f} s" if extra else ""
    print(
        f"  {label}: {mode:7} subscriptions {result['seconds']:7.1f} s "
        f"({result['cpu_seconds']:.1f} s CPU, {result['statements']:,} SQL){loaded}",
        flush=True,
    )
    return result["seconds"]


def run_subscriptions(
    database, label: str, count: int, per_account: int, setup_fee: Decimal
) -> dict:
    """The billing run over `count` accounts without subscriptions, and with one each."""
    with database() as url:
        app = make_app(url, hash_method=FAST_HASH)
        migrate(app)
        with app.app_context():
            load_seconds = bulk_load(count, per_account)
            db.session.remove()
            db.engine.dispose()
        timings: dict[str, list[float]] = {}
        # Each run on its own copy of the same accounts, taking turns twice: a machine that
        # gets busier or quieter moves both alike.
        for round_, modes in ((1, ("without", "with")), (2, ("with", "without"))):
            for mode in modes:
                with cloned(url) as copy_url:
                    seconds = _subscription_round(
                        copy_url, mode, count, f"{label} {round_}", setup_fee
                    )
                timings.setdefault(mode, []).append(seconds)
    without, with_ = min(timings["without"]), min(timings["with"])
    ratio = with_ / without
    print(
        f"{label} {count:,} accounts (loaded in {load_seconds:.1f} s): billing run "
        f"{without:.1f} s without subscriptions, {with_:.1f} s with one each, setup fee "
        f"{setup_fee} (best of 2): {ratio:.2f}x (target <= 1.3x)"
    )
    return {
        "backend": label,
        "accounts": count,
        "without_seconds": timings["without"],
        "with_seconds": timings["with"],
        "setup_fee": str(setup_fee),
        "ratio": ratio,
    }


def main(argv: list[str] | None = None) -> list[dict]:
    """Parse arguments and run on SQLite (and PostgreSQL with --postgres, MariaDB --mariadb)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", type=int, default=10_000, help="accounts in the small run")
    parser.add_argument("--large", type=int, default=100_000, help="accounts in the large run")
    parser.add_argument("--entries", type=int, default=10, help="ledger entries per account")
    parser.add_argument("--postgres", action="store_true", help="also run on PostgreSQL")
    parser.add_argument("--pg-small", type=int, default=PG_SMALL, help="small run, PostgreSQL")
    parser.add_argument("--pg-large", type=int, default=PG_LARGE, help="large run, PostgreSQL")
    parser.add_argument("--mariadb", action="store_true", help="also run on MariaDB")
    parser.add_argument("--maria-small", type=int, default=PG_SMALL, help="small run, MariaDB")
    parser.add_argument("--maria-large", type=int, default=PG_LARGE, help="large run, MariaDB")
    parser.add_argument(
        "--trace",
        action="store_true",
        help="also bill a copy of each database under tracemalloc (about 5x slower)",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--no-old", action="store_true", help="skip the old code's small run")
    parser.add_argument(
        "--no-consumers", action="store_true", help="skip 1 and 2 consumer processes (PostgreSQL)"
    )
    parser.add_argument("--no-sqlite", action="store_true", help="only PostgreSQL")
    parser.add_argument("--threads", type=int, default=1, help="chunks at once, in-process")
    parser.add_argument(
        "--subscriptions",
        action="store_true",
        help="only: the run over --large accounts without and with one subscription each",
    )
    parser.add_argument(
        "--setup-fee",
        type=Decimal,
        default=Decimal(0),
        help="--subscriptions: the products' setup fee (not 0: a second entry per account)",
    )
    args = parser.parse_args(argv)
    global THREADS
    THREADS = args.threads
    results = []
    if args.subscriptions:
        if not args.no_sqlite:
            results.append(
                run_subscriptions(
                    sqlite_database, "SQLite", args.large, args.entries, args.setup_fee
                )
            )
        if args.postgres:
            results.append(
                run_subscriptions(
                    postgres_database, "PostgreSQL", args.pg_large, args.entries, args.setup_fee
                )
            )
        if args.mariadb:
            results.append(
                run_subscriptions(
                    mariadb_database, "MariaDB", args.maria_large, args.entries, args.setup_fee
                )
            )
        write_json(args.json, results)
        return results
    if not args.no_sqlite:
        sizes = [args.small, args.large]
        results.append(run(sqlite_database, "SQLite", sizes, args.entries, args.trace, args))
    if args.postgres:
        sizes = [args.pg_small, args.pg_large]
        results.append(run(postgres_database, "PostgreSQL", sizes, args.entries, args.trace, args))
    if args.mariadb:
        sizes = [args.maria_small, args.maria_large]
        results.append(run(mariadb_database, "MariaDB", sizes, args.entries, args.trace, args))
    write_json(args.json, results)
    return results


if __name__ == "__main__":
    main()
