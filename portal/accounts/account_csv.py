"""Account CSV format: the create form's field names as columns; parse every line, write back."""

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from portal.downloads import csv_chunks
from portal.ids import MAX_INT, in_int_range

# The Create Customer form's fields, in its order, without the display-only ones (First Used,
# Expiry Date) and the welcome-mail ticks (an import sends no mail).
COLUMNS = [
    "reseller_id",
    "account_number",
    "password",
    "pin",
    "first_name",
    "last_name",
    "company",
    "telephone",
    "country",
    "timezone",
    "status",
    "max_channels",
    "number_translation",
    "valid_days",
    "create_sip_device",
    "rate_group_id",
    "billing_schedule",
    "billing_day",
    "currency",
    "account_type",
    "credit_limit",
    "tax_ids",
    "low_balance_alert",
    "email_alerts",
    "email",
]
WHOLE_NUMBERS = ("max_channels", "valid_days", "billing_day")
MAX_DIGITS = len(str(MAX_INT))
YES_NO = ("create_sip_device", "email_alerts")
YES, NO = ("yes", "y", "true", "1"), ("no", "n", "false", "0")
MAX_FILE_BYTES = 5 * 1024 * 1024
MAX_ROWS = 10_000
MAX_REPORTED_ERRORS = 200
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
FORMULA_FIRST = frozenset(FORMULA_STARTS)


