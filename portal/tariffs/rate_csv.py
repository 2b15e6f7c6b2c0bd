"""Rate CSV format: parse and validate a whole file first, report every bad line; write it back."""

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from portal.downloads import csv_chunks
from portal.rules.money import parse_amount
from portal.rules.rating import MAX_PREFIX_LENGTH, RateRow

HEADER = [
    "prefix",
    "destination",
    "connect_cost",
    "cost_per_minute",
    "initial_increment",
    "increment",
]
MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_REPORTED_ERRORS = 200
MAX_INCREMENT = 3600


@dataclass(frozen=True)
class CsvError:
    """One problem: the line of the file, the column (or None for the whole line) and why."""

    line: int
    column: str | None
    message: str

    @property
    def field(self) -> str | None:
        """The column, by the name a job's page reads a line error's column under."""
        return self.column


@dataclass
class ParsedRates:
    """The rows of a valid file, or the errors of an invalid one (only the first few are kept)."""

    rows: list[RateRow] = field(default_factory=list)
    errors: list[CsvError] = field(default_factory=list)
    error_count: int = 0

    @property
    def ok(self) -> bool:
        """True when the whole file is valid (and not empty)."""
        return self.error_count == 0

    def add_error(self, line: int, column: str | None, message: str) -> None:
        """Record a problem; only the first MAX_REPORTED_ERRORS are kept for the report."""
        self.error_count += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(CsvError(line, column, message))


def _money(text: str) -> tuple[Decimal | None, str | None]:
    """An amount, or the reason (with the value, for the report) it is not one."""
    amount, error = parse_amount(text)
    return amount, (f'{error} Got "{text[:40]}".' if error else None)


def _seconds(text: str, minimum: int) -> tuple[int | None, str | None]:
    """Whole seconds from `minimum` to MAX_INCREMENT, or the reason it is not."""
    if not text.isascii() or not text.isdigit():
        return None, f'"{text[:40]}" is not a whole number of seconds.'
    value = int(text)
    if not minimum <= value <= MAX_INCREMENT:
        return None, f"Must be from {minimum} to {MAX_INCREMENT} seconds."
    return value, None


def line_count(data: bytes) -> int:
    """About how many rates a file holds (its lines after the header), without reading it."""
    return data.rstrip(b"\r\n").count(b"\n")


def open_csv(data: bytes, header: list[str], result) -> Iterator[list[str]] | None:
    """A CSV reader past its checked header, or None with the file's problem in `result`."""
    # result: anything with add_error(line, column, message), as ParsedRates.
    if len(data) > MAX_FILE_BYTES:
        result.add_error(0, None, f"The file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MB.")
        return None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        result.add_error(line, None, "The file is not UTF-8 text; save it as CSV UTF-8.")
        return None
    if not text.strip():
        result.add_error(0, None, "The file is empty.")
        return None
    if "\x00" in text:
        result.add_error(0, None, "The file is not a text CSV file.")
        return None
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        found = [cell.strip().lower() for cell in next(reader)]
    except csv.Error as error:
        result.add_error(1, None, f"Unreadable CSV: {error}.")
        return None
    if found != header:
        result.add_error(1, None, "The first line must be the header: " + ",".join(header))
        return None
    return reader


def parse_rates(data: bytes) -> ParsedRates:
    """Validate a whole rate CSV (UTF-8, header row); all rows or, with errors, none."""
    result = ParsedRates()
    reader = open_csv(data, HEADER, result)
    if reader is None:
        return result
    first_line_of: dict[str, int] = {}
    try:
        for cells in reader:
            _parse_row(reader.line_num, cells, first_line_of, result)
    except csv.Error as error:
        result.add_error(reader.line_num, None, f"Unreadable CSV: {error}.")
    if result.ok and not result.rows:
        result.add_error(0, None, "The file has a header but no rates.")
    if not result.ok:
        result.rows = []
    return result


def _parse_row(line: int, cells: list[str], first_line_of: dict[str, int], result) -> None:
    """Validate one row into `result` (a row or errors)."""
    if not any(cell.strip() for cell in cells):
        return  # blank lines are allowed (spreadsheets add them)
    if len(cells) != len(HEADER):
        result.add_error(line, None, f"Expected {len(HEADER)} columns, found {len(cells)}.")
        return
    prefix, destination, connect, per_minute, initial, increment = (c.strip() for c in cells)
    errors_before = result.error_count
    if len(prefix) > MAX_PREFIX_LENGTH:
        result.add_error(line, "prefix", f"At most {MAX_PREFIX_LENGTH} digits.")
    elif prefix and not (prefix.isascii() and prefix.isdigit()):
        result.add_error(line, "prefix", "Digits only (or empty for any number).")
    elif prefix in first_line_of:
        result.add_error(
            line, "prefix", f'Duplicate prefix "{prefix}" (first on line {first_line_of[prefix]}).'
        )
    else:
        first_line_of[prefix] = line
    destination = _unsafe_cell(destination)
    if len(destination) > 100:
        result.add_error(line, "destination", "At most 100 characters.")
    connect_cost, error = _money(connect)
    if error:
        result.add_error(line, "connect_cost", error)
    cost_per_minute, error = _money(per_minute)
    if error:
        result.add_error(line, "cost_per_minute", error)
    initial_increment, error = _seconds(initial, 0)
    if error:
        result.add_error(line, "initial_increment", error)
    increment_seconds, error = _seconds(increment, 1)
    if error:
        result.add_error(line, "increment", error)
    if result.error_count == errors_before and result.ok:
        result.rows.append(
            RateRow(
                prefix,
                destination,
                connect_cost,
                cost_per_minute,
                initial_increment,
                increment_seconds,
            )
        )


def plain(value: Decimal) -> str:
    """A Decimal without exponent or trailing zeros (0.01000 -> 0.01)."""
    return format(value.normalize(), "f")


def write_rates(rates: Iterable[Sequence]) -> Iterator[str]:
    """The CSV text of `rates` (rows of the HEADER fields, in order), chunk by chunk."""
    rows = (
        [prefix, _safe_cell(destination), plain(connect), plain(per_minute), initial, increment]
        for prefix, destination, connect, per_minute, initial, increment in rates
    )
    return csv_chunks(HEADER, rows)


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _safe_cell(text: str) -> str:
    """Neutralise spreadsheet formulas (CSV injection) in free text with a leading apostrophe."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _unsafe_cell(text: str) -> str:
    """Undo _safe_cell, so an exported file imports back unchanged."""
    return text[1:] if text.startswith("'") and text[1:].startswith(FORMULA_STARTS) else text
