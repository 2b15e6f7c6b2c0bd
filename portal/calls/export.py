"""The Calls page's CSV export: the filtered calls as the page shows them, read in batches."""

from collections.abc import Iterator
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import Select, tuple_

from portal import downloads
from portal.calls.report import CallFilter, call_rows, is_reseller
from portal.downloads import counted, csv_chunks
from portal.extensions import db
from portal.models import Account, Call, CallStatus
from portal.rules.currency import quantum
from portal.rules.times import in_zone


def _amount(value: Decimal | None, currency: str) -> str:
    """An amount for the CSV: at the currency's minor unit, no symbol (empty when none)."""
    # Costs are posted at the minor unit already; quantize only writes its places (0.5 -> 0.50).
    return "" if value is None else f"{value.quantize(quantum(currency), ROUND_HALF_UP):f}"


def csv_header(viewer: Account) -> list[str]:
    """The export's column names; the start time says its timezone."""
    header = [
        f"Start ({viewer.timezone or 'UTC'})",
        "Account",
        "Destination",
        "Translated destination",
        "Rate destination",
        "Status",
        "Cause",
        "Duration (s)",
        "Cost",
        "Currency",
    ]
    if is_reseller(viewer):
        header += [f"Your cost ({viewer.currency})", f"Margin ({viewer.currency})"]
    return header


def _cells(row, zone: str, reseller_currency: str | None) -> list:
    """One call as CSV cells: the figures as the page shows them, time in the viewer's zone."""
    started = in_zone(row.started_at, zone).strftime("%Y-%m-%d %H:%M:%S")
    cells = [
        started,
        row.account_number,
        row.destination,
        row.translated_destination,
        row.rate_destination,
        CallStatus(row.status).value,
        row.cause,
        "" if row.duration_seconds is None else row.duration_seconds,
        _amount(row.cost, row.currency),
        row.currency,
    ]
    if reseller_currency:
        cells += [_amount(row.own_cost, reseller_currency), _amount(row.margin, reseller_currency)]
    return cells


def _newest_first(engine, statement: Select, end: datetime) -> Iterator[list]:
    """The rows of `statement` before `end` by (started_at, id) descending, in short queries."""
    # The page's own order, on the index the window uses (ix_calls_started): each batch
    # starts where the last one stopped, however deep into the window. keyset_batches' single
    # id key would make the database re-read the window from its start for every batch.
    key = tuple_(Call.started_at, Call.id)
    last = None
    while True:
        # One upper bound on started_at, where the last batch stopped: given the window's end
        # as well, SQLite ranges the index from the end and walks every row already sent.
        if last is None:
            page = statement.where(Call.started_at < end)
        else:
            page = statement.where(Call.started_at <= last[0], key < tuple_(*last))
        page = page.order_by(Call.started_at.desc(), Call.id.desc()).limit(downloads.BATCH_ROWS)
        with engine.connect() as connection:
            rows = connection.execute(page).all()
        if rows:
            yield rows
        if len(rows) < downloads.BATCH_ROWS:
            return
        last = (rows[-1].started_at, rows[-1].id)


def export_calls(viewer: Account, wanted: CallFilter, progress=None) -> Iterator[str]:
    """The filtered calls as CSV chunks, newest first, read in keyset batches off the engine."""
    # Built while the viewer is at hand; read later (a streamed response or a job) by short
    # queries on the engine, so the memory used is one batch whatever the number of calls.
    statement = call_rows(viewer, wanted, ended=False)
    zone = viewer.timezone or "UTC"
    reseller_currency = viewer.currency if is_reseller(viewer) else None

    def rows():
        for batch in _newest_first(db.engine, statement, wanted.end):
            for row in batch:
                yield _cells(row, zone, reseller_currency)

    return csv_chunks(csv_header(viewer), counted(rows(), progress))
