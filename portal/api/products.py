"""The REST API of products and an account's subscriptions: the pages' service code, as JSON."""

from flask import jsonify
from sqlalchemy import select

from portal.api import product_schemas as schemas
from portal.api.accounts import account_or_404
from portal.api.caller import key_account as _actor
from portal.api.errors import ApiError
from portal.api.idempotency import run_once
from portal.api.openapi import operation, parse_body
from portal.extensions import db
from portal.models import Product, Subscription
from portal.products.service import create_product, update_product
from portal.products.subscriptions import account_today, cancel, status_of, subscribe
from portal.rules.currency import plain_amount
from portal.security import visible_products


def product_json(product: Product) -> dict:
    """A product as ProductOut."""
    return schemas.ProductOut(
        id=product.id,
        name=product.name,
        description=product.description,
        currency=product.currency,
        period=product.period.value,
        price=plain_amount(product.price, product.currency),
        setup_fee=plain_amount(product.setup_fee, product.currency),
        free_minutes=product.free_minutes,
        prefixes=[p.prefix for p in product.prefixes],
        status=product.status,
        reseller_id=product.reseller_id,
    ).model_dump(mode="json")


def subscription_json(subscription: Subscription, today, credit=None) -> dict:
    """A subscription as SubscriptionOut."""
    product = subscription.product
    return schemas.SubscriptionOut(
        id=subscription.id,
        account_id=subscription.account_id,
        product_id=product.id,
        product=product.name,
        price=plain_amount(product.price, product.currency),
        currency=product.currency,
        period=product.period.value,
        start_date=subscription.start_date.isoformat(),
        end_date=subscription.end_date.isoformat() if subscription.end_date else None,
        status=status_of(subscription, today),
        credit=plain_amount(credit, product.currency) if credit is not None else None,
    ).model_dump(mode="json")


def _product_or_404(product_id: int) -> Product:
    """A product the key's owner manages, or a JSON 404."""
    product = db.session.scalar(visible_products(_actor()).where(Product.id == product_id))
    if product is None:
        raise ApiError(404, "No such product.")
    return product


def _form_data(body: dict) -> dict:
    """API fields as the product form posts them (prefixes one per line)."""
    data = dict(body)
    if "prefixes" in data:
        data["prefixes"] = "\n".join(data["prefixes"])
    return data


@operation(
    "/products",
    "GET",
    summary="Products the key's owner sells (staff: the admins' products; a reseller: its own).",
    tag="Products",
    responses={200: schemas.ProductList},
)
def list_products():
    """Every product of the key's tenant, by name."""
    products = db.session.scalars(visible_products(_actor()).order_by(Product.name, Product.id))
    return jsonify(items=[product_json(product) for product in products])


@operation(
    "/products",
    "POST",
    summary="Create a product, as the Create Product page does.",
    tag="Products",
    body=schemas.ProductCreate,
    responses={201: schemas.ProductOut},
    idempotent=True,
)
def create_product_api():
    """Create a product of the key's tenant."""
    body = parse_body(schemas.ProductCreate)
    data = {"description": "", "setup_fee": "0", "free_minutes": 0, "status": "active"}
    data.update(_form_data(body.model_dump(mode="json", exclude_none=True)))
    response, _product = run_once(
        lambda: create_product(_actor(), data), lambda p, stored: product_json(p), 201
    )
    return response


@operation(
    "/products/<int:product_id>",
    "PATCH",
    summary="Change a product; omitted fields keep their values.",
    tag="Products",
    body=schemas.ProductChanges,
    responses={200: schemas.ProductOut},
    errors=(404,),
)
def update_product_api(product_id: int):
    """Update through the same rules as the edit page."""
    product = _product_or_404(product_id)
    changes = _form_data(
        parse_body(schemas.ProductChanges).model_dump(mode="json", exclude_none=True)
    )
    current = product_json(product)
    data = {**_form_data({k: current[k] for k in changes.keys() | set(current) if k in current})}
    data.update(changes)
    update_product(_actor(), product, data)
    return jsonify(product_json(product))


def _subscriptions(account) -> list[Subscription]:
    """The account's subscriptions, newest first."""
    return list(
        db.session.scalars(
            select(Subscription)
            .where(Subscription.account_id == account.id)
            .order_by(Subscription.id.desc())
        )
    )


@operation(
    "/accounts/<int:account_id>/subscriptions",
    "GET",
    summary="An account's subscriptions, newest first.",
    tag="Products",
    responses={200: schemas.SubscriptionList},
    errors=(404,),
)
def list_subscriptions(account_id: int):
    """The subscriptions of an account the key's owner may see."""
    account = account_or_404(account_id)
    today = account_today(account)
    return jsonify(items=[subscription_json(s, today) for s in _subscriptions(account)])


@operation(
    "/accounts/<int:account_id>/subscriptions",
    "POST",
    summary="Subscribe an account to an active product of its owner, in its currency.",
    tag="Products",
    body=schemas.SubscriptionCreate,
    responses={201: schemas.SubscriptionOut},
    idempotent=True,
    errors=(404,),
)
def create_subscription(account_id: int):
    """Subscribe from a start date (default: today in the account's timezone)."""
    account = account_or_404(account_id)
    body = parse_body(schemas.SubscriptionCreate)
    today = account_today(account)
    response, _subscription = run_once(
        lambda: subscribe(_actor(), account, body.model_dump()),
        lambda s, stored: subscription_json(s, today),
        201,
    )
    return response


@operation(
    "/accounts/<int:account_id>/subscriptions/<int:subscription_id>/cancel",
    "POST",
    summary="Cancel at the period's end (no credit) or now (credit of the unused days).",
    tag="Products",
    body=schemas.SubscriptionCancel,
    responses={200: schemas.SubscriptionOut},
    errors=(404,),
)
def cancel_subscription(account_id: int, subscription_id: int):
    """Cancel a subscription of an account the key's owner may see."""
    account = account_or_404(account_id)
    subscription = db.session.scalar(
        select(Subscription).where(
            Subscription.id == subscription_id, Subscription.account_id == account.id
        )
    )
    if subscription is None:
        raise ApiError(404, "No such subscription.")
    body = parse_body(schemas.SubscriptionCancel)
    credit = cancel(_actor(), account, subscription, body.mode)
    return jsonify(subscription_json(subscription, account_today(account), credit))
