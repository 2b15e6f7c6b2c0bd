"""The REST API's request and response schemas: they validate requests and make the OpenAPI."""

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from portal.ids import MAX_INT
from portal.models import AccountType, BillingSchedule, Status
from portal.web import NUL_MESSAGE, has_nul

# Ids fit every backend's INTEGER; a larger one would be a driver error, not a 404.
Id = Annotated[int, Field(ge=1, le=MAX_INT)]
# Exact decimals travel as strings ("10.50"): a JSON number may be read as a binary float.
Amount = Annotated[
    str,
    Field(
        pattern=r"^[0-9]{1,13}(\.[0-9]{1,5})?$",
        examples=["10.50"],
        description="An exact decimal amount, as a string.",
    ),
]
Count = Annotated[int, Field(ge=0, le=2**31 - 1)]


def _no_nul(value):
    """Reject NUL characters, which no database column can hold."""
    if has_nul(value):
        raise ValueError(NUL_MESSAGE)
    return value


class Strict(BaseModel):
    """Unknown fields are errors, and values are never coerced from another JSON type."""

    model_config = ConfigDict(extra="forbid", strict=True)

    _check_text = field_validator("*", mode="after")(_no_nul)


class AccountChanges(Strict):
    """Fields of the Create Customer Account form that an update may change (omitted: kept)."""

    password: Annotated[str, Field(max_length=128)] | None = Field(
        None, description="Portal password; generated on create when omitted. Returned once."
    )
    first_name: Annotated[str, Field(max_length=80)] | None = None
    last_name: Annotated[str, Field(max_length=80)] | None = None
    company: Annotated[str, Field(max_length=120)] | None = None
    email: Annotated[str, Field(max_length=254)] | None = Field(
        None, description='Receives alerts; can be used to log in. "" clears it.'
    )
    telephone: Annotated[str, Field(max_length=40)] | None = Field(
        None, description="Stored in E.164 form."
    )
    country: Annotated[str, Field(max_length=2)] | None = Field(
        None, description="ISO 3166 alpha-2 code; default from the global configuration."
    )
    timezone: Annotated[str, Field(max_length=64)] | None = Field(
        None, description="IANA name such as Europe/Paris; default from the configuration."
    )
    status: Status | None = None
    max_channels: Count | None = Field(None, description="Concurrent calls; 0 = unlimited.")
    number_translation: Annotated[str, Field(max_length=500)] | None = Field(
        None, description="Comma-separated match/replace rules, e.g. 011/2222,+/00."
    )
    valid_days: Count | None = Field(None, description="Days until the expiry date.")
    rate_group_id: Id | None = Field(
        None,
        description="Required unless the owner has exactly one active group in the currency.",
    )
    billing_schedule: BillingSchedule | None = None
    billing_day: Count | None = Field(None, description="1 to 28; monthly schedules only.")
    currency: Annotated[str, Field(max_length=3)] | None = Field(
        None, description="ISO 4217 code; must be the rate group's currency."
    )
    account_type: AccountType | None = None
    credit_limit: Amount | None = Field(None, description="Postpaid only.")
    tax_ids: Annotated[list[Id], Field(max_length=50)] | None = None
    low_balance_alert: Amount | None = None
    email_alerts: bool | None = None


class AccountCreate(AccountChanges):
    """A new customer or reseller: the form's fields; omitted ones take the form's defaults."""

    role: Literal["customer", "reseller"] = "customer"
    reseller_id: Id | None = Field(
        None, description="Staff keys: the reseller that owns the account (omitted: the admins)."
    )
    account_number: Annotated[str, Field(max_length=20)] | None = Field(
        None, description="Digits; generated when omitted."
    )
    pin: Annotated[str, Field(max_length=12)] | None = Field(
        None, description="Calling card PIN (customers); generated when omitted. Returned once."
    )
    create_sip_device: bool | None = Field(
        None, description="Customers: a SIP device named after the account number."
    )
    product_id: Id | None = Field(
        None,
        description="Customers: subscribe to this active product of the owner, in the "
        "account's currency, from today (local).",
    )
    send_welcome: bool = Field(False, description="Send the welcome e-mail.")
    send_password: bool = Field(False, description="Include the password in the welcome e-mail.")


class AccountUpdate(AccountChanges):
    """Changes to an account; omitted fields keep their value."""

    pin: Annotated[str, Field(max_length=12)] | None = None


class MassCreate(Strict):
    """Mass create: `count` customers alike, with generated numbers, passwords and PINs."""

    count: Annotated[int, Field(ge=1, le=10_000)]
    reseller_id: Id | None = Field(None, description="Staff keys: the owning reseller.")
    rate_group_id: Id | None = None
    account_type: AccountType | None = None
    currency: Annotated[str, Field(max_length=3)] | None = None
    billing_schedule: BillingSchedule | None = None
    billing_day: Count | None = None
    credit_limit: Amount | None = None
    valid_days: Count | None = None
    create_sip_device: bool | None = None
    tax_ids: Annotated[list[Id], Field(max_length=50)] | None = None
    country: Annotated[str, Field(max_length=2)] | None = None
    timezone: Annotated[str, Field(max_length=64)] | None = None
    status: Status | None = None
    max_channels: Count | None = None


