"""The Calls page's filter form (a GET form: bad query strings are field errors, never a 500)."""

import re
from datetime import UTC, date, datetime, time, timedelta

from wtforms import DateField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import NumberRange, Optional, ValidationError

from portal.calls.report import DEFAULT_STATUS, STATUSES, CallFilter
from portal.extensions import db
from portal.models import Account, Role
from portal.rules.times import zone
from portal.security import STAFF, visible_accounts, visible_resellers
from portal.web import PortalForm, WholeNumberField

DEFAULT_DAYS = 30
FIRST_YEAR, LAST_YEAR = 2000, 2100
PREFIX = re.compile(r"\+?[0-9]{1,32}")
ACCOUNT_NUMBER = re.compile(r"[0-9]{1,20}")
MAX_DURATION = 7 * 24 * 3600


def _year_in_range(_form, field) -> None:
    """A date the window can be computed for (no 0001-01-01 or 9999-12-31 overflows)."""
    if field.data and not FIRST_YEAR <= field.data.year <= LAST_YEAR:
        raise ValidationError(f"Enter a date from {FIRST_YEAR} to {LAST_YEAR}.")


def _matching(pattern: re.Pattern, message: str):
    """A validator: the stripped value, when given, fully matches `pattern`."""

    def check(_form, field) -> None:
        if field.data and not pattern.fullmatch(field.data.strip()):
            raise ValidationError(message)

    return check


class CallFilterForm(PortalForm):
    """Date range (in the viewer's timezone), account, reseller, prefix, status, duration."""

    start = DateField("From", validators=[Optional(), _year_in_range])
    end = DateField("To", validators=[Optional(), _year_in_range])
    account = StringField(
        "Account", validators=[_matching(ACCOUNT_NUMBER, "Enter an account number (digits).")]
    )
    reseller = StringField(
        "Reseller",
        validators=[_matching(ACCOUNT_NUMBER, "Enter a reseller's account number (digits).")],
    )
    prefix = StringField(
        "Destination prefix",
        validators=[_matching(PREFIX, "Enter 1 to 32 digits, with an optional leading +.")],
    )
    status = SelectField(
        "Status",
        choices=[SelectChoice(key, label) for key, (label, _statuses) in STATUSES.items()],
        default=DEFAULT_STATUS,
        validate_choice=True,
    )
    min_duration = WholeNumberField(
        "Minimum duration (s)",
        validators=[Optional(), NumberRange(0, MAX_DURATION, "Enter 0 to %(max)s seconds.")],
    )

    def validate_end(self, field) -> None:
        """The window must not end before it starts."""
        if field.data and self.start.data and field.data < self.start.data:
            raise ValidationError("The end date is before the start date.")


def today_in(zone_name: str) -> date:
    """Today's date in `zone_name`."""
    return datetime.now(UTC).astimezone(zone(zone_name)).date()


def default_window(zone_name: str) -> tuple[date, date]:
    """The last 30 days, today included, in the viewer's timezone."""
    today = today_in(zone_name)
    return today - timedelta(days=DEFAULT_DAYS - 1), today


def utc_midnight(day: date, zone_name: str) -> datetime:
    """The naive-UTC time at which `day` starts in `zone_name`."""
    local = datetime.combine(day, time.min, tzinfo=zone(zone_name))
    return local.astimezone(UTC).replace(tzinfo=None)


def _account_id(viewer: Account, field, resellers: bool) -> int | None:
    """The id of the account number in `field` the viewer may see, or a field error."""
    number = (field.data or "").strip()
    if not number:
        return None
    scope = visible_resellers(viewer) if resellers else visible_accounts(viewer)
    found = db.session.scalar(
        scope.with_only_columns(Account.id).where(Account.account_number == number)
    )
    if found is None:
        kind = "reseller" if resellers else "account"
        field.errors = [*field.errors, f"No {kind} {number} among the accounts you can see."]
    return found


def call_filter(form: CallFilterForm, viewer: Account) -> CallFilter | None:
    """The filter the valid form asks for (dates in the viewer's timezone), or None."""
    valid = form.validate()
    zone_name = viewer.timezone or "UTC"
    start, end = default_window(zone_name)
    start, end = form.start.data or start, form.end.data or end
    if start > end and not form.end.errors and not form.start.errors:
        # Only one side given, on the wrong side of today's default.
        form.end.errors = [*form.end.errors, "The end date is before the start date."]
        return None
    if not valid:
        return None
    form.start.data, form.end.data = start, end  # the page shows the window it used
    # A customer's page shows its own calls only: it has no account or reseller filter.
    account_id = reseller_id = None
    if viewer.role in STAFF or viewer.role == Role.RESELLER:
        account_id = _account_id(viewer, form.account, resellers=False)
        reseller_id = _account_id(viewer, form.reseller, resellers=True)
    if form.account.errors or form.reseller.errors:
        return None
    return CallFilter(
        start=utc_midnight(start, zone_name),
        end=utc_midnight(end + timedelta(days=1), zone_name),
        status=form.status.data,
        account_id=account_id,
        reseller_id=reseller_id,
        prefix=(form.prefix.data or "").strip(),
        min_duration=form.min_duration.data,
    )
