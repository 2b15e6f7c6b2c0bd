"""Subscription operations: subscribe an account to a product, list, cancel (with a credit)."""

import enum
from datetime import date, datetime, timedelta

from sqlalchemy import select

from portal import audit
from portal.billing.service import effect, post, post_delta
from portal.billing.subscriptions import local_today
from portal.extensions import db
from portal.ids import to_id
from portal.models import (
    Account,
    AccountType,
    EntryKind,
    Product,
    ProductPeriod,
    Status,
    Subscription,
    SubscriptionCharge,
    utcnow,
)
from portal.rules.currency import minor_units
from portal.rules.subscriptions import period_bounds, unused_credit
from portal.rules.tax import percentage_taxes
from portal.security import products_of
from portal.transactions import ValidationFailed, transaction

# How far from the account's today a start date may lie (a catch-up charges the past periods).
MAX_START_DAYS = 366


CHOOSE_PRODUCT = "Choose a product from the list."


class CancelMode(enum.StrEnum):
    """When a cancelled subscription ends."""

    PERIOD_END = "period_end"  # the last day of the current period, no credit
    NOW = "now"  # today, with a credit of the period's unused days


def account_today(account: Account) -> date:
    """Today in the account's timezone."""
    return local_today(account.timezone, utcnow())


def offered_products(account: Account):
    """The active products of the account's owner in the account's currency (a query)."""
    return (
        products_of(account.reseller_id)
        .where(Product.status == Status.ACTIVE, Product.currency == account.currency)
        .order_by(Product.name, Product.id)
    )


def offered_product(owner_id: int | None, currency: str, raw_id) -> tuple[Product | None, str]:
    """The owner's active product `raw_id` in `currency` ('' or None: none), or why not."""
    if raw_id in (None, ""):
        return None, ""
    product_id = to_id(raw_id)
    product = None
    if product_id is not None:
        product = db.session.scalar(
            products_of(owner_id).where(Product.id == product_id, Product.status == Status.ACTIVE)
        )
    if product is None:
        return None, CHOOSE_PRODUCT
    if product.currency != currency:
        # Prices are never converted: a product is sold only in its own currency.
        return None, (
            f'Product "{product.name}" is priced in {product.currency}, not {currency}: '
            "choose a product in the account's currency."
        )
    return product, ""


def parse_start_date(value, today: date) -> tuple[date | None, str]:
    """A start date (a date or YYYY-MM-DD; empty: today), within a year of today."""
    if value in (None, ""):
        return today, ""
    if isinstance(value, datetime):
        value = value.date()
    if not isinstance(value, date):
        try:
            value = date.fromisoformat(str(value).strip())
        except ValueError:
            return None, "Enter a date as YYYY-MM-DD."
    if abs((value - today).days) > MAX_START_DAYS:
        return None, f"Choose a date within {MAX_START_DAYS} days of today."
    return value, ""


def status_of(subscription: Subscription, today: date) -> str:
    """Pending, active, cancelled (ending later) or ended, on `today`."""
    if subscription.end_date is not None and subscription.end_date < today:
        return "ended"
    if subscription.cancelled_at is not None:
        return "cancelled"
    if subscription.start_date > today:
        return "pending"
    return "active"


def subscriptions_of(account: Account) -> list[Subscription]:
    """The account's subscriptions, newest first."""
    return list(
        db.session.scalars(
            select(Subscription)
            .where(Subscription.account_id == account.id)
            .order_by(Subscription.id.desc())
        )
    )


def add_subscription(account: Account, product: Product, start_date: date) -> Subscription:
    """Add a subscription in the caller's transaction (create_account's, or subscribe's)."""
    subscription = Subscription(account=account, product=product, start_date=start_date)
    db.session.add(subscription)
    db.session.flush()
    return subscription


def _record(actor, action: str, subscription: Subscription, account: Account, changes) -> None:
    """Audit a subscription change on the account's trail."""
    audit.record(
        actor,
        action,
        "subscription",
        subscription,
        label=f"{subscription.product.name} for {account.account_number}",
        account=account,
        changes=changes,
    )


