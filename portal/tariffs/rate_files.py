"""Rate CSV files as pages and jobs take them: at once or as a job, checked then saved."""

from portal.extensions import db
from portal.models import Account, RateGroup
from portal.security import visible_rate_groups
from portal.tariffs.rate_csv import MAX_FILE_BYTES, ParsedRates, line_count, parse_rates
from portal.tariffs.service import Progress, import_rates
from portal.transactions import ValidationFailed

# Work a page does at once (well under 2 s); a larger export or import is run by a job.
INLINE_EXPORT_ROWS = 20_000
INLINE_IMPORT_ROWS = 5_000


class RateImportFailed(ValidationFailed):
    """A rate file with problems: nothing was imported; `line_errors` says where and why."""

    def __init__(self, parsed: ParsedRates):
        count = parsed.error_count
        super().__init__(
            {"file": f"Nothing was imported: {count} problem{'s' * (count != 1)} found."}
        )
        self.parsed = parsed
        self.line_errors = parsed.errors
        self.error_count = count


def rate_group_for(actor: Account, group_id: int) -> RateGroup:
    """The rate group a job of `actor` works on, if `actor` may still manage it."""
    group = db.session.scalar(visible_rate_groups(actor).where(RateGroup.id == group_id))
    if group is None:
        raise ValidationFailed({"rate_group": "The rate group is no longer yours to manage."})
    return group


def file_name(group: RateGroup) -> str:
    """The group's name as a safe file name (without extension)."""
    return "".join(ch if ch.isalnum() else "-" for ch in group.name) or "rates"


def export_runs_inline(rows: int) -> bool:
    """Whether an export of `rows` rates streams at once rather than being made by a job."""
    return rows <= INLINE_EXPORT_ROWS


def import_runs_inline(data: bytes) -> bool:
    """Whether a rate file is small enough to import within the page's request."""
    # A file over the size limit is refused at once, whatever its lines.
    return len(data) > MAX_FILE_BYTES or line_count(data) <= INLINE_IMPORT_ROWS


def import_rate_file(
    actor: Account | None,
    group: RateGroup,
    data: bytes,
    replace: bool,
    progress: Progress | None = None,
) -> int:
    """Check a whole rate CSV, then save every row in one transaction, or RateImportFailed."""
    parsed = parse_rates(data)
    if not parsed.ok:
        raise RateImportFailed(parsed)
    return import_rates(actor, group, parsed.rows, replace, progress)
