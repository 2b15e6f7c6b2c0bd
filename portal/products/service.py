"""Product operations: create, edit, (de)activate, import prefixes; one transaction each."""

from decimal import Decimal

from sqlalchemy import delete, exists, select

from portal import audit
from portal.extensions import db
from portal.models import Account, Product, ProductPeriod, ProductPrefix, Status, Subscription
from portal.products.prefixes import ParsedPrefixes, parse_prefix_csv, parse_prefix_lines
from portal.rules.currency import parse_money
from portal.rules.locale import is_currency
from portal.security import owner_id_for
from portal.transactions import ValidationFailed, transaction

PRODUCT_FIELDS = (
    "name",
    "description",
    "currency",
    "period",
    "price",
    "setup_fee",
    "free_minutes",
    "status",
)
MAX_FREE_MINUTES = 1_000_000


def _money(data: dict, name: str, currency: str | None, errors: dict[str, str]) -> Decimal:
    """A price in `currency` (no finer than its minor unit), or an error on the field."""
    value = data.get(name)
    if value is None or str(value).strip() == "":
        errors[name] = "This field is required."
        return Decimal(0)
    amount, error = parse_money(value, currency or "USD")
    if error:
        errors[name] = error
    return amount or Decimal(0)


def subscribed(product: Product) -> bool:
    """Whether any account has (or had) a subscription to the product."""
    return bool(db.session.scalar(select(exists().where(Subscription.product_id == product.id))))


def clean_product(data: dict, product: Product | None = None) -> dict:
    """Validate a product's fields (and its prefixes text) or raise ValidationFailed."""
    errors: dict[str, str] = {}
    name = str(data.get("name") or "").strip()
    if not name:
        errors["name"] = "This field is required."
    elif len(name) > 100:
        errors["name"] = "At most 100 characters."
    description = str(data.get("description") or "").strip()
    if len(description) > 500:
        errors["description"] = "At most 500 characters."
    currency = str(data.get("currency") or "")
    if not is_currency(currency):
        errors["currency"] = "Choose a currency from the list."
        currency = None
    elif product is not None and currency != product.currency and subscribed(product):
        # Its charges are booked in the currency the accounts were subscribed in.
        errors["currency"] = f"Accounts subscribe to it in {product.currency}; it cannot change."
    try:
        period = ProductPeriod(data.get("period"))
    except ValueError:
        errors["period"] = "Choose Monthly, Daily or One-time."
        period = None
    if (
        product is not None
        and period is not None
        and period != product.period
        and subscribed(product)
    ):
        errors["period"] = "Accounts subscribe to it already: the period cannot change."
    price = _money(data, "price", currency, errors)
    setup_fee = _money(data, "setup_fee", currency, errors)
    free_minutes = data.get("free_minutes")
    if free_minutes in (None, ""):
        free_minutes = 0
    if (
        not isinstance(free_minutes, int)
        or isinstance(free_minutes, bool)
        or not 0 <= free_minutes <= MAX_FREE_MINUTES
    ):
        errors["free_minutes"] = f"Enter a whole number of minutes from 0 to {MAX_FREE_MINUTES}."
    prefixes, error = parse_prefix_lines(data.get("prefixes") or "")
    if error:
        errors["prefixes"] = error
    try:
        status = Status(data.get("status") or Status.ACTIVE)
    except ValueError:
        errors["status"] = "Choose Active or Inactive."
        status = None
    if errors:
        raise ValidationFailed(errors)
    return {
        "name": name,
        "description": description,
        "currency": currency,
        "period": period,
        "price": price,
        "setup_fee": setup_fee,
        "free_minutes": free_minutes,
        "status": status,
        "prefixes": prefixes,
    }


def prefixes_text(product: Product) -> str:
    """The product's prefixes, one per line (the form's textarea)."""
    return "\n".join(p.prefix for p in product.prefixes)


def _set_prefixes(product: Product, prefixes: list[str]) -> dict:
    """Replace the product's prefixes; the audit change, if any."""
    before = [p.prefix for p in product.prefixes]
    if sorted(before) == sorted(prefixes):
        return {}
    if product.id:
        db.session.execute(delete(ProductPrefix).where(ProductPrefix.product_id == product.id))
        db.session.expire(product, ["prefixes"])
    db.session.add_all(ProductPrefix(product=product, prefix=prefix) for prefix in prefixes)
    return {"prefixes": [len(before), len(prefixes)]}


def create_product(actor: Account, data: dict) -> Product:
    """Create a product owned by the actor's tenant."""
    values = clean_product(data)
    prefixes = values.pop("prefixes")
    product = Product(reseller_id=owner_id_for(actor), **values)
    with transaction():
        db.session.add(product)
        db.session.flush()
        _set_prefixes(product, prefixes)
        changes = {f: [None, v] for f, v in audit.snapshot(product, PRODUCT_FIELDS).items()}
        changes["prefixes"] = [None, len(prefixes)]
        audit.record(actor, "create", "product", product, changes=changes)
    return product


def update_product(actor: Account | None, product: Product, data: dict) -> Product:
    """Change a product: running subscriptions are charged its new price from the next period."""
    values = clean_product(data, product)
    prefixes = values.pop("prefixes")
    before = audit.snapshot(product, PRODUCT_FIELDS)
    with transaction():
        for name, value in values.items():
            setattr(product, name, value)
        changes = audit.diff(before, audit.snapshot(product, PRODUCT_FIELDS))
        changes.update(_set_prefixes(product, prefixes))
        if changes:
            audit.record(actor, "update", "product", product, changes=changes)
    return product


def set_product_status(actor: Account | None, product: Product, status: Status) -> None:
    """Activate or deactivate: an inactive product is not offered; subscriptions run on."""
    with transaction():
        old = product.status
        product.status = status
        if old != status:
            action = "activate" if status == Status.ACTIVE else "deactivate"
            changes = {"status": [old.value, status.value]}
            audit.record(actor, action, "product", product, changes=changes)


def import_prefixes(actor: Account | None, product: Product, data: bytes) -> ParsedPrefixes:
    """Replace the product's prefixes with a CSV file's: all of them, or (with errors) none."""
    parsed = parse_prefix_csv(data)
    if not parsed.ok:
        return parsed
    with transaction():
        changes = _set_prefixes(product, parsed.prefixes)
        if changes:
            audit.record(actor, "import", "product", product, changes=changes)
    return parsed
