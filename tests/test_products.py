"""Products page, prefix CSV, the account page's subscriptions, Create Customer's Product, API."""

import html
import io
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from portal.api.openapi import document
from portal.extensions import db
from portal.models import (
    Account,
    AuditEntry,
    Product,
    ProductPeriod,
    ProductPrefix,
    Role,
    Status,
    Subscription,
)
from tests.conftest import csrf_from

URL = "/configuration/products/"


def product_form(**changes):
    """A valid product form."""
    data = {
        "name": "Business line",
        "description": "A number and 500 minutes",
        "currency": "USD",
        "price": "19.99",
        "period": "monthly",
        "setup_fee": "5",
        "free_minutes": "500",
        "prefixes": "44\n4420\n\n44\n",
        "status": "active",
    }
    data.update(changes)
    return data


def text(response) -> str:
    """The response text, entities decoded."""
    return html.unescape(response.get_data(as_text=True))


def make_product(owner=None, **fields) -> Product:
    """An active monthly product of `owner` (None: the admins)."""
    product = Product(
        name=fields.pop("name", "Plan"),
        price=Decimal(fields.pop("price", "10")),
        currency=fields.pop("currency", "USD"),
        reseller_id=owner.id if owner else None,
        **fields,
    )
    db.session.add(product)
    db.session.commit()
    return product


def login(user, account):
    """Log `account` in."""
    response = user.login(account.account_number)
    assert response.status_code in (302, 303)
    return user


# --- the Products page ---


def test_admin_creates_lists_edits_and_deactivates_a_product(as_admin):
    response = as_admin.post(URL + "new", product_form(), token_from=URL + "new")
    assert response.status_code == 303, text(response)
    product = db.session.scalar(select(Product))
    assert (product.price, product.setup_fee, product.free_minutes) == (
        Decimal("19.99"),
        Decimal("5"),
        500,
    )
    assert product.period == ProductPeriod.MONTHLY and product.reseller_id is None
    assert [p.prefix for p in product.prefixes] == ["44", "4420"]
    page = text(as_admin.get(URL))
    assert "Business line" in page and "19.99" in page
    url = f"{URL}{product.id}/edit"
    assert "4420" in text(as_admin.get(url))
    response = as_admin.post(url, product_form(price="25", prefixes="1"), token_from=url)
    assert response.status_code == 303
    db.session.refresh(product)
    assert product.price == Decimal("25") and [p.prefix for p in product.prefixes] == ["1"]
    response = as_admin.post(f"{URL}{product.id}/status", {"status": "inactive"}, token_from=URL)
    assert response.status_code == 303
    db.session.refresh(product)
    assert product.status == Status.INACTIVE
    actions = set(
        db.session.scalars(select(AuditEntry.action).where(AuditEntry.entity_type == "product"))
    )
    assert actions == {"create", "update", "deactivate"}


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"name": ""}, "This field is required"),
        ({"price": "-1"}, "Must not be negative"),
        ({"price": "1.999"}, "USD amounts have at most 2 decimal places"),
        ({"currency": "JPY", "price": "10.5"}, "JPY amounts are whole numbers"),
        ({"setup_fee": "abc"}, "Enter a number"),
        ({"period": "weekly"}, "Not a valid choice"),
        ({"free_minutes": "-5"}, "Enter a whole number of minutes"),
        ({"prefixes": "44\n+44x"}, "Line 2"),
        ({"prefixes": "1" * 33}, "At most 32 digits"),
        ({"currency": "XXX1"}, "Not a valid choice"),
    ],
)
def test_bad_product_input_is_refused_on_the_field(as_admin, changes, message):
    response = as_admin.post(URL + "new", product_form(**changes), token_from=URL + "new")
    assert response.status_code == 422
    assert message in text(response)
    assert db.session.scalar(select(func.count()).select_from(Product)) == 0


def test_reseller_sees_only_its_own_products_and_others_are_404(user, tenants):
    theirs = make_product(tenants["b"], name="B plan")
    admins = make_product(None, name="Admin plan")
    login(user, tenants["a"])
    response = user.post(URL + "new", product_form(name="A plan"), token_from=URL + "new")
    assert response.status_code == 303
    mine = db.session.scalar(select(Product).where(Product.name == "A plan"))
    assert mine.reseller_id == tenants["a"].id
    page = text(user.get(URL))
    assert "A plan" in page and "B plan" not in page and "Admin plan" not in page
    for product in (theirs, admins):
        assert user.get(f"{URL}{product.id}/edit").status_code == 404
        response = user.post(f"{URL}{product.id}/status", {"status": "inactive"}, token_from=URL)
        assert response.status_code == 404


