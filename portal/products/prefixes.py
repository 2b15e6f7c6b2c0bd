"""A product's destination prefixes: one per line in a textarea, or a CSV file (all or none)."""

import csv
from dataclasses import dataclass, field

from portal.rules.rating import MAX_PREFIX_LENGTH
from portal.tariffs.rate_csv import MAX_REPORTED_ERRORS, CsvError, open_csv

HEADER = ["prefix"]
MAX_PREFIXES = 10000


def prefix_error(prefix: str) -> str | None:
    """Why `prefix` is not a destination prefix (digits only, at most 32), or None."""
    if len(prefix) > MAX_PREFIX_LENGTH:
        return f"At most {MAX_PREFIX_LENGTH} digits."
    if not (prefix.isascii() and prefix.isdigit()):
        return f'"{prefix[:40]}" is not a prefix: digits only, e.g. 44 or 1212.'
    return None


def parse_prefix_lines(text: str) -> tuple[list[str], str | None]:
    """The prefixes of a textarea (one per line, duplicates once), or the first line's error."""
    prefixes: list[str] = []
    seen: set[str] = set()
    for number, line in enumerate(str(text or "").splitlines(), start=1):
        prefix = line.strip()
        if not prefix:
            continue
        error = prefix_error(prefix)
        if error:
            return [], f"Line {number}: {error}"
        if prefix not in seen:
            seen.add(prefix)
            prefixes.append(prefix)
    if len(prefixes) > MAX_PREFIXES:
        return [], f"At most {MAX_PREFIXES} prefixes."
    return prefixes, None


@dataclass
class ParsedPrefixes:
    """The prefixes of a valid file, or the errors of an invalid one (the first few kept)."""

    prefixes: list[str] = field(default_factory=list)
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


def parse_prefix_csv(data: bytes) -> ParsedPrefixes:
    """Validate a whole prefix CSV (UTF-8, header "prefix"); all rows or, with errors, none."""
    result = ParsedPrefixes()
    reader = open_csv(data, HEADER, result)
    if reader is None:
        return result
    first_line_of: dict[str, int] = {}
    try:
        for cells in reader:
            _parse_row(reader.line_num, cells, first_line_of, result)
    except csv.Error as error:
        result.add_error(reader.line_num, None, f"Unreadable CSV: {error}.")
    if result.ok and not result.prefixes:
        result.add_error(0, None, "The file has a header but no prefixes.")
    if result.ok and len(result.prefixes) > MAX_PREFIXES:
        result.add_error(0, None, f"At most {MAX_PREFIXES} prefixes.")
    if not result.ok:
        result.prefixes = []
    return result


def _parse_row(line: int, cells: list[str], first_line_of: dict[str, int], result) -> None:
    """Validate one row into `result` (a prefix or an error)."""
    if not any(cell.strip() for cell in cells):
        return  # blank lines are allowed (spreadsheets add them)
    if len(cells) != len(HEADER):
        result.add_error(line, None, f"Expected {len(HEADER)} column, found {len(cells)}.")
        return
    prefix = cells[0].strip()
    error = prefix_error(prefix)
    if error:
        result.add_error(line, "prefix", error)
    elif prefix in first_line_of:
        result.add_error(
            line, "prefix", f'Duplicate prefix "{prefix}" (first on line {first_line_of[prefix]}).'
        )
    else:
        first_line_of[prefix] = line
        if result.ok:
            result.prefixes.append(prefix)
