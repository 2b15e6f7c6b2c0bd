"""Invoices and Payments pages: scoping, filters, totals per currency, sorting, paging."""

import html
import re
from datetime import date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import event

from portal.billing.service import add_payment, issue
from portal.extensions import db
from portal.models import Account, AccountType, Document, DocumentKind, DocumentStatus
from portal.transactions import transaction
from tests.conftest import Browser


def body(response) -> str:
    """The response text, entities decoded."""
    return html.unescape(response.get_data(as_text=True))


def logged_in(app, account: Account) -> Browser:
    """A browser logged in as `account`."""
    browser = Browser(app.test_client())
    assert browser.login(account.account_number).status_code == 303
    return browser


def invoice(account: Account, total: str, billing: date, due: date) -> Document:
    """An invoice of `total` for `account`, issued as the billing run issues one."""
    with transaction():
        document = issue(
            DocumentKind.INVOICE,
            account,
            [("Service", Decimal(total), False)],
            billing_date=billing,
            due_date=due,
        )
    return document


def world(admin, tenants, postpaid_customer) -> dict:
    """Six invoices across the admins' customer, A's, A1's and B's customers and reseller A.

    USD: INV1 100 (paid), INV2 50 (20 paid, due 2099), INV4 10 (4 paid, overdue), INV5 7
    (unpaid, overdue), INV6 300 to reseller A itself (unpaid, overdue). EUR: INV3 40 (unpaid,
    overdue). Payments: 120 USD by the admins' customer, 4 USD by A1's customer.
    """
    for name in ("a_customer", "a1_customer", "b_customer", "a"):
        tenants[name].account_type = AccountType.POSTPAID
        tenants[name].credit_limit = Decimal(1000)
    tenants["a_customer"].currency = "EUR"
    db.session.commit()
    docs = {
        "inv1": invoice(postpaid_customer, "100", date(2026, 1, 5), date(2026, 1, 20)),
        "inv2": invoice(postpaid_customer, "50", date(2026, 2, 5), date(2099, 2, 20)),
        "inv3": invoice(tenants["a_customer"], "40", date(2026, 1, 5), date(2026, 1, 15)),
        "inv4": invoice(tenants["a1_customer"], "10", date(2026, 3, 5), date(2026, 3, 20)),
        "inv5": invoice(tenants["b_customer"], "7", date(2026, 1, 5), date(2026, 1, 10)),
        "inv6": invoice(tenants["a"], "300", date(2026, 1, 5), date(2026, 1, 31)),
    }
    docs["pay_big"] = add_payment(admin, postpaid_customer, "120").entries[0]
    docs["pay_small"] = add_payment(tenants["a1"], tenants["a1_customer"], "4").entries[0]
    db.session.commit()
    return docs


def shown(page: str) -> set[str]:
    """The document numbers (INV-…, R-…) a list shows, as data-document ids."""
    return set(re.findall(r'data-document="(\d+)"', page))


def ids(*documents) -> set[str]:
    """The data-document ids of `documents`."""
    return {str(d.id) for d in documents}


def totals(page: str) -> dict[str, list[str]]:
    """The totals table: currency -> [count, amount, (paid, due)] as the page shows them."""
    table = page.split('id="totals"', 1)[1].split("</table>", 1)[0]
    rows = re.findall(r'<tr data-currency="([A-Z]{3})">(.*?)</tr>', table, re.S)
    return {
        currency: [
            re.sub(r"\s+", " ", cell).strip() for cell in re.findall(r">([^<]+)</td>", cells)
        ]
        for currency, cells in rows
    }


def test_statuses_match_the_documents_own(app, admin, tenants, postpaid_customer):
    docs = world(admin, tenants, postpaid_customer)
    for name in ("inv1", "inv2", "inv3", "inv4", "inv5", "inv6"):
        db.session.refresh(docs[name])
    assert docs["inv1"].status == DocumentStatus.PAID
    assert docs["inv2"].status == DocumentStatus.PARTIAL
    assert docs["inv4"].status == DocumentStatus.PARTIAL
    assert {docs[n].status for n in ("inv3", "inv5", "inv6")} == {DocumentStatus.UNPAID}