def record_subscribed(actor, subscription: Subscription, account: Account) -> None:
    """Audit a new subscription."""
    changes = {
        "product": [None, subscription.product.name],
        "start_date": [None, subscription.start_date.isoformat()],
    }
    _record(actor, "create", subscription, account, changes)


def subscribe(actor, account: Account, data: dict) -> Subscription:
    """Subscribe the account to an active product of its owner, from a (local) start date."""
    errors = {}
    product, error = offered_product(account.reseller_id, account.currency, data.get("product_id"))
    if error or product is None:
        errors["product_id"] = error or CHOOSE_PRODUCT
    start_date, error = parse_start_date(data.get("start_date"), account_today(account))
    if error:
        errors["start_date"] = error
    if account.deleted_at is not None:
        errors["product_id"] = "A deleted account cannot subscribe."
    if errors:
        raise ValidationFailed(errors)
    with transaction():
        subscription = add_subscription(account, product, start_date)
        record_subscribed(actor, subscription, account)
    return subscription


def last_charge(subscription: Subscription) -> SubscriptionCharge | None:
    """The subscription's latest charged period."""
    return db.session.scalar(
        select(SubscriptionCharge)
        .where(SubscriptionCharge.subscription_id == subscription.id)
        .order_by(SubscriptionCharge.period_start.desc())
        .limit(1)
    )


def cancel(actor, account: Account, subscription: Subscription, mode, today: date | None = None):
    """Cancel at the period's end (no credit) or now (credit of the unused days): the credit."""
    try:
        mode = CancelMode(mode)
    except ValueError:
        raise ValidationFailed({"mode": "Choose at the period's end or now."}) from None
    if subscription.cancelled_at is not None:
        raise ValidationFailed({"mode": "This subscription is cancelled already."})
    today = today or account_today(account)
    product = subscription.product
    credit = 0
    if mode == CancelMode.NOW or today < subscription.start_date:
        end_date = max(today, subscription.start_date - timedelta(days=1))
        charged = last_charge(subscription)
        if mode == CancelMode.NOW and charged is not None:
            credit = unused_credit(
                charged.amount, charged.period_start, charged.period_end, today, account.currency
            )
    elif product.period == ProductPeriod.ONE_TIME:
        end_date = today
    else:
        end_date = period_bounds(product.period, today, subscription.start_date)[1]
        end_date -= timedelta(days=1)
    with transaction():
        subscription.end_date = end_date
        subscription.cancelled_at = utcnow()
        if credit:
            _post_credit(actor, account, product, credit, today, end_date)
        changes = {"end_date": [None, end_date.isoformat()], "mode": [None, mode.value]}
        if credit:
            changes["credit"] = [None, f"{credit:f} {account.currency}"]
        _record(actor, "cancel", subscription, account, changes)
    return credit


def _post_credit(actor, account: Account, product: Product, credit, today: date, end_date) -> None:
    """The credit entry; prepaid: its percentage taxes given back at once, as they were taken."""
    text = f"Credit: {product.name}, unused days after {today.isoformat()}"
    post(account, EntryKind.ADJUSTMENT, credit, text, actor)
    if account.account_type != AccountType.PREPAID:
        return  # postpaid: the invoice taxes its lines, this negative one included
    rated = [tax for tax in sorted(account.taxes, key=lambda t: (t.priority, t.name)) if tax.rate]
    amounts = percentage_taxes(credit, [tax.rate for tax in rated], minor_units(account.currency))
    for tax, amount in zip(rated, amounts, strict=True):
        if amount:
            line = f"{tax.name} ({tax.rate.normalize():f}% + {tax.fixed_amount.normalize():f})"
            entry = post_delta(
                account, EntryKind.TAX, -effect(account, EntryKind.TAX, amount), f"{line}: {text}"
            )
            entry.tax_line = line[:120]