def test_staff_manage_the_admins_products_only(user, subadmin, tenants):
    resellers = make_product(tenants["a"], name="A plan")
    login(user, subadmin)
    assert user.get(URL).status_code == 200
    assert user.get(f"{URL}{resellers.id}/edit").status_code == 404


def test_customer_has_no_access(user, customer):
    login(user, customer)
    product = make_product()
    assert user.get(URL).status_code == 403
    assert user.get(f"{URL}{product.id}/edit").status_code == 403


# --- prefix CSV import ---


def upload(user, product, content: bytes):
    """Post a prefix CSV to the product."""
    url = f"{URL}{product.id}/edit"
    page = user.get(url)
    return user.client.post(
        f"{URL}{product.id}/prefixes",
        data={
            "csrf_token": csrf_from(page.get_data(as_text=True)),
            "file": (io.BytesIO(content), "p.csv"),
        },
        content_type="multipart/form-data",
    )


def test_prefix_csv_replaces_all_or_nothing(as_admin):
    product = make_product()
    db.session.add(ProductPrefix(product_id=product.id, prefix="1"))
    db.session.commit()
    response = upload(as_admin, product, b"prefix\n44\n\n4420\n33\n")
    assert response.status_code == 303
    assert (
        sorted(db.session.scalars(select(ProductPrefix.prefix))) == ["33", "4420", "44"][::-1][::-1]
        or True
    )
    assert sorted(db.session.scalars(select(ProductPrefix.prefix))) == ["33", "44", "4420"]
    response = upload(as_admin, product, b"prefix\n49\n44x\n49\n49,x\n" + b"1" * 33 + b"\n")
    assert response.status_code == 422
    page = text(response)
    assert "Nothing was imported: 4 problems found." in page
    assert "digits only" in page and 'Duplicate prefix "49" (first on line 2)' in page
    assert "At most 32 digits" in page and "Expected 1 column, found 2" in page
    assert sorted(db.session.scalars(select(ProductPrefix.prefix))) == ["33", "44", "4420"]
    for bad, message in (
        (b"number\n44\n", "The first line must be the header: prefix"),
        (b"", "The file is empty"),
        (b"prefix\n", "no prefixes"),
        (b"\xff\xfe", "not UTF-8"),
    ):
        assert message in text(upload(as_admin, product, bad))


# --- the account page ---


def test_staff_subscribe_and_cancel_on_the_account_page(as_admin, customer):
    product = make_product(name="Fibre 100", price="30")
    make_product(name="Euro plan", currency="EUR")
    url = f"/accounts/{customer.id}"
    page = text(as_admin.get(url))
    assert "Subscriptions" in page and "Fibre 100" in page and "Euro plan" not in page
    response = as_admin.post(
        f"{URL}subscribe/{customer.id}",
        {"product_id": str(product.id), "start_date": "2026-01-10"},
        token_from=url,
    )
    assert response.status_code == 303
    subscription = db.session.scalar(select(Subscription))
    assert subscription.start_date.isoformat() == "2026-01-10"
    page = text(as_admin.get(url))
    assert "10 Jan 2026" in page and "Cancel subscription" in page
    response = as_admin.post(
        f"{URL}subscriptions/{customer.id}/{subscription.id}/cancel",
        {"mode": "period_end"},
        token_from=url,
    )
    assert response.status_code == 303
    db.session.refresh(subscription)
    assert subscription.cancelled_at is not None and subscription.end_date is not None


def test_subscribe_refuses_bad_input_without_saving(as_admin, customer, tenants):
    theirs = make_product(tenants["a"], name="A plan")
    url = f"/accounts/{customer.id}"
    for data in (
        {"product_id": str(theirs.id)},
        {"product_id": "999999"},
        {"product_id": "abc"},
        {"product_id": str(make_product().id), "start_date": "31/01/2026"},
    ):
        as_admin.post(f"{URL}subscribe/{customer.id}", data, token_from=url)
    assert db.session.scalar(select(func.count()).select_from(Subscription)) == 0
    page = text(as_admin.get(url))
    assert "Not subscribed" in page


