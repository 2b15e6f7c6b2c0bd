"""Bulk account operations (web views and API): mass create, CSV import and export."""

import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from types import SimpleNamespace

from sqlalchemy import Select, func, insert, select

from portal import audit
from portal.accounts import account_csv
from portal.accounts.generated import draw_numbers, draw_pins, new_password
from portal.accounts.queries import filter_accounts
from portal.accounts.records import (
    account_values,
    created_changes,
    form_defaults,
    search_tokens,
    sip_device_values,
)
from portal.accounts.validation import LIMIT_SETTINGS, clean_account
from portal.downloads import counted, keyset_batches
from portal.extensions import db
from portal.models import (
    Account,
    AccountSearchToken,
    AuditEntry,
    Role,
    SipDevice,
    Tax,
    account_taxes,
    utcnow,
)
from portal.passwords import hash_generated_secret, hash_password
from portal.rules.identifiers import generate_pin
from portal.security import CREATABLE, visible_customers
from portal.settings.service import get_settings
from portal.transactions import ValidationFailed, transaction

MAX_COUNT = 10_000
# What a mass create may set; every other field takes the create form's default.
MASS_FIELDS = {
    "count",
    "reseller_id",
    "rate_group_id",
    "account_type",
    "currency",
    "billing_schedule",
    "billing_day",
    "credit_limit",
    "valid_days",
    "create_sip_device",
    "tax_ids",
    "country",
    "timezone",
    "status",
    "max_channels",
}
_UNIQUE_FIELDS = (
    ("sip_devices", "count", "A SIP username was taken meanwhile; nothing was created. Retry."),
    ("email", "file", "An e-mail address was taken meanwhile; nothing was imported. Retry."),
    ("account_number", "count", "An account number was taken meanwhile; nothing was created."),
)
CREDENTIAL_COLUMNS = ["account_number", "password", "pin", "sip_username", "sip_password"]
# Work a page answers at once (under about 2 s); more becomes a background job.
INLINE_COUNT = 500
INLINE_CHOSEN_PASSWORDS = 10
# An export of this many customers streams in well under 2 s; a larger one is made by a job.
INLINE_EXPORT_ROWS = 20_000
Progress = Callable[..., None]


def _no_progress(_done: int, _total: int | None = None) -> None:
    """Progress reports of work run inline go nowhere."""


@dataclass(frozen=True)
class Credential:
    """The secrets of one new account, shown once (the password is stored only as a hash)."""

    account_id: int
    account_number: str
    password: str
    pin: str
    sip_username: str | None
    sip_password: str | None


@dataclass
class BulkResult:
    """The ids of the accounts a bulk operation created and their secrets."""

    account_ids: list[int]
    credentials: list[Credential]

    def credentials_csv(self) -> str:
        """The credentials as CSV text, header first."""
        rows = (
            [c.account_number, c.password, c.pin, c.sip_username or "", c.sip_password or ""]
            for c in self.credentials
        )
        return "".join(account_csv.write_csv(CREDENTIAL_COLUMNS, rows))

    def to_json(self) -> bytes:
        """The result as JSON, kept for its one reading on the job's page."""
        return json.dumps([asdict(c) for c in self.credentials]).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> "BulkResult":
        """The result to_json saved."""
        credentials = [Credential(**values) for values in json.loads(data)]
        return cls([c.account_id for c in credentials], credentials)


class ImportFailed(ValidationFailed):
    """A file with problems: nothing was imported; `line_errors` says where and why."""

    def __init__(self, line_errors: list[account_csv.LineError], error_count: int):
        summary = f"{error_count} problem{'s' * (error_count != 1)} found; nothing was imported."
        super().__init__({"file": summary})
        self.line_errors = line_errors
        self.error_count = error_count


def _count_error(value) -> str | None:
    """Why `value` is not a number of accounts to create, or None."""
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_COUNT:
        return f"Enter a whole number of accounts from 1 to {MAX_COUNT:,}."
    return None


def _check_actor(actor: Account) -> None:
    """Only those who may create customers may create them in bulk (the views check it too)."""
    if Role.CUSTOMER not in CREATABLE[actor.role]:
        raise PermissionError(f"a {actor.role.value} cannot create customers")


