"""Lists people page through: a sort column, a page size, a total, keyset paging both ways."""

import base64
import binascii
import json
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation

from flask import abort, request
from sqlalchemy import Select, func, literal, select, tuple_
from sqlalchemy.sql.elements import ColumnElement

from portal.extensions import db

PAGE_SIZES = (25, 50, 100, 200)
DEFAULT_PAGE_SIZE = 50
# The query-string names a list owns; every other argument (its filters) is kept in its links.
CURSOR_ARGS = ("after", "before")
LIST_ARGS = (*CURSOR_ARGS, "sort", "per_page")


@dataclass(frozen=True)
class Sorting:
    """The columns a list may be sorted by (name -> non-NULL expression) and its default."""

    columns: dict[str, ColumnElement]
    # "-started" is newest first; the name without "-" is ascending.
    default: str
    # Ties in the sort column are broken by this unique column, so every row has one place.
    unique: ColumnElement


@dataclass
class Page:
    """One page of a list: its rows, where the pages around it start, its total and its sort."""

    rows: list
    total: int
    sort: str
    per_page: int
    next_cursor: str | None
    prev_cursor: str | None
    args: dict = field(default_factory=dict)
    sizes: tuple[int, ...] = PAGE_SIZES

    def link(self, **changes) -> dict:
        """The query arguments of a link from this page: its filters and sort, with `changes`."""
        kept = {k: v for k, v in self.args.items() if k not in CURSOR_ARGS}
        kept.update({"sort": self.sort, "per_page": self.per_page})
        kept.update(changes)
        return {k: v for k, v in kept.items() if v not in (None, "")}

    def sort_link(self, name: str) -> dict:
        """The arguments that sort by `name`: descending first, then flipped on a second click."""
        if self.sort == f"-{name}":
            return self.link(sort=name)
        return self.link(sort=f"-{name}")

    def sorted_by(self, name: str) -> str:
        """The aria-sort value of a column header: ascending, descending or none."""
        if self.sort == name:
            return "ascending"
        if self.sort == f"-{name}":
            return "descending"
        return "none"


def _encode(value) -> object:
    """A sort value as JSON can carry it (dates, times and Decimals as text)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _decode(value, column: ColumnElement):
    """A cursor value back in the column's Python type; ValueError if it does not fit."""
    # A TypeDecorator (Money) tells its type through the type it decorates.
    column_type = getattr(column.type, "impl_instance", column.type)
    try:
        kind = column_type.python_type
    except NotImplementedError:
        kind = str
    if value is None:
        raise ValueError("no value")
    if kind is datetime:
        return datetime.fromisoformat(value)
    if kind is date:
        return date.fromisoformat(value)
    if kind is Decimal:
        return Decimal(str(value))
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("not a whole number")
        return value
    if not isinstance(value, str | int | float):
        raise ValueError("not a value")
    return kind(value)


def make_cursor(values: tuple) -> str:
    """The opaque text of a position in a list: its sort value and unique key."""
    raw = json.dumps([_encode(v) for v in values], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def read_cursor(text: str, columns: tuple[ColumnElement, ...]) -> tuple:
    """The values of a cursor in its columns' types; 404 for one no page of ours makes."""
    # A tampered cursor names no position: "not found", like a bad id in a URL.
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        values = json.loads(raw)
        if not isinstance(values, list) or len(values) != len(columns):
            raise ValueError("wrong length")
        return tuple(_decode(v, c) for v, c in zip(values, columns, strict=True))
    except (ValueError, TypeError, InvalidOperation, binascii.Error, UnicodeDecodeError):
        abort(404)


def requested_sort(sorting: Sorting) -> str:
    """The sort the query string asks for if the list has it, else the default."""
    asked = request.args.get("sort", "")
    return asked if asked.lstrip("-") in sorting.columns else sorting.default


def requested_page_size() -> int:
    """The page size the query string asks for if it is one of the choices, else the default."""
    # Compared as text: int() of a 10,000-digit value raises (Python's digit limit).
    asked = request.args.get("per_page", "")
    return int(asked) if asked in {str(size) for size in PAGE_SIZES} else DEFAULT_PAGE_SIZE


def count_of(query: Select) -> int:
    """COUNT(*) of a select's rows."""
    return db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))


def paginate(query: Select, sorting: Sorting, *, total: int | None = None, scalars=True) -> Page:
    """The requested page of `query`: sorted, per_page rows after or before a cursor, its total."""
    # `total` is counted here unless the caller has it already (from its own totals query).
    # Keyset paging on (sort column, unique key): a page costs the same deep in, and the pages
    # around it stay right while rows arrive. Going back reads the rows before the cursor in
    # reverse order and turns them round.
    sort = requested_sort(sorting)
    per_page = requested_page_size()
    descending = sort.startswith("-")
    column = sorting.columns[sort.lstrip("-")]
    keys = (sorting.unique,) if column is sorting.unique else (column, sorting.unique)
    key = tuple_(*keys) if len(keys) > 1 else keys[0]
    after, before = request.args.get("after"), request.args.get("before")
    backwards = bool(before) and not after
    cursor = read_cursor(after or before, keys) if (after or before) else None
    page_query = query.add_columns(*(k.label(f"_key{i}") for i, k in enumerate(keys)))
    if cursor is not None:
        # Bound with the columns' own types: money is stored in integer units on SQLite.
        bound = [literal(value, k.type) for value, k in zip(cursor, keys, strict=True)]
        position = tuple_(*bound) if len(keys) > 1 else bound[0]
        forwards_less = descending != backwards
        page_query = page_query.where(key < position if forwards_less else key > position)
    reverse = descending != backwards
    page_query = page_query.order_by(*(k.desc() if reverse else k.asc() for k in keys))
    fetched = db.session.execute(page_query.limit(per_page + 1)).all()
    more = len(fetched) > per_page
    fetched = fetched[:per_page]
    if backwards:
        fetched.reverse()
    positions = [tuple(row[-len(keys) :]) for row in fetched]
    rows = [row[0] if scalars else row for row in fetched]
    # Forwards there is a next page when one more row came back, and a previous one when we
    # came from a cursor; backwards it is the other way round.
    has_next = (more and not backwards) or (backwards and cursor is not None)
    has_prev = (cursor is not None and not backwards) or (more and backwards)
    return Page(
        rows=rows,
        total=count_of(query) if total is None else total,
        sort=sort,
        per_page=per_page,
        next_cursor=make_cursor(positions[-1]) if has_next and positions else None,
        prev_cursor=make_cursor(positions[0]) if has_prev and positions else None,
        args=request.args.to_dict(),
    )