def test_another_tenants_account_or_subscription_is_404(user, tenants):
    product = make_product(tenants["b"], name="B plan")
    login(user, tenants["a"])
    b_customer = tenants["b_customer"]
    response = user.post(
        f"{URL}subscribe/{b_customer.id}",
        {"product_id": str(product.id)},
        token_from=URL,
    )
    assert response.status_code == 404
    from portal.products.subscriptions import subscribe

    subscription = subscribe(None, b_customer, {"product_id": product.id})
    response = user.post(
        f"{URL}subscriptions/{b_customer.id}/{subscription.id}/cancel",
        {"mode": "now"},
        token_from=URL,
    )
    assert response.status_code == 404
    a_customer = tenants["a_customer"]
    response = user.post(
        f"{URL}subscriptions/{a_customer.id}/{subscription.id}/cancel",
        {"mode": "now"},
        token_from=URL,
    )
    assert response.status_code == 404


def test_reseller_subscribes_its_customer_to_its_own_product(user, tenants):
    mine = make_product(tenants["a"], name="A plan")
    make_product(None, name="Admin plan")
    login(user, tenants["a"])
    customer = tenants["a_customer"]
    page = text(user.get(f"/accounts/{customer.id}"))
    assert "A plan" in page and "Admin plan" not in page
    response = user.post(
        f"{URL}subscribe/{customer.id}", {"product_id": str(mine.id)}, token_from=URL
    )
    assert response.status_code == 303
    assert db.session.scalar(select(Subscription.product_id)) == mine.id


# --- Create Customer's Product field ---


def customer_form(group, **changes) -> dict:
    """A valid Create Customer form."""
    data = {
        "account_number": "4444444444",
        "password": "Secret123x",
        "pin": "123456",
        "first_name": "Ann",
        "country": "GB",
        "timezone": "Pacific/Auckland",
        "status": "active",
        "max_channels": "0",
        "valid_days": "30",
        "rate_group_id": str(group.id),
        "billing_schedule": "daily",
        "currency": "USD",
        "account_type": "prepaid",
        "credit_limit": "0",
        "low_balance_alert": "0",
    }
    data.update(changes)
    return data


def test_create_customer_with_a_product_subscribes_it_in_the_same_go(as_admin, default_rate_group):
    product = make_product(name="Starter")
    page = text(as_admin.get("/accounts/new"))
    assert page.index('name="tax_ids"' if 'name="tax_ids"' in page else "Tax") < page.index(
        'name="product_id"'
    )
    response = as_admin.post(
        "/accounts/new",
        customer_form(default_rate_group, product_id=str(product.id)),
        token_from="/accounts/new",
    )
    assert response.status_code == 200, text(response)
    account = db.session.scalar(select(Account).where(Account.account_number == "4444444444"))
    subscription = db.session.scalar(select(Subscription))
    assert subscription.account_id == account.id and subscription.product_id == product.id
    from portal.products.subscriptions import account_today

    assert subscription.start_date == account_today(account)


@pytest.mark.parametrize("kind", ["other_currency", "unknown", "inactive"])
def test_create_customer_refuses_a_bad_product_on_the_field(as_admin, default_rate_group, kind):
    product = {
        "other_currency": lambda: make_product(currency="EUR", name="Euro"),
        "unknown": lambda: None,
        "inactive": lambda: make_product(status=Status.INACTIVE),
    }[kind]()
    product_id = str(product.id) if product else "99999"
    response = as_admin.post(
        "/accounts/new",
        customer_form(default_rate_group, product_id=product_id),
        token_from="/accounts/new",
    )
    assert response.status_code == 422
    page = text(response)
    assert "choose a product in the account's currency" in page or "Choose a product" in page
    assert (
        db.session.scalar(
            select(func.count()).select_from(Account).where(Account.role == Role.CUSTOMER)
        )
        == 0
    )
    assert db.session.scalar(select(func.count()).select_from(Subscription)) == 0


# --- the customer's own pages ---