def test_admin_sees_every_invoice_with_totals_per_currency(app, admin, tenants, postpaid_customer):
    docs = world(admin, tenants, postpaid_customer)
    page = body(logged_in(app, admin).get("/invoices/"))
    assert shown(page) == ids(*(docs[f"inv{n}"] for n in range(1, 7)))
    # USD: 100 + 50 + 10 + 7 + 300 = 467; paid 100 + 20 + 4 = 124; due 343. EUR: 40 unpaid.
    assert totals(page) == {
        "EUR": ["1", "EUR 40.00", "EUR 0.00", "EUR 40.00"],
        "USD": ["5", "USD 467.00", "USD 124.00", "USD 343.00"],
    }
    assert "6 invoices" in page and "Partly paid" in page and "Overdue" in page


@pytest.mark.parametrize(
    ("status", "expected", "usd", "eur"),
    [
        ("paid", ["inv1"], ["1", "USD 100.00", "USD 100.00", "USD 0.00"], None),
        ("partial", ["inv2", "inv4"], ["2", "USD 60.00", "USD 24.00", "USD 36.00"], None),
        (
            "unpaid",
            ["inv3", "inv5", "inv6"],
            ["2", "USD 307.00", "USD 0.00", "USD 307.00"],
            ["1", "EUR 40.00", "EUR 0.00", "EUR 40.00"],
        ),
        # Overdue: unpaid or partly paid past the due date (INV2 is due in 2099, INV1 is paid).
        (
            "overdue",
            ["inv3", "inv4", "inv5", "inv6"],
            ["3", "USD 317.00", "USD 4.00", "USD 313.00"],
            ["1", "EUR 40.00", "EUR 0.00", "EUR 40.00"],
        ),
    ],
)
def test_status_filter_and_its_totals(
    app, admin, tenants, postpaid_customer, status, expected, usd, eur
):
    docs = world(admin, tenants, postpaid_customer)
    page = body(logged_in(app, admin).get(f"/invoices/?status={status}"))
    assert shown(page) == ids(*(docs[name] for name in expected))
    assert totals(page) == {"USD": usd, **({"EUR": eur} if eur else {})}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("date_from=2026-02-01", ["inv2", "inv4"]),
        ("date_to=2026-02-05", ["inv1", "inv2", "inv3", "inv5", "inv6"]),
        ("date_from=2026-02-05&date_to=2026-02-05", ["inv2"]),
        ("account=1000000006", ["inv1", "inv2"]),
        ("account=+3000000003+", ["inv4"]),
        ("currency=eur", ["inv3"]),
        ("reseller=2000000001", ["inv3", "inv4"]),  # A's subtree: its sub-reseller's customer too
        ("reseller=2000000003", ["inv4"]),
        ("reseller=2000000001&status=partial", ["inv4"]),
        ("account=9999999999", []),
    ],
)
def test_invoice_filters(app, admin, tenants, postpaid_customer, query, expected):
    docs = world(admin, tenants, postpaid_customer)
    page = body(logged_in(app, admin).get(f"/invoices/?{query}"))
    assert shown(page) == ids(*(docs[name] for name in expected))
    assert f"{len(expected)} invoices" in page


def test_each_role_sees_only_its_own_tenants_invoices(
    app, admin, subadmin, tenants, postpaid_customer
):
    docs = world(admin, tenants, postpaid_customer)
    everything = ids(*(docs[f"inv{n}"] for n in range(1, 7)))
    seen = {
        "subadmin": (subadmin, everything),
        # A: its customer, its sub-reseller's customer, and the invoice issued to A itself.
        "a": (tenants["a"], ids(docs["inv3"], docs["inv4"], docs["inv6"])),
        # A1: its own customer only; its parent's invoice is not its business.
        "a1": (tenants["a1"], ids(docs["inv4"])),
        "b": (tenants["b"], ids(docs["inv5"])),
        "customer": (postpaid_customer, ids(docs["inv1"], docs["inv2"])),
        "a_customer": (tenants["a_customer"], ids(docs["inv3"])),
    }
    for name, (account, expected) in seen.items():
        browser = logged_in(app, account)
        page = body(browser.get("/invoices/"))
        assert shown(page) == expected, name
        # Filtering by another tenant's account or reseller never reveals its invoices.
        other = body(browser.get("/invoices/?account=1000000006"))
        assert shown(other) <= expected, name
    a_page = body(logged_in(app, tenants["a"]).get("/invoices/"))
    assert totals(a_page) == {
        "EUR": ["1", "EUR 40.00", "EUR 0.00", "EUR 40.00"],
        "USD": ["2", "USD 310.00", "USD 4.00", "USD 306.00"],
    }
    # Another tenant's reseller is "not among the accounts you see", like an unknown number.
    refused = logged_in(app, tenants["a"]).get("/invoices/?reseller=2000000002")
    assert refused.status_code == 422 and "No reseller with this number" in body(refused)
    assert 'data-document="' not in body(refused)
    # A customer's filters have no account or reseller fields.
    customer_page = body(logged_in(app, postpaid_customer).get("/invoices/"))
    assert 'name="reseller"' not in customer_page and 'name="account"' not in customer_page


