"""Many rows written in one statement: arrays on PostgreSQL, executemany elsewhere."""

import functools
from collections.abc import Collection

from sqlalchemy import Connection, Table, any_, bindparam, func, insert, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.elements import ColumnElement

from portal.extensions import db

# On PostgreSQL an executemany of 1,000 rows is 1,000 statements in a pipeline: each bound,
# planned and executed, and each row's parameters adapted by the driver in Python. A billing
# chunk writes about 10 such batches. One statement over arrays (unnest) plans once, sends
# each column as one parameter, and moves the same rows in a fraction of the time.


def _array_dialect(connection: Connection) -> bool:
    """Whether the database takes a column of values as one array parameter."""
    return connection.dialect.name == "postgresql"


def among(column, values: Collection) -> ColumnElement:
    """`column IN values`: on PostgreSQL `= ANY` of one array parameter, however many values."""
    # An IN list of a chunk's 1,000 ids is 1,000 parameters that SQLAlchemy renders and the
    # driver parses again for every statement; an array is one parameter and one statement text.
    if db.engine.dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(values)


def _with_defaults(table: Table, rows: list[dict]) -> tuple[list[str], list[dict]]:
    """The columns written and the rows with each column's Python-side default filled in."""
    names = list(rows[0])
    defaults = {}
    for column in table.columns:
        default = column.default
        if (
            column.name in names
            or default is None
            or not (default.is_scalar or default.is_callable)
        ):
            continue
        defaults[column.name] = default.arg if default.is_scalar else default.arg(None)
    if not defaults:
        return names, rows
    return names + list(defaults), [{**row, **defaults} for row in rows]


@functools.cache
def _insert_from_arrays(table: Table, names: tuple[str, ...]):
    """INSERT INTO table (names) SELECT unnest(:name_all) ...: one array bind per column."""
    columns = [
        func.unnest(bindparam(f"{name}_all", type_=ARRAY(table.c[name].type))).label(name)
        for name in names
    ]
    return insert(table).from_select(list(names), select(*columns), include_defaults=False)


def insert_rows(
    connection: Connection, table: Table, rows: list[dict], returning: tuple[str, ...] = ()
) -> list:
    """Insert `rows` (dicts with the same keys; Python-side defaults are filled in).

    With `returning`, those columns of the new rows, in no particular order.
    """
    if not rows:
        return []
    if not _array_dialect(connection):
        statement = insert(table)
        if returning:
            statement = statement.returning(*(table.c[name] for name in returning))
            return connection.execute(statement, rows).all()
        connection.execute(statement, rows)
        return []
    names, rows = _with_defaults(table, rows)
    statement = _insert_from_arrays(table, tuple(names))
    if returning:
        statement = statement.returning(*(table.c[name] for name in returning))
    result = connection.execute(
        statement, {f"{name}_all": [row[name] for row in rows] for name in names}
    )
    return result.all() if returning else []


@functools.cache
def _update_from_arrays(table: Table, key: str, names: tuple[str, ...], added: frozenset):
    """UPDATE table SET name = given (or name + given) FROM unnest(arrays) WHERE key matches."""
    given = select(
        *(
            func.unnest(bindparam(f"{name}_all", type_=ARRAY(table.c[name].type))).label(name)
            for name in (key, *names)
        )
    ).subquery("given")
    values = {
        name: table.c[name] + given.c[name] if name in added else given.c[name] for name in names
    }
    # `key = ANY(:key_all)` besides the join: the planner finds the rows by index instead of
    # hashing the whole table for a join whose size it cannot estimate.
    keys = any_(bindparam(f"{key}_all", type_=ARRAY(table.c[key].type)))
    return update(table).where(table.c[key] == keys, table.c[key] == given.c[key]).values(values)


def update_rows(
    connection: Connection, table: Table, key: str, rows: list[dict], added: frozenset = frozenset()
) -> None:
    """Update each row found by `key` to the row's values (columns in `added`: plus the value)."""
    if not rows:
        return
    names = tuple(name for name in rows[0] if name != key)
    if not _array_dialect(connection):
        binds = {name: bindparam(f"new_{name}", type_=table.c[name].type) for name in names}
        values = {
            name: table.c[name] + bind if name in added else bind for name, bind in binds.items()
        }
        statement = update(table).where(table.c[key] == bindparam("row_key")).values(values)
        connection.execute(
            statement,
            [{"row_key": row[key], **{f"new_{name}": row[name] for name in names}} for row in rows],
        )
        return
    statement = _update_from_arrays(table, key, names, added)
    columns = (key, *names)
    connection.execute(statement, {f"{name}_all": [row[name] for row in rows] for name in columns})