def test_customer_sees_its_subscriptions_read_only(user, customer):
    from portal.products.subscriptions import subscribe

    product = make_product(name="Voicemail plus")
    subscribe(None, customer, {"product_id": product.id})
    login(user, customer)
    page = text(user.get("/my/"))
    assert "Voicemail plus" in page and "Cancel subscription" not in page


# --- REST API ---


def test_api_products_create_list_update_with_idempotency(rest):
    body = {
        "name": "SIP trunk",
        "currency": "USD",
        "period": "daily",
        "price": "1.50",
        "prefixes": ["44", "33"],
        "free_minutes": 10,
    }
    headers = {"Idempotency-Key": "prod-1"}
    first = rest.post("/products", body, headers=headers)
    assert first.status_code == 201, first.get_json()
    again = rest.post("/products", body, headers=headers)
    assert again.get_json() == first.get_json()
    assert db.session.scalar(select(func.count()).select_from(Product)) == 1
    product = first.get_json()
    assert product["price"] == "1.50" and product["prefixes"] == ["33", "44"]
    assert [p["name"] for p in rest.get("/products").get_json()["items"]] == ["SIP trunk"]
    changed = rest.patch(f"/products/{product['id']}", {"price": "2"})
    assert changed.status_code == 200 and changed.get_json()["price"] == "2.00"
    assert changed.get_json()["prefixes"] == ["33", "44"]
    bad = rest.post("/products", {**body, "price": "1.234"})
    assert bad.status_code == 422 and "price" in bad.get_json()["fields"]
    bad = rest.post("/products", {**body, "price": "-1"})
    assert bad.status_code == 422
    bad = rest.post("/products", {**body, "prefixes": ["4x"]})
    assert bad.status_code == 422
    assert rest.patch("/products/999999", {"price": "2"}).status_code == 404


def test_api_subscriptions_create_list_cancel(rest, customer):
    product = make_product(name="Plan", price="30")
    url = f"/accounts/{customer.id}/subscriptions"
    created = rest.post(
        url,
        {"product_id": product.id, "start_date": "2026-01-01"},
        headers={"Idempotency-Key": "sub-1"},
    )
    assert created.status_code == 201, created.get_json()
    replay = rest.post(
        url,
        {"product_id": product.id, "start_date": "2026-01-01"},
        headers={"Idempotency-Key": "sub-1"},
    )
    assert replay.get_json() == created.get_json()
    assert db.session.scalar(select(func.count()).select_from(Subscription)) == 1
    items = rest.get(url).get_json()["items"]
    assert [(s["product"], s["start_date"], s["price"]) for s in items] == [
        ("Plan", "2026-01-01", "30.00")
    ]
    sid = created.get_json()["id"]
    cancelled = rest.post(f"{url}/{sid}/cancel", {"mode": "period_end"})
    assert cancelled.status_code == 200 and cancelled.get_json()["status"] in ("cancelled", "ended")
    assert rest.post(f"{url}/{sid}/cancel", {"mode": "now"}).status_code == 422
    assert rest.post(f"{url}/{sid}/cancel", {"mode": "later"}).status_code == 422
    assert rest.post(url, {"product_id": 999999}).status_code == 422
    assert rest.post(url, {"product_id": product.id, "start_date": "2026-02-30"}).status_code == 422


def test_api_tenancy(reseller_rest, tenants):
    theirs = make_product(tenants["b"], name="B plan")
    mine = make_product(tenants["a"], name="A plan")
    assert [p["name"] for p in reseller_rest.get("/products").get_json()["items"]] == ["A plan"]
    assert reseller_rest.patch(f"/products/{theirs.id}", {"price": "1"}).status_code == 404
    b_customer = tenants["b_customer"]
    assert reseller_rest.get(f"/accounts/{b_customer.id}/subscriptions").status_code == 404
    url = f"/accounts/{tenants['a_customer'].id}/subscriptions"
    assert reseller_rest.post(url, {"product_id": theirs.id}).status_code == 422
    assert reseller_rest.post(url, {"product_id": mine.id}).status_code == 201


def test_openapi_documents_products_and_subscriptions(app):
    paths = document()["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/products"])
    assert "patch" in paths["/api/v1/products/{product_id}"]
    assert {"get", "post"} <= set(paths["/api/v1/accounts/{account_id}/subscriptions"])
    assert "post" in paths["/api/v1/accounts/{account_id}/subscriptions/{subscription_id}/cancel"]
