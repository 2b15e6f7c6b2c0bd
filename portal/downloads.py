"""Streamed downloads: rows read in keyset batches outside the request's session, CSV chunks."""

import csv
import io
from collections.abc import Callable, Iterable, Iterator

from sqlalchemy import Engine, Row, Select
from sqlalchemy.sql.elements import ColumnElement

BATCH_ROWS = 1000
CHUNK_ROWS = 500


def keyset_batches(
    engine: Engine, statement: Select, key: ColumnElement, *, descending: bool = False
) -> Iterator[list[Row]]:
    """The plain rows of `statement` ordered by its unique column `key`, BATCH_ROWS at a time."""
    # A streamed body is written after the request ended and its session was closed (gunicorn
    # iterates it after Flask's teardown), so nothing here uses that session or ORM objects:
    # each batch is one short query on a pooled connection, returned before the rows are
    # written out, so a slow client holds no connection, transaction or identity map, and the
    # memory used is one batch whatever the number of rows.
    order = key.desc() if descending else key.asc()
    last = None
    while True:
        page = statement
        if last is not None:
            page = page.where(key < last if descending else key > last)
        with engine.connect() as connection:
            rows = connection.execute(page.order_by(order).limit(BATCH_ROWS)).all()
        if rows:
            yield rows
        if len(rows) < BATCH_ROWS:
            return
        last = getattr(rows[-1], key.key)


def csv_chunks(header: list[str], rows: Iterable[list]) -> Iterator[str]:
    """CSV text of `rows` under `header`, CHUNK_ROWS lines per chunk (for streaming)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for count, row in enumerate(rows, 1):
        writer.writerow(row)
        if count % CHUNK_ROWS == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def counted(rows: Iterable, progress: Callable[[int], None] | None) -> Iterable:
    """`rows` unchanged, telling `progress` how many have passed, batch by batch (a job's bar)."""
    if progress is None:
        return rows
    return _counting(rows, progress)


def _counting(rows: Iterable, progress: Callable[[int], None]) -> Iterator:
    """The generator behind counted()."""
    done = 0
    for done, row in enumerate(rows, 1):
        yield row
        if done % BATCH_ROWS == 0:
            progress(done)
    progress(done)