def test_payments_page_scoping_filters_and_totals(app, admin, tenants, postpaid_customer):
    docs = world(admin, tenants, postpaid_customer)
    big, small = docs["pay_big"], docs["pay_small"]
    admin_page = body(logged_in(app, admin).get("/payments/"))
    assert set(re.findall(r'data-entry="(\d+)"', admin_page)) == {str(big.id), str(small.id)}
    assert totals(admin_page) == {"USD": ["2", "USD 124.00"]}
    assert big.document.display_number in admin_page  # the receipt, linked
    assert f'href="/documents/{big.document_id}"' in admin_page
    for account, expected in (
        (tenants["a"], {small}),
        (tenants["a1"], {small}),
        (tenants["b"], set()),
        (postpaid_customer, {big}),
        (tenants["a1_customer"], {small}),
    ):
        page = body(logged_in(app, account).get("/payments/"))
        assert set(re.findall(r'data-entry="(\d+)"', page)) == {str(e.id) for e in expected}
    filtered = body(logged_in(app, admin).get("/payments/?reseller=2000000001"))
    assert totals(filtered) == {"USD": ["1", "USD 4.00"]}
    assert totals(body(logged_in(app, admin).get("/payments/?currency=EUR"))) == {}


def test_payment_dates_are_the_viewers_days(app, admin, tenants, postpaid_customer):
    docs = world(admin, tenants, postpaid_customer)
    docs["pay_big"].created_at = datetime(2026, 3, 1, 23, 30)  # 2 March 00:30 in Paris
    docs["pay_small"].created_at = datetime(2026, 3, 2, 23, 30)  # 3 March 00:30 in Paris
    db.session.commit()
    query = "/payments/?date_from=2026-03-02&date_to=2026-03-02"
    utc_page = body(logged_in(app, admin).get(query))
    assert re.findall(r'data-entry="(\d+)"', utc_page) == [str(docs["pay_small"].id)]
    admin.timezone = "Europe/Paris"
    db.session.commit()
    paris_page = body(logged_in(app, admin).get(query))
    assert re.findall(r'data-entry="(\d+)"', paris_page) == [str(docs["pay_big"].id)]
    # The first and last days a date holds: an open range, not an overflow.
    whole = logged_in(app, admin).get("/payments/?date_from=0001-01-01&date_to=9999-12-31")
    assert whole.status_code == 200 and "2 payments" in body(whole)


def test_overdue_counts_from_the_viewers_today(app, admin, tenants, postpaid_customer):
    invoice(postpaid_customer, "5", date(2026, 4, 5), date.today())
    page = body(logged_in(app, admin).get("/invoices/?status=overdue"))
    assert "0 invoices" in page  # due today: not overdue yet


@pytest.mark.parametrize(
    ("sort", "order"),
    [
        ("amount", ["inv5", "inv4", "inv3", "inv2", "inv1", "inv6"]),
        ("-amount", ["inv6", "inv1", "inv2", "inv3", "inv4", "inv5"]),
        ("due", ["inv5", "inv3", "inv1", "inv6", "inv4", "inv2"]),
        ("account", ["inv1", "inv2", "inv6", "inv3", "inv5", "inv4"]),
        ("-date", ["inv4", "inv2", "inv6", "inv5", "inv3", "inv1"]),
    ],
)
def test_invoices_sort_by_their_main_columns(app, admin, tenants, postpaid_customer, sort, order):
    docs = world(admin, tenants, postpaid_customer)
    page = body(logged_in(app, admin).get(f"/invoices/?sort={sort}"))
    assert re.findall(r'data-document="(\d+)"', page) == [str(docs[n].id) for n in order]
    assert 'aria-sort="ascending"' in page or 'aria-sort="descending"' in page


