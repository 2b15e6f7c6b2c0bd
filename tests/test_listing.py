"""Paged lists: sorting, page sizes, totals and keyset cursors in both directions."""

from decimal import Decimal

import pytest
from sqlalchemy import select
from werkzeug.exceptions import NotFound

from portal.extensions import db
from portal.listing import PAGE_SIZES, Sorting, make_cursor, paginate, read_cursor
from portal.models import Account, Role
from tests.conftest import make_account

SORTING = Sorting(
    columns={"id": Account.id, "number": Account.account_number, "balance": Account.balance},
    default="-id",
    unique=Account.id,
)


@pytest.fixture
def thirty(app):
    """30 customers whose balances repeat (ties broken by id)."""
    accounts = [make_account(Role.CUSTOMER, f"L{n:04d}", balance=Decimal(n % 4)) for n in range(30)]
    db.session.commit()
    return accounts


def _page(app, query_string: str):
    with app.test_request_context("/?" + query_string):
        return paginate(select(Account).where(Account.account_number.like("L%")), SORTING)


def _walk(app, query_string: str, direction: str = "after"):
    """Every row reached by following the next (or previous) links from a page."""
    seen, page = [], _page(app, query_string)
    while True:
        seen.extend(a.account_number for a in page.rows)
        cursor = page.next_cursor if direction == "after" else page.prev_cursor
        if cursor is None:
            return seen, page
        page = _page(app, f"{query_string}&{direction}={cursor}")


def test_forwards_through_ties_reaches_every_row_once(app, thirty):
    """Sorted by a column with ties, the next links visit each row exactly once, in order."""
    seen, last = _walk(app, "sort=balance&per_page=25")
    expected = [a.account_number for a in sorted(thirty, key=lambda a: (a.balance, a.id))]
    assert seen == expected
    assert last.total == 30


def test_backwards_from_the_end_gives_the_same_pages(app, thirty):
    """Previous from the last page returns the first page's rows again, in the same order."""
    first = _page(app, "sort=-balance&per_page=25")
    second = _page(app, f"sort=-balance&per_page=25&after={first.next_cursor}")
    assert len(second.rows) == 5 and second.next_cursor is None
    back = _page(app, f"sort=-balance&per_page=25&before={second.prev_cursor}")
    assert [a.id for a in back.rows] == [a.id for a in first.rows]
    assert back.prev_cursor is None and back.next_cursor is not None


def test_unknown_sort_and_page_size_fall_back_to_defaults(app, thirty):
    """A sort the list lacks and a page size not offered give the defaults, not an error."""
    page = _page(app, "sort=password&per_page=100000")
    assert page.sort == "-id"
    assert page.per_page == 50
    assert [a.account_number for a in page.rows][:2] == ["L0029", "L0028"]
    assert page.per_page in PAGE_SIZES


def test_a_page_size_of_ten_thousand_digits_is_the_default_not_an_error(app, thirty):
    """int() refuses more than 4,300 digits: the size is compared as text first."""
    assert _page(app, "per_page=" + "9" * 10_000).per_page == 50


@pytest.mark.parametrize("cursor", ["x", "%00", "W10", make_cursor(("abc",)), "e" * 10_000])
def test_a_tampered_cursor_is_not_found(app, thirty, cursor):
    """A cursor no page made answers 404."""
    with pytest.raises(NotFound):
        _page(app, f"sort=-id&after={cursor}")


def test_cursor_round_trip_keeps_types(app):
    """Dates, amounts and numbers come back in their column types."""
    values = (Decimal("1.50000"), 7)
    assert read_cursor(make_cursor(values), (Account.balance, Account.id)) == values


def test_links_keep_filters_and_drop_cursors(app, thirty):
    """A page's links carry its filters and sort; a sort link flips the direction."""
    with app.test_request_context("/?q=abc&sort=-number&after=" + make_cursor(("L0003", 4)) + ""):
        page = paginate(select(Account).where(Account.account_number.like("L%")), SORTING)
    assert page.link() == {"q": "abc", "sort": "-number", "per_page": 50}
    assert page.sort_link("number")["sort"] == "number"
    assert page.sort_link("balance")["sort"] == "-balance"
    assert page.sorted_by("number") == "descending"