def check_mass_create(actor: Account, data: dict) -> dict:
    """The checked values of a mass create (what each account gets), or ValidationFailed."""
    _check_actor(actor)
    errors = {name: "Unknown field." for name in data if name not in MASS_FIELDS}
    count = data.get("count")
    if error := _count_error(count):
        errors["count"] = error
    settings = get_settings(["account_number_length", "pin_length"])
    # One sample account goes through every rule of the single create form; the generated
    # number, password and PIN of the others satisfy the same rules by construction.
    sample = {**form_defaults(), **data}
    sample.update(
        account_number=draw_numbers(1, settings["account_number_length"])[0],
        password=new_password(),
        pin=generate_pin(settings["pin_length"]),
    )
    try:
        clean = clean_account(actor, Role.CUSTOMER, sample)
    except ValidationFailed as failed:
        errors = {**failed.errors, **errors}
    if errors:
        raise ValidationFailed(errors)
    return clean


def mass_create(actor: Account, data: dict, progress: Progress = _no_progress) -> BulkResult:
    """Create `count` customers with generated numbers, passwords and PINs, all or none."""
    clean = check_mass_create(actor, data)
    count = data["count"]
    settings = get_settings(["account_number_length", "pin_length"])
    numbers = draw_numbers(count, settings["account_number_length"])
    pins = draw_pins(count, settings["pin_length"])
    entries = []
    for number, pin in zip(numbers, pins, strict=True):
        password = new_password()
        entries.append(({**clean, "account_number": number, "pin": pin}, password, None))
    owner = clean["owner"]
    summary = {
        "count": [None, count],
        "owner": [None, owner.account_number if owner else "admins"],
        "rate_group": [None, clean["rate_group"].name],
    }
    return _save(actor, entries, "mass create", summary, progress)


def _save(
    actor,
    entries: list[tuple[dict, str, str | None]],
    action: str,
    summary,
    progress: Progress = _no_progress,
) -> BulkResult:
    """Insert checked accounts, their SIP devices, taxes, tokens and audit entries, all or none."""
    # entries: (cleaned values, password, its hash or None = a generated secret to hash fast).
    # The rows come from the same builders as a single create; they go in as multi-row INSERTs
    # because the ORM's per-object bookkeeping would cost more than the inserts themselves.
    now = utcnow()
    rows = []
    for done, (clean, password, password_hash) in enumerate(entries, 1):
        password_hash = password_hash or hash_generated_secret(password)
        rows.append(account_values(Role.CUSTOMER, clean, password_hash, now))
        progress(done, len(entries))
    credentials, devices, taxes, tokens, entries_audit = [], [], [], [], []
    with transaction(_UNIQUE_FIELDS):
        ids = db.session.scalars(
            insert(Account).returning(Account.id, sort_by_parameter_order=True), rows
        ).all()
        for account_id, values, (clean, password, _hash) in zip(ids, rows, entries, strict=True):
            device = None
            if clean["create_sip_device"]:
                device = sip_device_values(values["account_number"], values["status"])
                devices.append({**device, "account_id": account_id, "created_at": now})
            taxes += [{"account_id": account_id, "tax_id": tax.id} for tax in clean["taxes"]]
            account = SimpleNamespace(
                **values, rate_group=clean["rate_group"], taxes=clean["taxes"]
            )
            tokens += [{"account_id": account_id, "token": t} for t in search_tokens(account)]
            entries_audit.append(
                audit.entry_values(
                    actor,
                    "create",
                    Role.CUSTOMER.value,
                    account_id,
                    changes=created_changes(account, device and device["password"]),
                    label=values["account_number"],
                    account_id=account_id,
                )
            )
            credentials.append(
                Credential(
                    account_id,
                    values["account_number"],
                    password,
                    values["pin"],
                    device and device["username"],
                    device and device["password"],
                )
            )
        label = f"{len(rows)} customers: {rows[0]['account_number']} … {rows[-1]['account_number']}"
        entries_audit.append(
            audit.entry_values(
                actor, action, Role.CUSTOMER.value, "batch", changes=summary, label=label
            )
        )
        for model, values in (
            (SipDevice, devices),
            (account_taxes, taxes),
            (AccountSearchToken, tokens),
            (AuditEntry, entries_audit),
        ):
            if values:
                db.session.execute(insert(model), values)
    return BulkResult(list(ids), credentials)


def chosen_passwords(source) -> tuple[int, int]:
    """(lines, lines with a chosen password) of an account CSV: what an import would cost."""
    parsed = account_csv.parse_file(source)
    return len(parsed.rows), sum("password" in values for _line, values in parsed.rows)


def runs_inline(lines: int, chosen: int) -> bool:
    """Whether an import or mass create is small enough to run within the page's request."""
    return lines <= INLINE_COUNT and chosen <= INLINE_CHOSEN_PASSWORDS