def test_invoices_page_both_ways_keeping_filters_and_totals(
    app, admin, tenants, postpaid_customer, monkeypatch
):
    monkeypatch.setattr("portal.listing.PAGE_SIZES", (2, 50))
    world(admin, tenants, postpaid_customer)
    browser = logged_in(app, admin)
    url = "/invoices/?status=overdue&sort=amount&per_page=2"
    seen, pages = [], []
    while url:
        page = body(browser.get(url))
        pages.append(page)
        seen += re.findall(r'data-document="(\d+)"', page)
        assert "4 invoices" in page and totals(page)["USD"][0] == "3"
        link = re.search(r'href="([^"]*)" rel="next"', page)
        url = link.group(1) if link else None
        assert url is None or "status=overdue" in url
    assert len(pages) == 2 and len(seen) == len(set(seen)) == 4
    back = re.search(r'href="([^"]*)" rel="prev"', pages[-1]).group(1)
    assert re.findall(r'data-document="(\d+)"', body(browser.get(back))) == seen[:2]


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ("date_from=2026-13-45", "date_from", "Not a valid date value"),
        ("date_from=99999-01-01", "date_from", "Not a valid date value"),
        ("date_from=2026-03-02&date_to=2026-03-01", "date_to", "Must not be before the start date"),
        ("account=" + "9" * 10_000, "account", "Field cannot be longer than 40 characters"),
        ("currency=EURO", "currency", "three-letter currency code"),
        ("currency=12%0A", "currency", "three-letter currency code"),
        ("status=refunded", "status", "Not a valid choice"),
        ("reseller=" + "9" * 30, "reseller", "No reseller with this number"),
        ("reseller=1000000006", "reseller", "No reseller with this number"),  # a customer
    ],
)
@pytest.mark.parametrize("report", ["invoices", "payments"])
def test_bad_filters_are_field_errors(
    app, admin, tenants, postpaid_customer, report, query, field, message
):
    if report == "payments" and field == "status":
        return  # the Payments page has no status: an unknown argument is ignored
    world(admin, tenants, postpaid_customer)
    response = logged_in(app, admin).get(f"/{report}/?{query}")
    page = body(response)
    assert response.status_code == 422
    assert message in page.split(f'id="field-{field}"', 1)[1].split("</div>", 1)[0]
    assert "data-document=" not in page and "data-entry=" not in page


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ("status=%00", 400),  # NUL anywhere in a query string: refused before any view
        ("after=" + "x" * 10_000, 404),  # a cursor no page made
        ("per_page=" + "9" * 400, 200),  # not a page size offered: the default
        ("sort=password", 200),
        ("date_to=" + "9" * 10_000, 422),
    ],
)
def test_odd_query_strings_are_never_a_server_error(app, admin, query, status):
    assert logged_in(app, admin).get(f"/invoices/?{query}").status_code == status
    assert logged_in(app, admin).get(f"/payments/?{query}").status_code == status


def test_the_invoices_page_reads_no_row_alone(app, admin, tenants, postpaid_customer):
    """As many SQL statements for 12 invoices as for 6: nothing is loaded per row."""
    docs = world(admin, tenants, postpaid_customer)
    browser = logged_in(app, admin)

    def statements() -> int:
        seen = []
        listen = lambda *args: seen.append(args[2])  # noqa: E731
        event.listen(db.engine, "before_cursor_execute", listen)
        try:
            assert browser.get("/invoices/").status_code == 200
        finally:
            event.remove(db.engine, "before_cursor_execute", listen)
        return len(seen)

    few = statements()
    for month in range(4, 10):
        invoice(docs["inv6"].account, "1", date(2026, month, 5), date(2026, month, 20))
    assert statements() == few