class AccountQuery(BaseModel):
    """Filters and paging of the account list (query string)."""

    model_config = ConfigDict(extra="forbid")

    status: Status | None = None
    type: AccountType | None = None
    role: Literal["customer", "reseller"] | None = None
    reseller_id: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = Field(
        None, description="Accounts owned by this reseller; 0: owned by the admins."
    )
    q: Annotated[str, Field(max_length=100)] | None = Field(
        None, description="Search words: number, names, company, e-mail (prefixes)."
    )
    limit: Annotated[int, Field(ge=1, le=200)] = 50
    cursor: Annotated[str, Field(pattern=r"^[0-9]{1,10}$")] | None = Field(
        None, description="next_cursor of the previous page."
    )

    _check_text = field_validator("*", mode="after")(_no_nul)

    @field_validator("cursor")
    @classmethod
    def _cursor_in_range(cls, value: str | None) -> str | None:
        """A cursor is an account id, so it fits the id range."""
        if value is not None and int(value) > MAX_INT:
            raise ValueError("Not a cursor this API gave.")
        return value


class MoneyPost(Strict):
    """A payment or a charge."""

    amount: Amount
    description: Annotated[str, Field(max_length=200)] = ""


class AccountMove(Strict):
    """Where an account (a reseller: with its whole subtree) moves, and its new plan."""

    reseller_id: Id | None = Field(
        None, description="The new owner, a reseller; null: the admins (staff keys only)."
    )
    rate_group_id: Id = Field(description="A rate group of the new owner, in the same currency.")
    tax_ids: Annotated[list[Id], Field(max_length=50)] = Field(
        default_factory=list, description="Taxes of the new owner (none: no tax)."
    )


class SipDeviceOut(BaseModel):
    """A SIP device of an account (its password is shown only when it is made)."""

    username: str
    status: Status


class AccountOut(BaseModel):
    """An account as the API shows it."""

    id: int
    account_number: str
    role: Literal["customer", "reseller"]
    status: Status
    reseller_id: int | None
    first_name: str
    last_name: str
    company: str
    email: str | None
    telephone: str | None
    country: str
    timezone: str
    max_channels: int
    number_translation: str
    valid_days: int
    expiry_date: datetime | None
    first_used: datetime | None
    rate_group_id: int | None
    billing_schedule: BillingSchedule
    billing_day: int | None
    currency: str
    account_type: AccountType
    credit_limit: str
    balance: str
    low_balance_alert: str
    email_alerts: bool
    tax_ids: list[int]
    sip_devices: list[SipDeviceOut]
    created_at: datetime


class Secrets(BaseModel):
    """Generated or given secrets, returned once by the request that made them."""

    password: str
    pin: str | None
    sip_password: str | None


class AccountCreated(BaseModel):
    """A created account; secrets is null when a retried request replays the answer."""

    account: AccountOut
    secrets: Secrets | None


class Credential(BaseModel):
    """One mass-created account's secrets."""

    account_id: int
    account_number: str
    password: str
    pin: str
    sip_username: str | None
    sip_password: str | None


class MassCreated(BaseModel):
    """The accounts made; credentials is null when a retried request replays the answer."""

    account_ids: list[int]
    credentials: list[Credential] | None


class JobOut(BaseModel):
    """A background job: poll it until `status` is done or failed."""

    id: int
    kind: str
    label: str
    status: Literal["queued", "running", "done", "failed"]
    done: int
    total: int
    error: str
    result: dict
    created_at: datetime
    finished_at: datetime | None
    credentials_available: bool = Field(
        description="The new accounts' secrets wait for one reading by the key's account."
    )


class JobAccepted(BaseModel):
    """Work too large to answer at once: it runs as a job (Location: the job)."""

    job: JobOut


class JobCredentials(BaseModel):
    """A mass create job's secrets, returned once."""

    credentials: list[Credential]


class AccountPage(BaseModel):
    """One page of accounts, newest first."""

    items: list[AccountOut]
    next_cursor: str | None


class RateGroupOut(BaseModel):
    """A rate group."""

    id: int
    name: str
    currency: str
    status: Status
    reseller_id: int | None


class TaxOut(BaseModel):
    """A tax."""

    id: int
    name: str
    rate: str
    fixed_amount: str
    priority: int
    status: Status
    reseller_id: int | None


class RateGroupList(BaseModel):
    """Rate groups, by name."""

    items: list[RateGroupOut]


class TaxList(BaseModel):
    """Taxes, by priority and name."""

    items: list[TaxOut]


class EntryOut(BaseModel):
    """A ledger entry."""

    id: int
    kind: str
    amount: str
    description: str


class DocumentOut(BaseModel):
    """A receipt or invoice."""

    id: int
    kind: str
    number: str
    total: str


class AllocationOut(BaseModel):
    """Part of a payment applied to an invoice."""

    invoice_id: int
    invoice: str
    amount: str


class PostedOut(BaseModel):
    """What a payment or charge booked, the invoices a payment paid, and the balance after it."""

    account_id: int
    entries: list[EntryOut]
    document: DocumentOut | None
    # A postpaid payment: its allocations to open invoices, oldest first (the rest is credit).
    allocations: list[AllocationOut]
    balance: str


class ErrorOut(BaseModel):
    """An error; fields maps each invalid field to its reason."""

    error: str
    fields: dict[str, str] | None = None
