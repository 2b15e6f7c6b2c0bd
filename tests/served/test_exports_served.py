"""CSV exports of customers and rates through gunicorn: whole files that import back."""

import csv
import gzip
import io
from decimal import Decimal

from sqlalchemy import delete, select, text

from portal.accounts.bulk import export_accounts, import_accounts, mass_create
from portal.downloads import BATCH_ROWS, CHUNK_ROWS
from portal.extensions import db
from portal.models import (
    Account,
    AccountSearchToken,
    Rate,
    RateGroup,
    Role,
    SipDevice,
    Status,
    account_taxes,
)
from portal.rules.rating import RateRow
from portal.tariffs.rate_csv import HEADER, parse_rates
from portal.tariffs.service import import_rates

CUSTOMERS = "/accounts/export.csv"
MANY = BATCH_ROWS + CHUNK_ROWS + 7  # more than one batch read and one chunk written


def _lines(body: bytes) -> list[list[str]]:
    """The CSV lines of a download."""
    return list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))


def _wipe_customers() -> None:
    """Delete every customer and what hangs off it (a fresh system to import into)."""
    db.session.execute(text("DELETE FROM audit_entries"))
    for table in (SipDevice, AccountSearchToken):
        db.session.execute(delete(table))
    db.session.execute(delete(account_taxes))
    db.session.execute(delete(Account).where(Account.role == Role.CUSTOMER))
    db.session.commit()


def _export_customers_and_import_back(served, admin, count: int) -> None:
    """Export `count` customers through gunicorn; the file is whole and imports back as it was."""
    numbers = set(db.session.scalars(select(Account.account_number)))
    served.login(admin.account_number)
    answer = served.get(CUSTOMERS)
    assert answer.status == 200
    assert answer.headers["Content-Type"].startswith("text/csv")
    lines = _lines(answer.body)
    assert lines[0][:2] == ["reseller_id", "account_number"]
    exported = [line[1] for line in lines[1:]]
    assert len(exported) == count and len(set(exported)) == count
    assert set(exported) == numbers - {admin.account_number}
    _wipe_customers()
    result = import_accounts(admin, answer.body)
    assert len(result.account_ids) == count
    # The same lines (ids are new, so the newest-first order is reversed).
    again = _lines("".join(export_accounts(admin)).encode())
    assert again[0] == lines[0] and sorted(again[1:]) == sorted(lines[1:])


def test_customers_export_with_one_account(served, admin, default_rate_group):
    mass_create(admin, {"count": 1, "rate_group_id": default_rate_group.id})
    _export_customers_and_import_back(served, admin, 1)


def test_customers_export_with_many_accounts(served, admin, default_rate_group):
    mass_create(admin, {"count": MANY, "rate_group_id": default_rate_group.id})
    _export_customers_and_import_back(served, admin, MANY)


def test_customers_export_keeps_the_search(served, admin, default_rate_group):
    mass_create(admin, {"count": 3, "rate_group_id": default_rate_group.id})
    number = db.session.scalar(select(Account.account_number).where(Account.role == Role.CUSTOMER))
    served.login(admin.account_number)
    lines = _lines(served.get(f"{CUSTOMERS}?q={number}").body)
    assert [line[1] for line in lines[1:]] == [number]


def test_a_reseller_exports_only_its_own_customers(served, tenants):
    served.login(tenants["a"].account_number)
    lines = _lines(served.get(CUSTOMERS).body)
    exported = {line[1] for line in lines[1:]}
    # Its own customer and its sub-reseller's; never reseller B's.
    assert exported == {
        tenants["a_customer"].account_number,
        tenants["a1_customer"].account_number,
    }


def _rates(count: int) -> list[RateRow]:
    """`count` distinct rates, one with a destination a spreadsheet would take for a formula."""
    names = ["=cmd|' /C calc'!A0"] + [f"Destination {i}" for i in range(1, count)]
    return [
        RateRow(str(100_000 + i), name, Decimal("0.01"), Decimal("0.0125"), 30, 6)
        for i, name in enumerate(names)
    ]


def _export_rates_and_import_back(served, admin, group: RateGroup, count: int) -> None:
    """Export `count` rates through gunicorn; the file is whole and imports into a new group."""
    rows = _rates(count)
    import_rates(admin, group, rows, replace=True)
    served.login(admin.account_number)
    answer = served.get(f"/tariff/rate-groups/{group.id}/export.csv")
    assert answer.status == 200
    lines = _lines(answer.body)
    assert lines[0] == HEADER and len(lines) == count + 1
    parsed = parse_rates(answer.body)
    assert parsed.ok and parsed.rows == rows
    copy = RateGroup(name="Copy", status=Status.ACTIVE)
    db.session.add(copy)
    db.session.commit()
    assert import_rates(admin, copy, parsed.rows, replace=True) == count
    copied = db.session.scalars(select(Rate.prefix).where(Rate.rate_group_id == copy.id)).all()
    assert sorted(copied) == [row.prefix for row in rows]


def test_rates_export_with_one_rate(served, admin, default_rate_group):
    _export_rates_and_import_back(served, admin, default_rate_group, 1)


def test_rates_export_with_many_rates(served, admin, default_rate_group):
    _export_rates_and_import_back(served, admin, default_rate_group, 2 * BATCH_ROWS + 3)


def test_a_reseller_cannot_export_another_resellers_rates(served, tenants):
    served.login(tenants["a"].account_number)
    assert served.get(f"/tariff/rate-groups/{tenants['b_group'].id}/export.csv").status == 404
    own = served.get(f"/tariff/rate-groups/{tenants['a_group'].id}/export.csv")
    assert own.status == 200 and _lines(own.body)[1][:2] == ["44", "UK"]


def test_customers_export_streams_gzip_encoded_to_a_browser(served, admin, default_rate_group):
    mass_create(admin, {"count": CHUNK_ROWS + 7, "rate_group_id": default_rate_group.id})
    served.login(admin.account_number)
    plain = served.get(CUSTOMERS)
    packed = served.get(CUSTOMERS, headers={"Accept-Encoding": "gzip, deflate, br, zstd"})
    assert packed.status == 200 and packed.headers["Content-Encoding"] == "gzip"
    assert "Content-Length" not in packed.headers  # streamed, not buffered to be measured
    assert len(packed.body) < len(plain.body) / 3
    assert gzip.decompress(packed.body) == plain.body
    assert len(_lines(plain.body)) == CHUNK_ROWS + 8