@dataclass(frozen=True)
class LineError:
    """One problem: the line of the file, the column (None: the whole line or file) and why."""

    line: int
    field: str | None
    message: str

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line else "file"
        return (
            f"{where}, {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


@dataclass
class ParsedFile:
    """The rows of a file (line number, values of the non-empty cells) and its problems."""

    rows: list[tuple[int, dict]] = field(default_factory=list)
    errors: list[LineError] = field(default_factory=list)
    error_count: int = 0
    # A problem with the whole file (size, encoding, header): its lines are not checked further.
    fatal: bool = False

    def add_error(self, line: int, column: str | None, message: str) -> None:
        """Record a problem; only the first MAX_REPORTED_ERRORS are kept for the report."""
        self.error_count += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(LineError(line, column, message))


def read_source(source) -> bytes:
    """The bytes of an upload, a str or bytes (at most one byte more than the limit)."""
    if hasattr(source, "read"):
        source = source.read(MAX_FILE_BYTES + 1)
    if isinstance(source, str):
        source = source.encode("utf-8")
    return bytes(source)


def _header(reader, result: ParsedFile) -> list[str] | None:
    """The column names of the first line, or None (with the error) when it is not usable."""
    try:
        header = [cell.strip().lower() for cell in next(reader, [])]
    except csv.Error as error:
        result.add_error(1, None, f"Unreadable CSV: {error}.")
        return None
    unknown = [name for name in header if name not in COLUMNS]
    repeated = sorted({name for name in header if header.count(name) > 1})
    if not any(header):
        result.add_error(1, None, "The first line must be a header naming the columns.")
    elif unknown:
        result.add_error(
            1, None, f"Unknown columns: {', '.join(unknown)}. Known: {', '.join(COLUMNS)}."
        )
    elif repeated:
        result.add_error(1, None, f"Columns named twice: {', '.join(repeated)}.")
    return None if result.error_count else header


def parse_file(source) -> ParsedFile:
    """Read a whole account CSV (UTF-8, header row); every line's cells, typed, or its errors."""
    result = ParsedFile()
    data = read_source(source)
    if len(data) > MAX_FILE_BYTES:
        result.add_error(0, None, f"The file is larger than {MAX_FILE_BYTES // 2**20} MB.")
        result.fatal = True
        return result
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        result.add_error(line, None, "The file is not UTF-8 text; save it as CSV UTF-8.")
        result.fatal = True
        return result
    if not text.strip() or "\x00" in text:
        result.add_error(0, None, "The file is empty." if not text.strip() else "Not a CSV file.")
        result.fatal = True
        return result
    reader = csv.reader(io.StringIO(text, newline=""))
    header = _header(reader, result)
    if header is None:
        result.fatal = True
        return result
    try:
        for cells in reader:
            if not any(cell.strip() for cell in cells):
                continue  # blank lines are allowed (spreadsheets add them)
            if len(result.rows) == MAX_ROWS:
                result.add_error(reader.line_num, None, f"More than {MAX_ROWS:,} accounts.")
                result.fatal = True
                break
            _parse_row(reader.line_num, header, cells, result)
    except csv.Error as error:
        result.add_error(reader.line_num, None, f"Unreadable CSV: {error}.")
        result.fatal = True
    if not result.rows and not result.error_count:
        result.add_error(0, None, "The file has a header but no accounts.")
        result.fatal = True
    return result


def _parse_row(line: int, header: list[str], cells: list[str], result: ParsedFile) -> None:
    """Type one line's cells the way the form does; empty and bad cells are left out."""
    if len(cells) != len(header):
        result.add_error(line, None, f"Expected {len(header)} columns, found {len(cells)}.")
        return
    values: dict = {}
    for name, cell in zip(header, cells, strict=True):
        text = _unsafe_cell(cell.strip())
        if not text:
            continue
        if name in WHOLE_NUMBERS:
            if not (text.isascii() and text.isdigit()):
                result.add_error(line, name, f'Enter a whole number, not "{text[:40]}".')
                continue
            if len(text) > MAX_DIGITS or not in_int_range(int(text)):
                result.add_error(line, name, f'"{text[:40]}" is too large.')
                continue
            values[name] = int(text)
        elif name in YES_NO:
            if text.lower() not in YES + NO:
                result.add_error(line, name, f'Enter yes or no, not "{text[:40]}".')
                continue
            values[name] = text.lower() in YES
        elif name == "tax_ids":
            values[name] = text.replace(",", " ").replace(";", " ").split()
        else:
            values[name] = text
    result.rows.append((line, values))


def _plain(value: Decimal) -> str:
    """A Decimal without exponent or trailing zeros (0.01000 -> 0.01)."""
    return format(value.normalize(), "f")


# What account_cells reads of an account, in this order.
EXPORTED_ATTRIBUTES = [
    name for name in COLUMNS if name not in ("password", "create_sip_device", "tax_ids")
]


def account_cells(values: Sequence, has_sip_device: bool, tax_ids: Iterable[int]) -> list:
    """One account (its EXPORTED_ATTRIBUTES values) as the import columns, without secrets."""
    # In COLUMNS order. Free text gets _safe_cell; the other cells (ids, whole numbers, enum
    # values, ISO codes, yes/no) cannot start with a formula character. An export does this
    # 100,000 times: plain unpacking, no dict, no attribute lookups on a row.
    (
        reseller_id,
        account_number,
        pin,
        first_name,
        last_name,
        company,
        telephone,
        country,
        timezone,
        status,
        max_channels,
        number_translation,
        valid_days,
        rate_group_id,
        billing_schedule,
        billing_day,
        currency,
        account_type,
        credit_limit,
        low_balance_alert,
        email_alerts,
        email,
    ) = values
    safe = _safe_cell
    return [
        reseller_id or "",
        safe(account_number),
        "",
        safe(pin or ""),
        safe(first_name),
        safe(last_name),
        safe(company),
        safe(telephone or ""),
        country,
        timezone,
        status.value,
        max_channels,
        safe(number_translation),
        valid_days,
        "yes" if has_sip_device else "no",
        rate_group_id or "",
        billing_schedule.value,
        billing_day or "",
        currency,
        account_type.value,
        safe(_plain(credit_limit)),
        " ".join(map(str, tax_ids)),
        safe(_plain(low_balance_alert)),
        "yes" if email_alerts else "no",
        safe(email or ""),
    ]


def write_csv(header: list[str], rows: Iterable[list]) -> Iterator[str]:
    """CSV text of `rows` under `header`, chunk by chunk (for streaming)."""
    return csv_chunks(header, rows)


def _safe_cell(text: str) -> str:
    """Neutralise spreadsheet formulas (CSV injection) with a leading apostrophe."""
    return "'" + text if text[:1] in FORMULA_FIRST else text


def _unsafe_cell(text: str) -> str:
    """Undo _safe_cell, so an exported file imports back unchanged."""
    return text[1:] if text.startswith("'") and text[1:].startswith(FORMULA_STARTS) else text
