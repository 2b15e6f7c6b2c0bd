"""The call API's schemas: its requests, validated by these models, and its answers (OpenAPI)."""

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, Strict

from portal.calls.access import DESTINATION_BLOCKED
from portal.calls.checks import (
    ACCOUNT_EXPIRE,
    ACCOUNT_INACTIVE_DELETED,
    AUTHENTICATION_FAIL,
    CHANNEL_LIMIT,
    NO_SUFFICIENT_FUND,
    ORIGINATION_RATE_NOT_FOUND,
)
from portal.models import CallStatus
from portal.rules.addresses import source_key

CALLERS = ("account", "sip_username", "source_ip")  # exactly one says who calls

# The authorization lane and the end view validate with these models (a 400 naming each
# field, as the softswitch API promises, where the rest of the API answers 422; see
# portal.softswitch.fields for the messages). Every text is taken as sent, not trimmed.
NoNul = r"^[^\u0000]*$"
# A dialled number: digits, an optional leading +, * and #.
DIALLED = r"\+?[0-9*#]{1,32}"
DIGITS = re.compile(DIALLED)  # fullmatch: Python's $ would let a trailing newline through
# Something besides white space, and no NUL (which no database column holds).
NON_BLANK = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"


def _address(value: str) -> str:
    """An IPv4 or IPv6 address (the pattern lets through more)."""
    if source_key(value) is None:
        raise ValueError("An IPv4 or IPv6 address, such as 203.0.113.7 or 2001:db8::7.")
    return value


def _text(limit: int, description: str):
    """A string of at most `limit` characters, not blank, without NUL."""
    return Annotated[
        str, Field(min_length=1, max_length=limit, pattern=NON_BLANK, description=description)
    ]


class CallAuthorization(BaseModel):
    """A call to authorize: exactly one of account, sip_username and source_ip says who calls."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [
                {"required": ["account"], "properties": {"account": {"type": "string"}}},
                {"required": ["sip_username"], "properties": {"sip_username": {"type": "string"}}},
                {"required": ["source_ip"], "properties": {"source_ip": {"type": "string"}}},
            ]
        },
    )

    call_id: _text(128, "The softswitch's id of the call; a retry with it gets the same answer.")
    destination: Annotated[
        str,
        Field(
            pattern=f"^{DIALLED}$",
            description="The number dialled, before Number Translation.",
            examples=["442079460958"],
        ),
    ]
    account: _text(20, "The calling account's number.") | None = None
    sip_username: _text(64, "An active SIP device of the calling account.") | None = None
    source_ip: (
        Annotated[
            str,
            Field(
                min_length=2,
                max_length=45,
                pattern=r"^[0-9A-Fa-f:.]+$",
                description="The address the call came from (IPv4 or IPv6): the account whose "
                "IP trunk holds it calls. With the trunk's tech prefix, the destination must "
                "start with it (else AUTHENTICATION_FAIL); it is stripped before translation.",
                examples=["203.0.113.7"],
            ),
            AfterValidator(_address),
        ]
        | None
    ) = None

    @staticmethod
    def cross_field_errors(data: dict) -> dict[str, str]:
        """Exactly one of account, sip_username and source_ip must be sent."""
        if sum(data.get(name) is not None for name in CALLERS) == 1:
            return {}
        return {"account": "Send exactly one of account, sip_username and source_ip."}


class CallExplainQuery(BaseModel):
    """The authorization's query string."""

    explain: str | None = Field(
        None, description='"1": also list every check with its result and its figures.'
    )


class CallRateOut(BaseModel):
    """The rate a call is charged at (amounts as exact decimal strings)."""

    prefix: str
    destination: str
    connect_cost: str
    cost_per_minute: str
    initial_increment: int
    increment: int


class CallDecisionOut(BaseModel):
    """May the call start, at which rate, and for how long at most."""

    allowed: bool
    cause: Literal[
        "OK",
        AUTHENTICATION_FAIL,
        ACCOUNT_INACTIVE_DELETED,
        ACCOUNT_EXPIRE,
        ORIGINATION_RATE_NOT_FOUND,
        NO_SUFFICIENT_FUND,
        DESTINATION_BLOCKED,
        CHANNEL_LIMIT,
    ] = Field(description="The first failing check, in the order of domain-rules.md.")
    translated_destination: str
    rate: CallRateOut | None
    max_duration_seconds: int = Field(ge=0, description="Cut the call here; 0 when refused.")
    checks: list[dict[str, Any]] | None = Field(
        None,
        description="With ?explain=1: each check, passed or not, with its figures; a check of "
        "a reseller up the caller's chain also carries its `level` (1: the caller's own "
        "reseller) and `account`.",
    )
    refused_by: dict[str, Any] | None = Field(
        None,
        description="With ?explain=1, when refused: the account whose check refused, as "
        "`level` (0: the caller), `account` (its number) and `account_id`.",
    )


class CallEnd(BaseModel):
    """A hang-up."""

    model_config = ConfigDict(extra="forbid")

    duration_seconds: Annotated[int, Strict()] = Field(
        ge=0, le=86400, description="Seconds the call was answered."
    )
    hangup_cause: Annotated[str, Field(max_length=40, pattern=NoNul)] = Field(
        "", description="The softswitch's hang-up cause, e.g. NORMAL_CLEARING."
    )
    # A call the portal never recorded (its authorization lost, or never asked) is billed
    # when its end says who called and where (portal.calls.unrecorded).
    destination: str | None = Field(
        None,
        pattern=f"^{DIALLED}$",
        description="The number dialled: with one caller field, bills an unrecorded call.",
    )
    account: _text(20, "The calling account's number (unrecorded calls).") | None = None
    sip_username: _text(64, "A SIP device of the calling account (unrecorded calls).") | None = None
    source_ip: (
        Annotated[
            str,
            Field(min_length=2, max_length=45, pattern=r"^[0-9A-Fa-f:.]+$"),
            AfterValidator(_address),
        ]
        | None
    ) = Field(None, description="The address of the calling IP trunk (unrecorded calls).")

    @staticmethod
    def cross_field_errors(data: dict) -> dict[str, str]:
        """At most one caller; a caller and the destination come together or not at all."""
        sent = sum(data.get(name) is not None for name in CALLERS)
        if sent > 1:
            return {"account": "Send at most one of account, sip_username and source_ip."}
        if sent and data.get("destination") is None:
            return {"destination": "Required with the caller: the number dialled."}
        if data.get("destination") is not None and not sent:
            return {
                "account": "Send one of account, sip_username and source_ip with the destination."
            }
        return {}


class CallEndedOut(BaseModel):
    """A call after its end: rated once; a repeated end changes nothing."""

    call_id: str
    status: CallStatus
    duration_seconds: int | None
    cost: str | None
    unauthorized: bool = Field(
        description="Billed without an authorization (the portal had no record of the call)."
    )


class DirectoryLookup(BaseModel):
    """mod_xml_curl's directory request (a form): the fields the answer depends on."""

    model_config = ConfigDict(extra="allow")

    section: str = Field("directory", description='Only "directory" is answered.')
    user: str = Field("", description="The SIP username.")
    domain: str = Field("", description="Echoed in the answer's <domain>.")