def import_accounts(actor: Account, source, progress: Progress = _no_progress) -> BulkResult:
    """Create customers from a CSV (str, bytes or file); every line checked first, all or none."""
    _check_actor(actor)
    parsed = account_csv.parse_file(source)
    if parsed.fatal:
        raise ImportFailed(parsed.errors, parsed.error_count)
    settings = limits = get_settings(LIMIT_SETTINGS)
    defaults = form_defaults()
    given = {
        values["account_number"] for _line, values in parsed.rows if "account_number" in values
    }
    missing = sum("account_number" not in values for _line, values in parsed.rows)
    numbers = iter(
        draw_numbers(missing, settings["account_number_length"], given) if missing else []
    )
    first_line: dict[tuple[str, str], int] = {}
    entries = []
    for line, values in parsed.rows:
        row = {**defaults, **values}
        if (
            "reseller_id" in values
            and actor.role == Role.RESELLER
            and values["reseller_id"] != str(actor.id)
        ):
            parsed.add_error(
                line, "reseller_id", "You can import only accounts of your own (leave it empty)."
            )
        generated = "password" not in values
        if "account_number" not in row:
            row["account_number"] = next(numbers)
        if generated:
            row["password"] = new_password()
        if "pin" not in row:
            row["pin"] = generate_pin(settings["pin_length"])
        try:
            clean = clean_account(actor, Role.CUSTOMER, row, limits=limits)
        except ValidationFailed as failed:
            for name, message in failed.errors.items():
                parsed.add_error(line, name, message)
            continue
        for name in ("account_number", "email"):
            key = (name, clean[name])
            if clean[name] and key in first_line:
                parsed.add_error(line, name, f"Also on line {first_line[key]} of this file.")
            first_line.setdefault(key, line)
        entries.append((clean, row["password"], generated))
    if parsed.error_count:
        raise ImportFailed(parsed.errors, parsed.error_count)
    # A password someone chose gets the configured slow hash; a generated one the fast one.
    # Hashing is nearly all of the work, so it is what the progress counts.
    hashed = []
    for done, (clean, password, generated) in enumerate(entries, 1):
        hashed.append((clean, password, None if generated else hash_password(password)))
        progress(done, len(entries))
    summary = {"count": [None, len(hashed)]}
    return _save(actor, hashed, "import", summary)


def _exported(actor: Account, query: str) -> Select:
    """The columns of the customers `actor` sees matching the list search `query`."""
    columns = [getattr(Account, name) for name in account_csv.EXPORTED_ATTRIBUTES]
    return filter_accounts(visible_customers(actor), query).with_only_columns(*columns, Account.id)


def count_exported(actor: Account, query: str = "") -> int:
    """How many customers an export of `actor` with the list search `query` would hold."""
    exported = _exported(actor, query).with_only_columns(Account.id).subquery()
    return db.session.scalar(select(func.count()).select_from(exported))


def export_runs_inline(rows: int) -> bool:
    """Whether an export of `rows` customers streams at once rather than being made by a job."""
    return rows <= INLINE_EXPORT_ROWS


def export_accounts(
    actor: Account, query: str = "", progress: Progress | None = None
) -> Iterator[str]:
    """The customers `actor` sees matching the list search `query`, as import CSV, newest first."""
    # Built now, while the request's session and `actor` are at hand; read later, as the
    # response is sent, by plain queries on the engine (portal.downloads.keyset_batches).
    rows = counted(_exported_rows(db.engine, _exported(actor, query)), progress)
    return account_csv.write_csv(account_csv.COLUMNS, rows)


def _exported_rows(engine, statement) -> Iterator[list]:
    """The cells of each account `statement` selects, read batch by batch, with its tax ids."""
    for batch in keyset_batches(engine, statement, Account.id, descending=True):
        # The SIP devices and taxes of the batch's id range (newest first: the first id is
        # the highest), each one indexed range read. Not an EXISTS per account: PostgreSQL
        # plans that as a hash of every SIP device, once per batch.
        low, high = batch[-1].id, batch[0].id
        devices = select(SipDevice.account_id).where(SipDevice.account_id.between(low, high))
        taxes = (
            select(account_taxes.c.account_id, Tax.id)
            .join(Tax, Tax.id == account_taxes.c.tax_id)
            .where(account_taxes.c.account_id.between(low, high))
            .order_by(account_taxes.c.account_id, Tax.priority, Tax.id)
        )
        tax_ids: dict[int, list[int]] = {}
        with engine.connect() as connection:
            with_device = set(connection.scalars(devices).all())
            for account_id, tax_id in connection.execute(taxes).all():
                tax_ids.setdefault(account_id, []).append(tax_id)
        for *values, account_id in batch:
            yield account_csv.account_cells(
                values, account_id in with_device, tax_ids.get(account_id, ())
            )
