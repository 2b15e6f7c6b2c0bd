"""Benchmark the accounts list (first page, keyset page, search) at 1,000 and 100,000 accounts."""

import argparse
import contextlib
import functools
import random
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlencode

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import exists, func, insert, select  # noqa: E402
from werkzeug.security import generate_password_hash  # noqa: E402

from bench.common import (  # noqa: E402
    FAST_HASH,
    captured_sql,
    login,
    make_app,
    migrate,
    postgres_database,
    sqlite_database,
    summary,
    timed_round_robin,
    write_json,
)
from portal.accounts.queries import prefix_condition, search_accounts, search_words  # noqa: E402
from portal.accounts.service import create_admin, search_tokens  # noqa: E402
from portal.extensions import db  # noqa: E402
from portal.models import (  # noqa: E402
    Account,
    AccountSearchToken,
    AccountType,
    BillingSchedule,
    RateGroup,
    Role,
    Status,
)
from portal.security import visible_customers  # noqa: E402
from portal.tariffs.service import ensure_default_rate_group  # noqa: E402


def _words(text: str) -> tuple[str, ...]:
    """The whitespace-separated words of `text`."""
    return tuple(text.split())


FIRST_NAMES = _words(
    "James Mary John Patricia Robert Jennifer Michael Linda William Elizabeth David Barbara "
    "Richard Susan Joseph Jessica Thomas Sarah Charles Karen Christopher Lisa Daniel Nancy "
    "Matthew Betty Anthony Margaret Mark Sandra Donald Ashley Steven Kimberly Paul Emily Andrew "
    "Donna Joshua Michelle Kenneth Carol Kevin Amanda Brian Dorothy George Melissa Timothy "
    "Deborah Ronald Stephanie Edward Rebecca Jason Sharon Jeffrey Laura Ryan Cynthia Jacob "
    "Kathleen Gary Amy Nicholas Angela Eric Shirley Jonathan Anna Stephen Brenda Larry Pamela "
    "Justin Emma Scott Nicole Brandon Helen Benjamin Samantha Samuel Katherine Gregory Christine "
    "Alexander Debra Frank Rachel Patrick Carolyn Raymond Janet Jack Catherine Dennis Maria "
    "Jerry Heather Tyler Diane Aaron Ruth Jose Julie Adam Olivia Nathan Joyce Henry Virginia "
    "Ahmed Fatima Wei Mei Hiroshi Yuki Olga Ivan Sven Ingrid Pierre Chloe Luca Giulia Pedro "
    "Lucia Kwame Amara Ravi Priya"
)
LAST_NAMES = _words(
    "Smith Johnson Williams Brown Jones Garcia Miller Davis Rodriguez Martinez Hernandez "
    "Lopez Gonzalez Wilson Anderson Thomas Taylor Moore Jackson Martin Lee Perez Thompson "
    "White Harris Sanchez Clark Ramirez Lewis Robinson Walker Young Allen King Wright Scott "
    "Torres Nguyen Hill Flores Green Adams Nelson Baker Hall Rivera Campbell Mitchell Carter "
    "Roberts Gomez Phillips Evans Turner Diaz Parker Cruz Edwards Collins Reyes Stewart Morris "
    "Morales Murphy Cook Rogers Gutierrez Ortiz Morgan Cooper Peterson Bailey Reed Kelly "
    "Howard Ramos Kim Cox Ward Richardson Watson Brooks Chavez Wood James Bennett Gray Mendoza "
    "Ruiz Hughes Price Alvarez Castillo Sanders Patel Myers Long Ross Foster Jimenez Muller "
    "Schmidt Schneider Fischer Weber Rossi Russo Ferrari Dubois Moreau Laurent Silva Santos "
    "Oliveira Tanaka Suzuki Sato Ivanov Petrov Novak Kowalski Nielsen Hansen Larsen Okafor"
)
COMPANY_WORDS = _words(
    "Acme Global Blue Red Northern Southern Pacific Atlantic Alpha Omega Summit Pioneer "
    "Liberty Vertex Nova Apex Prime United Metro Coastal Silver Golden Rapid Bright Green "
    "Urban Delta Sigma Orion Falcon Eagle Crown Harbor River Valley Mountain Sun Star"
)
COMPANY_KINDS = _words("Telecom Networks Solutions Trading Logistics Media Systems Labs Group")
COMPANY_SUFFIXES = ("Ltd", "Inc", "LLC", "GmbH", "SA", "BV", "")
DOMAINS = _words(
    "gmail.com yahoo.com outlook.com example.com example.net mail.example.org "
    "proton.me icloud.com web.de orange.fr"
)
COUNTRIES = ("US", "GB", "DE", "FR", "ES", "IT", "NL", "IN", "BR", "JP", "NG", "CA")
CURRENCIES = ("USD", "GBP", "EUR", "EUR", "EUR", "EUR", "EUR", "INR", "BRL", "JPY", "NGN", "CAD")
TIMEZONES = (
    "America/New_York",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Paris",
    "Europe/Madrid",
    "Europe/Rome",
    "Europe/Amsterdam",
    "Asia/Kolkata",
    "America/Sao_Paulo",
    "Asia/Tokyo",
    "Africa/Lagos",
    "America/Toronto",
)
RARE_WORD = "zyskowski"  # planted in RARE_COUNT accounts spread over the whole id range
RARE_COUNT = 5
COMMON_PREFIX = "ma"  # Maria, Mark, Martin, Martinez, Matthew, ... and many e-mails
TWO_WORDS = "maria smith"  # each word is common (about 0.75 %), both together are rare
BATCH = 5000


