"""The REST API's product and subscription schemas (see schemas.py for the conventions)."""

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from portal.api.schemas import Amount, Id, Strict
from portal.models import Status

Period = Literal["monthly", "daily", "one_time"]
Prefix = Annotated[str, Field(max_length=32, pattern=r"^[0-9]+$")]
LocalDate = Annotated[
    str,
    Field(
        max_length=10,
        pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$",
        examples=["2026-01-31"],
        description="A date in the account's timezone, YYYY-MM-DD.",
    ),
]


class ProductChanges(Strict):
    """A product's fields that an update may change (omitted: kept)."""

    name: Annotated[str, Field(max_length=100)] | None = None
    description: Annotated[str, Field(max_length=500)] | None = None
    currency: Annotated[str, Field(max_length=3)] | None = Field(
        None, description="ISO 4217 code; fixed once accounts subscribe."
    )
    period: Period | None = Field(
        None, description="Monthly (calendar months, local), daily (local days) or one_time."
    )
    price: Amount | None = Field(None, description="Per period, in the product's currency.")
    setup_fee: Amount | None = Field(None, description="Charged once, with the first period.")
    free_minutes: Annotated[int, Field(ge=0, le=1_000_000)] | None = Field(
        None, description="Minutes per period to the prefixes, free (0: none)."
    )
    prefixes: Annotated[list[Prefix], Field(max_length=10000)] | None = Field(
        None, description="The destination prefixes the free minutes cover (replaces the list)."
    )
    status: Status | None = None


class ProductCreate(ProductChanges):
    """A new product of the key's tenant."""

    name: Annotated[str, Field(max_length=100)]
    currency: Annotated[str, Field(max_length=3)]
    period: Period
    price: Amount


class ProductOut(BaseModel):
    """A product."""

    id: int
    name: str
    description: str
    currency: str
    period: Period
    price: str
    setup_fee: str
    free_minutes: int
    prefixes: list[str]
    status: Status
    reseller_id: int | None


class ProductList(BaseModel):
    """Products, by name."""

    items: list[ProductOut]


class SubscriptionCreate(Strict):
    """Subscribe an account to an active product of its owner in its currency."""

    product_id: Id
    start_date: LocalDate | None = Field(None, description="The first day (local); default today.")


class SubscriptionCancel(Strict):
    """When the subscription ends: the period's last day (no credit), or today with a credit."""

    mode: Literal["period_end", "now"]


class SubscriptionOut(BaseModel):
    """An account's subscription."""

    id: int
    account_id: int
    product_id: int
    product: str
    price: str
    currency: str
    period: Period
    start_date: str
    end_date: str | None
    status: Literal["pending", "active", "cancelled", "ended"]
    credit: str | None = Field(None, description="Cancelled now: the credit posted.")


class SubscriptionList(BaseModel):
    """An account's subscriptions, newest first."""

    items: list[SubscriptionOut]
