"""Core statements compiled once per dialect and run on the DBAPI cursor, for the hot path."""

from collections import namedtuple
from dataclasses import dataclass

from sqlalchemy import Connection, Select
from sqlalchemy.exc import DBAPIError


@dataclass
class _Plan:
    """A statement as one dialect runs it."""

    sql: str
    positional: bool  # the driver takes a list in placeholder order, not a dict by name
    # (bind name, its own value (a literal's; None if unbound), the type's Python-to-driver
    # conversion or None), in placeholder order for a positional paramstyle.
    slots: list[tuple]
    row_type: type | None  # a named tuple of the selected columns (SELECT only)
    readers: list | None = None  # the columns' driver-to-Python conversions, from a result


class Prepared:
    """One statement: SQLAlchemy compiles it and its types convert values; the driver runs it."""

    # SQLAlchemy's Connection.execute spends more time per statement (execution context, result
    # metadata, parameter checks) than SQLite spends running the statement. A call
    # authorization runs a few fixed statements many times a second, so it skips that and
    # keeps what matters: the dialect's SQL and every type's bind and result conversion
    # (money as integer units on SQLite, enums, datetimes). Expanding binds are not supported.

    def __init__(self, statement):
        self.statement = statement
        self._plans: dict[str, _Plan] = {}

    def _plan(self, dialect) -> _Plan:
        """The statement compiled for `dialect` (once)."""
        plan = self._plans.get(dialect.name)
        if plan is None:
            compiled = self.statement.compile(dialect=dialect)
            binds = compiled.binds
            names = list(compiled.positiontup) if compiled.positional else list(binds)
            slots = []
            for name in names:
                bind = binds[name]
                if bind.expanding:  # its SQL would change with every list's length
                    raise ValueError(f"Prepared statements take no expanding binds: {name}")
                converter = bind.type.dialect_impl(dialect).bind_processor(dialect)
                slots.append((name, bind.value, converter))
            row_type = None
            if isinstance(self.statement, Select):
                keys = [column.key for column in self.statement.selected_columns]
                row_type = namedtuple("Row", keys)
            plan = _Plan(compiled.string, compiled.positional, slots, row_type)
            self._plans[dialect.name] = plan
        return plan

    def execute(self, connection: Connection, binds: dict):
        """Run with `binds` (by bind name) on the connection's DBAPI connection: the cursor."""
        plan = self._plan(connection.dialect)
        values = [
            binds.get(name, default) if converter is None else converter(binds.get(name, default))
            for name, default, converter in plan.slots
        ]
        if not plan.positional:
            values = {slot[0]: value for slot, value in zip(plan.slots, values, strict=True)}
        params = values
        cursor = connection.connection.driver_connection.cursor()
        try:
            cursor.execute(plan.sql, params)
        except connection.dialect.loaded_dbapi.Error as error:
            # As SQLAlchemy would raise it (an IntegrityError for a UNIQUE violation, say), and
            # a dead connection leaves the pool as it would.
            dialect = connection.dialect
            dead = dialect.is_disconnect(error, connection.connection.dbapi_connection, cursor)
            cursor.close()
            if dead:
                connection.invalidate()
            base = dialect.loaded_dbapi.Error
            raise DBAPIError.instance(
                plan.sql, params, error, base, dialect=dialect, connection_invalidated=dead
            ) from error
        return cursor

    def _readers(self, plan, cursor, dialect) -> None:
        """Learn the plan's value converters from the first cursor that ran the SELECT."""
        # Some conversions depend on the driver's column type codes (PostgreSQL NUMERIC).
        if plan.row_type is None or plan.readers is not None:
            return
        columns = self.statement.selected_columns
        plan.readers = [
            column.type.dialect_impl(dialect).result_processor(dialect, described[1])
            for column, described in zip(columns, cursor.description, strict=True)
        ]

    def _convert(self, plan, row):
        """A fetched row as a named tuple of converted values."""
        return plan.row_type._make(
            value if reader is None else reader(value)
            for reader, value in zip(plan.readers, row, strict=True)
        )

    def first(self, connection: Connection, binds: dict):
        """The first row (a named tuple of converted values for a SELECT), or None."""
        plan = self._plan(connection.dialect)
        cursor = self.execute(connection, binds)
        row = cursor.fetchone()
        self._readers(plan, cursor, connection.dialect)
        cursor.close()
        if row is None or plan.row_type is None:
            return row
        return self._convert(plan, row)

    def all(self, connection: Connection, binds: dict) -> list:
        """Every row of a SELECT, as first() gives one."""
        plan = self._plan(connection.dialect)
        cursor = self.execute(connection, binds)
        rows = cursor.fetchall()
        self._readers(plan, cursor, connection.dialect)
        cursor.close()
        return [self._convert(plan, row) for row in rows]

    def rowcount(self, connection: Connection, binds: dict) -> int:
        """How many rows the statement changed."""
        cursor = self.execute(connection, binds)
        count = cursor.rowcount
        cursor.close()
        return count