def fake_accounts(count: int, first_id: int, rate_group_id: int, seed: int = 1):
    """Yield `count` realistic customer rows with ids from `first_id`, oldest first."""
    rng = random.Random(seed)
    start = datetime(2020, 1, 1)
    step = timedelta(seconds=(6 * 365 * 86400) // max(count, 1))
    rare_at = {count * k // RARE_COUNT + count // (2 * RARE_COUNT) for k in range(RARE_COUNT)}
    numbers: set[str] = set()
    password_hash = generate_password_hash("Customer-passw0rd", method=FAST_HASH)
    for index in range(count):
        first = rng.choice(FIRST_NAMES)
        last = RARE_WORD.capitalize() if index in rare_at else rng.choice(LAST_NAMES)
        company = ""
        if rng.random() < 0.6:
            company = " ".join(
                w
                for w in (
                    rng.choice(COMPANY_WORDS),
                    rng.choice(COMPANY_KINDS),
                    rng.choice(COMPANY_SUFFIXES),
                )
                if w
            )
        email = None
        if rng.random() < 0.9:
            email = f"{first}.{last}{index}@{rng.choice(DOMAINS)}".lower()
        while True:
            number = str(rng.randint(1_000_000_000, 9_999_999_999))
            if number not in numbers:
                numbers.add(number)
                break
        place = rng.randrange(len(COUNTRIES))
        postpaid = rng.random() < 0.3
        created = start + step * index
        yield {
            "id": first_id + index,
            "account_number": number,
            "role": Role.CUSTOMER,
            "reseller_id": None,
            "email": email,
            "password_hash": password_hash,
            "pin": f"{rng.randrange(10**6):06d}",
            "first_name": first,
            "last_name": last,
            "company": company,
            "telephone": None,
            "country": COUNTRIES[place],
            "timezone": TIMEZONES[place],
            "status": Status.ACTIVE if rng.random() < 0.95 else Status.INACTIVE,
            "max_channels": rng.choice((0, 1, 2, 5, 10)),
            "number_translation": "",
            "first_used": None,
            "expiry_date": created + timedelta(days=3650),
            "valid_days": 3650,
            "rate_group_id": rate_group_id,
            "billing_schedule": BillingSchedule.MONTHLY,
            "billing_day": rng.randint(1, 28),
            "currency": CURRENCIES[place],
            "account_type": AccountType.POSTPAID if postpaid else AccountType.PREPAID,
            "credit_limit": Decimal(rng.choice((100, 500, 1000))) if postpaid else Decimal(0),
            "balance": Decimal(rng.randrange(0, 100000)) / 100,
            "low_balance_alert": Decimal(0),
            "email_alerts": email is not None and rng.random() < 0.3,
            "created_at": created,
            "updated_at": created,
            "deleted_at": created + timedelta(days=30) if rng.random() < 0.02 else None,
        }


def bulk_load(count: int, rate_group_id: int) -> float:
    """Insert `count` customers and their search tokens with core inserts; return seconds taken."""
    started = time.perf_counter()
    first_id = (db.session.scalar(select(func.max(Account.id))) or 0) + 1
    accounts, tokens = [], []
    account_insert = insert(Account.__table__)
    token_insert = insert(AccountSearchToken.__table__)
    connection = db.session.connection()

    def flush() -> None:
        if accounts:
            connection.execute(account_insert, accounts)
            connection.execute(token_insert, tokens)
        accounts.clear()
        tokens.clear()

    for row in fake_accounts(count, first_id, rate_group_id):
        accounts.append(row)
        # The same words the service stores (search_tokens reads only these attributes).
        words = search_tokens(SimpleNamespace(**row))
        tokens.extend({"account_id": row["id"], "token": word} for word in words)
        if len(accounts) >= BATCH:
            flush()
    flush()
    db.session.commit()
    if db.engine.dialect.name == "postgresql":
        # What autovacuum does soon after a bulk load: statistics and the visibility map.
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE")
    return time.perf_counter() - started


def matching_accounts(query: str) -> int:
    """How many listed customers the search box `query` finds (for the report)."""
    statement = select(func.count()).where(
        Account.role == Role.CUSTOMER, Account.deleted_at.is_(None)
    )
    for word in search_words(query):
        statement = statement.where(
            exists().where(AccountSearchToken.account_id == Account.id, *prefix_condition(word))
        )
    return db.session.scalar(statement)


def list_statement(app, client, url: str) -> tuple[str, object]:
    """The SQL statement (and its parameters) that the accounts list runs for `url`."""
    with captured_sql(app) as seen:
        client.get(url)
    for statement, parameters in seen:
        if "ORDER BY accounts.id DESC" in statement:
            return statement, parameters
    raise RuntimeError(f"no list query seen for {url}")


def explain(app, statement: str, parameters) -> list[str]:
    """The backend's plan for `statement`: EXPLAIN QUERY PLAN (SQLite) or EXPLAIN ANALYZE."""
    with app.app_context():
        connection = db.session.connection()
        if db.engine.dialect.name == "sqlite":
            rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
            return [f"{row[0]:>3} {row[1]:>3}  {row[3]}" for row in rows]
        rows = connection.exec_driver_sql("EXPLAIN ANALYZE " + statement, parameters)
        return [row[0] for row in rows]


@contextlib.contextmanager
def loaded(size: int, backend: str = "sqlite") -> Iterator[SimpleNamespace]:
    """A fresh database with `size` accounts, its app and a client logged in as the admin."""
    database = sqlite_database() if backend == "sqlite" else postgres_database()
    with database as url:
        app = make_app(url, FAST_HASH)
        migrate(app)
        with app.app_context():
            admin = create_admin("admin@bench.example", "Bench-passw0rd")
            ensure_default_rate_group("USD")
            admin_number = admin.account_number
            group_id = db.session.scalar(select(RateGroup.id))
            load_seconds = bulk_load(size, group_id)
            token_rows = db.session.scalar(select(func.count()).select_from(AccountSearchToken))
            middle_id = db.session.scalar(select(func.max(Account.id))) - size // 2
            # case: (search box, keyset cursor, what it matches)
            cases = {
                "first page": ("", None, matching_accounts("")),
                "keyset page (middle)": ("", middle_id, matching_accounts("")),
            }
            for words in (RARE_WORD, COMMON_PREFIX, TWO_WORDS):
                cases[f"search '{words}'"] = (words, None, matching_accounts(words))
            admin = db.session.get(Account, admin.id)
            db.session.expunge(admin)  # visible_customers() reads only its role and id

        client = app.test_client()
        login(client, admin_number)
        paths = {
            label: "/accounts/?" + urlencode({k: v for k, v in (("q", q), ("before", b)) if v})
            for label, (q, b, _) in cases.items()
        }
        for path in paths.values():
            response = client.get(path)
            if response.status_code != 200:
                raise RuntimeError(f"{path}: {response.status_code}")
        try:
            yield SimpleNamespace(
                backend=backend,
                size=size,
                app=app,
                client=client,
                admin=admin,
                cases=cases,
                paths=paths,
                load_seconds=load_seconds,
                token_rows=token_rows,
            )
        finally:
            with app.app_context():
                db.session.remove()
                db.engine.dispose()


def query_only(setup: SimpleNamespace, q: str, before: int | None) -> None:
    """The data layer of the list page alone: search_accounts() and its ORM rows."""
    with setup.app.app_context():
        per_page = setup.app.config["ACCOUNTS_PER_PAGE"]
        search_accounts(visible_customers(setup.admin), q, before, per_page)


def measure(setups: list[SimpleNamespace], repeat: int, plans: bool = True) -> list[dict]:
    """Time every case of every database taking turns (noise and warm-up hit all alike)."""
    http_calls, query_calls = {}, {}
    for index, setup in enumerate(setups):
        for label, (q, before, _) in setup.cases.items():
            key = (index, label)
            http_calls[key] = functools.partial(setup.client.get, setup.paths[label])
            query_calls[key] = functools.partial(query_only, setup, q, before)
    http = timed_round_robin(http_calls, repeat)
    data = timed_round_robin(query_calls, repeat)
    results = []
    for index, setup in enumerate(setups):
        explained = {}
        if plans and setup is setups[-1]:
            for label in ("first page", *list(setup.cases)[2:]):
                statement, parameters = list_statement(setup.app, setup.client, setup.paths[label])
                explained[label] = {
                    "sql": statement,
                    "parameters": str(parameters),
                    "plan": explain(setup.app, statement, parameters),
                }
        results.append(
            {
                "backend": setup.backend,
                "size": setup.size,
                "load_seconds": setup.load_seconds,
                "token_rows": setup.token_rows,
                "figures": {
                    label: {
                        "path": setup.paths[label],
                        "matches": matches,
                        "http": summary(http[index, label]),
                        "query": summary(data[index, label]),
                    }
                    for label, (_, _, matches) in setup.cases.items()
                },
                "plans": explained,
            }
        )
    return results


def run(small: int, large: int, backend: str = "sqlite", repeat: int = 50) -> list[dict]:
    """Load both sizes, time them interleaved, return [small figures, large figures]."""
    with contextlib.ExitStack() as stack:
        setups = [stack.enter_context(loaded(size, backend)) for size in (small, large)]
        return measure(setups, repeat)


def compare(small: dict, large: dict) -> list[dict]:
    """Per case: both sizes' medians (HTTP and query alone) and the large/small ratios."""
    rows = []
    for label, a in small["figures"].items():
        b = large["figures"][label]
        row = {"case": label, "matches": b["matches"]}
        for kind in ("http", "query"):
            row[kind] = (a[kind]["median_ms"], b[kind]["median_ms"])
            row[kind + "_ratio"] = b[kind]["median_ms"] / a[kind]["median_ms"]
        rows.append(row)
    return rows


def report(backend: str, small: dict, large: dict) -> None:
    """Print the figures of one backend at both sizes and the plans of the large one."""
    repeat = large["figures"]["first page"]["http"]["n"]
    print(
        f"\n{backend}: loaded {small['size']:,} accounts in {small['load_seconds']:.1f} s, "
        f"{large['size']:,} accounts ({large['token_rows']:,} tokens) "
        f"in {large['load_seconds']:.1f} s; medians of {repeat} requests"
    )
    s, g = f"{small['size']:,}", f"{large['size']:,}"
    print(
        f"{'case':<22} {'GET ' + s:>10} {'GET ' + g:>12} {'ratio':>6}"
        f" {'query ' + s:>12} {'query ' + g:>14} {'ratio':>6}  matches at {g}"
    )
    for row in compare(small, large):
        (h1, h2), (q1, q2) = row["http"], row["query"]
        print(
            f"{row['case']:<22} {h1:>7.2f} ms {h2:>9.2f} ms {row['http_ratio']:>6.2f}"
            f" {q1:>9.2f} ms {q2:>11.2f} ms {row['query_ratio']:>6.2f}  {row['matches']}"
        )
    for label, plan in large["plans"].items():
        print(f"\n{backend} plan at {large['size']:,} accounts, {label}:")
        print("  " + " ".join(plan["sql"].split()))
        print("  parameters: " + plan["parameters"])
        for line in plan["plan"]:
            print("  " + line)


def main(argv: list[str] | None = None) -> list[dict]:
    """Run the list benchmark at both sizes on SQLite (and PostgreSQL with --postgres)."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", type=int, default=1_000, help="accounts in the small run")
    parser.add_argument("--large", type=int, default=100_000, help="accounts in the large run")
    parser.add_argument("--repeat", type=int, default=50, help="requests per case")
    parser.add_argument("--postgres", action="store_true", help="also run on PostgreSQL")
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    args = parser.parse_args(argv)
    results = []
    for backend in ("sqlite", "postgresql") if args.postgres else ("sqlite",):
        small, large = run(args.small, args.large, backend, args.repeat)
        report(backend, small, large)
        results += [small, large]
    write_json(args.json, results)
    return results


if __name__ == "__main__":
    main()
