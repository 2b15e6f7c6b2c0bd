"""The REST API of accounts: the form's rules as JSON, tenancy, idempotency and bad input."""

import threading
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from portal.accounts import bulk
from portal.accounts.forms import CustomerForm
from portal.accounts.service import store_search_tokens
from portal.api.schemas import AccountCreate
from portal.extensions import db
from portal.models import (
    Account,
    AuditEntry,
    IdempotencyRecord,
    Job,
    LedgerEntry,
    Role,
    Status,
)
from portal.passwords import verify_password
from tests.conftest import Rest, make_account, make_sip_device


def count(model) -> int:
    """Rows of a table."""
    return db.session.scalar(select(func.count()).select_from(model))


def customer_rows() -> list[Account]:
    """Every customer, deleted ones included."""
    return list(db.session.scalars(select(Account).where(Account.role == Role.CUSTOMER)))


@pytest.fixture
def api_body(default_rate_group, vat):
    """Every field of the Create Customer Account form, as the API takes them."""
    return {
        "account_number": "4444444444",
        "password": "Secret123x",
        "pin": "123456",
        "first_name": "Ann",
        "last_name": "Lee",
        "company": "ACME Telecom",
        "telephone": "020 7946 0958",
        "country": "GB",
        "timezone": "Europe/London",
        "status": "active",
        "max_channels": 2,
        "number_translation": "011/2222,+/00",
        "valid_days": 30,
        "create_sip_device": True,
        "rate_group_id": default_rate_group.id,
        "billing_schedule": "monthly",
        "billing_day": 5,
        "currency": "USD",
        "account_type": "postpaid",
        "credit_limit": "100.5",
        "tax_ids": [vat.id],
        "low_balance_alert": "5",
        "email_alerts": True,
        "email": "Ann.Lee@Example.com",
    }


# -- create --------------------------------------------------------------------------------------


def test_create_with_no_fields_takes_the_forms_defaults_and_returns_secrets_once(
    rest, default_rate_group
):
    response = rest.post("/accounts", {})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    account = db.session.get(Account, body["account"]["id"])
    assert response.headers["Location"].endswith(f"/api/v1/accounts/{account.id}")
    secrets = body["secrets"]
    assert verify_password(account.password_hash, secrets["password"])
    assert secrets["pin"] == account.pin and len(account.pin) >= 4
    assert account.sip_devices[0].password == secrets["sip_password"]
    # The configuration's defaults, and the only rate group in the default currency.
    assert (account.country, account.currency, account.rate_group_id) == (
        "US",
        "USD",
        default_rate_group.id,
    )
    assert body["account"]["account_number"] == account.account_number
    # A later read never shows the secrets again.
    again = rest.get(f"/accounts/{account.id}").get_json()
    assert "secrets" not in again and secrets["password"] not in str(again)


def test_api_and_form_make_identical_accounts(rest, as_admin, api_body):
    form = {
        **{k: str(v) for k, v in api_body.items() if not isinstance(v, bool | list)},
        "create_sip_device": "y",
        "email_alerts": "y",
        "tax_ids": [str(api_body["tax_ids"][0])],
        "send_welcome": "",
    }
    form["account_number"], form["email"] = "5555555555", "form@example.com"
    made_by_form = as_admin.post("/accounts/new", form, token_from="/accounts/new")
    assert made_by_form.status_code == 200, made_by_form.get_data(as_text=True)
    response = rest.post("/accounts", api_body)
    assert response.status_code == 201, response.get_json()

    by_form = db.session.scalar(select(Account).where(Account.account_number == "5555555555"))
    by_api = db.session.get(Account, response.get_json()["account"]["id"])
    different = {"id", "account_number", "email", "created_at", "expiry_date", "sip_devices"}
    from portal.api.accounts import account_json

    form_view, api_view = account_json(by_form), account_json(by_api)
    assert {k: v for k, v in form_view.items() if k not in different} == {
        k: v for k, v in api_view.items() if k not in different
    }
    assert by_api.telephone == "+442079460958" and by_api.email == "ann.lee@example.com"
    assert verify_password(by_api.password_hash, "Secret123x")
    # Both went through the same service: the same audit entry for each.
    actions = db.session.scalars(
        select(AuditEntry.action).where(AuditEntry.account_id.in_([by_form.id, by_api.id]))
    )
    assert sorted(actions) == ["create", "create"]


def test_every_form_field_is_an_api_field():
    form_fields = {name for name, _ in CustomerForm.__dict__.items() if not name.startswith("_")}
    form_fields = {
        name
        for name in form_fields
        if hasattr(getattr(CustomerForm, name), "field_class")
        and name not in ("first_used", "expiry_date")
    }
    assert form_fields - set(AccountCreate.model_fields) == set()


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"country": "XX"}, "country", "Choose a country"),
        ({"billing_day": 40}, "billing_day", "1 to 28"),
        ({"currency": "EUR"}, "rate_group_id", "priced in USD"),
        ({"number_translation": "abc"}, "number_translation", ""),
        ({"email_alerts": True, "email": ""}, "email", "need an e-mail"),
        ({"password": "short"}, "password", ""),
        ({"pin": "12"}, "pin", ""),
        ({"credit_limit": "1.123456"}, "credit_limit", ""),
        ({"max_channels": "2"}, "max_channels", "valid integer"),
        ({"valid_days": 2.5}, "valid_days", ""),
        ({"create_sip_device": "yes"}, "create_sip_device", "valid boolean"),
        ({"status": "paused"}, "status", "active"),
        ({"tax_ids": ["1"]}, "tax_ids.0", ""),
        ({"nickname": "x"}, "nickname", "Unknown field."),
        ({"first_name": "a\x00b"}, "first_name", "NUL"),
        ({"first_name": "x" * 81}, "first_name", "80"),
        ({"rate_group_id": 2**40}, "rate_group_id", ""),
    ],
)
def test_bad_fields_get_a_422_naming_them_and_save_nothing(rest, api_body, change, field, message):
    before = (count(Account), count(AuditEntry))
    response = rest.post("/accounts", {**api_body, **change})
    assert response.status_code == 422, response.get_json()
    fields = response.get_json()["fields"]
    assert field in fields and message in fields[field], fields
    assert (count(Account), count(AuditEntry)) == before


@pytest.mark.parametrize(
    ("kwargs", "status", "text"),
    [
        ({"data": "{not json", "content_type": "application/json"}, 400, "not valid JSON"),
        ({"data": "[1, 2]", "content_type": "application/json"}, 400, "JSON object"),
        ({"data": "null", "content_type": "application/json"}, 400, "JSON object"),
        ({"data": "a=1", "content_type": "application/x-www-form-urlencoded"}, 400, "JSON"),
        ({"data": b"{}" + b" " * 300_000, "content_type": "application/json"}, 413, ""),
    ],
)
def test_malformed_bodies_get_a_clear_4xx_in_json(rest, default_rate_group, kwargs, status, text):
    before = count(Account)
    response = rest.call("POST", "/accounts", **kwargs)
    assert response.status_code == status
    assert response.is_json and text in response.get_json()["error"]
    assert count(Account) == before


def test_reseller_fields_refuse_customer_only_ones(rest, default_rate_group):
    response = rest.post("/accounts", {"role": "reseller", "pin": "1234"})
    assert response.status_code == 422 and response.get_json()["fields"] == {
        "pin": "Customers only."
    }
    made = rest.post("/accounts", {"role": "reseller"})
    assert made.status_code == 201 and made.get_json()["secrets"]["pin"] is None
    assert db.session.get(Account, made.get_json()["account"]["id"]).role == Role.RESELLER


# -- idempotency ---------------------------------------------------------------------------------


def test_a_retried_create_with_the_same_key_creates_nothing_twice(rest, api_body):
    headers = {"Idempotency-Key": "signup-42"}
    first = rest.post("/accounts", api_body, headers=headers)
    retry = rest.post("/accounts", api_body, headers=headers)
    assert first.status_code == retry.status_code == 201
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.get_json()["account"] == first.get_json()["account"]
    # The stored answer never holds the password: a replay has no secrets.
    assert first.get_json()["secrets"]["password"] == "Secret123x"
    assert retry.get_json()["secrets"] is None
    assert "Secret123x" not in db.session.scalar(select(IdempotencyRecord.response_body))
    assert len(customer_rows()) == 1


def test_the_same_key_with_another_body_is_refused(rest, api_body):
    headers = {"Idempotency-Key": "k1"}
    assert rest.post("/accounts", api_body, headers=headers).status_code == 201
    other = rest.post("/accounts", {**api_body, "first_name": "Bob"}, headers=headers)
    assert other.status_code == 422 and "Idempotency-Key" in other.get_json()["fields"]
    assert len(customer_rows()) == 1


def test_a_failed_request_stores_no_answer_and_the_key_can_be_used_again(rest, api_body):
    headers = {"Idempotency-Key": "k2"}
    bad = rest.post("/accounts", {**api_body, "country": "XX"}, headers=headers)
    assert bad.status_code == 422 and count(IdempotencyRecord) == 0
    good = rest.post("/accounts", api_body, headers=headers)
    assert good.status_code == 201 and count(IdempotencyRecord) == 1


def test_keys_are_per_caller(rest, client, admin, api_body):
    from portal.apikeys.service import create_key

    other_admin = make_account(Role.ADMIN, "1999999999")
    other = Rest(client, create_key(other_admin, "crm", "")[1])
    headers = {"Idempotency-Key": "same"}
    assert rest.post("/accounts", api_body, headers=headers).status_code == 201
    second = other.post(
        "/accounts",
        {**api_body, "account_number": "4444444445", "email": None, "email_alerts": False},
        headers=headers,
    )
    assert second.status_code == 201 and len(customer_rows()) == 2


def test_concurrent_payments_with_one_key_post_once(app, rest, customer):
    headers = {"Idempotency-Key": "pay-7"}
    url = f"/accounts/{customer.id}/payments"
    answers = []

    barrier = threading.Barrier(8)

    def pay():
        barrier.wait()
        with app.app_context():  # each thread its own context and session, as in a server
            answers.append(
                Rest(app.test_client(), rest.key).post(url, {"amount": "10"}, headers=headers)
            )

    threads = [threading.Thread(target=pay) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [201] * 8, [a.get_json() for a in answers]
    entries = db.session.scalar(select(func.count()).where(LedgerEntry.account_id == customer.id))
    assert entries == 1
    db.session.refresh(customer)
    assert customer.balance == Decimal(10)
    assert len({a.get_json()["entries"][0]["id"] for a in answers}) == 1


def test_invalid_idempotency_key_is_a_field_error(rest, api_body):
    response = rest.post("/accounts", api_body, headers={"Idempotency-Key": "x" * 256})
    assert response.status_code == 422 and "Idempotency-Key" in response.get_json()["fields"]
    assert customer_rows() == []


# -- list, get, update, status, delete -----------------------------------------------------------


def make_customers(admin, group, n: int, **fields) -> list[Account]:
    """n customers of the admins."""
    return [
        make_account(Role.CUSTOMER, str(7000000000 + i), rate_group_id=group.id, **fields)
        for i in range(n)
    ]


def test_cursor_pages_cover_every_account_once_newest_first(rest, admin, default_rate_group):
    made = make_customers(admin, default_rate_group, 5)
    seen, cursor = [], None
    while True:
        query = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = rest.get("/accounts", query_string=query).get_json()
        seen += [item["id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted((a.id for a in made), reverse=True)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"cursor": "abc"}, "cursor"),
        ({"cursor": "5092883336"}, "cursor"),
        ({"status": "gone"}, "status"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_list_parameters_get_a_422(rest, query, field):
    response = rest.get("/accounts", query_string=query)
    assert response.status_code == 422 and field in response.get_json()["fields"]


def test_list_filters_by_status_type_reseller_and_search(rest, admin, tenants):
    inactive = make_account(Role.CUSTOMER, "7100000001", status=Status.INACTIVE, last_name="Zed")
    store_search_tokens(inactive)
    db.session.commit()

    def numbers(**query):
        page = rest.get("/accounts", query_string=query).get_json()
        return {item["account_number"] for item in page["items"]}

    assert numbers(status="inactive") == {"7100000001"}
    assert numbers(q="zed") == {inactive.account_number}
    assert numbers(reseller_id=tenants["a"].id) == {
        tenants["a_customer"].account_number,
        tenants["a1"].account_number,
    }
    assert numbers(role="reseller") == {tenants[n].account_number for n in ("a", "b", "a1")}
    assert numbers(type="postpaid") == set()


@pytest.fixture
def made(rest, default_rate_group) -> Account:
    """A customer created through the API with the form's defaults."""
    response = rest.post("/accounts", {"first_name": "Carol"})
    assert response.status_code == 201, response.get_json()
    return db.session.get(Account, response.get_json()["account"]["id"])


def test_update_changes_only_the_fields_sent(rest, made):
    customer = made
    response = rest.patch(f"/accounts/{customer.id}", {"company": "New Co", "max_channels": 3})
    assert response.status_code == 200, response.get_json()
    db.session.refresh(customer)
    assert (customer.company, customer.max_channels) == ("New Co", 3)
    assert customer.first_name == "Carol"


def test_invalid_update_changes_nothing(rest, made):
    customer = made
    before = (customer.company, customer.country)
    response = rest.patch(f"/accounts/{customer.id}", {"company": "X", "country": "XX"})
    assert response.status_code == 422 and "country" in response.get_json()["fields"]
    db.session.refresh(customer)
    assert (customer.company, customer.country) == before


def test_type_cannot_change_once_money_is_booked(rest, made):
    customer = made
    assert rest.post(f"/accounts/{customer.id}/payments", {"amount": "5"}).status_code == 201
    response = rest.patch(f"/accounts/{customer.id}", {"account_type": "postpaid"})
    assert response.status_code == 422 and "account_type" in response.get_json()["fields"]


def test_deactivate_activate_and_delete(rest, customer_device, customer):
    off = rest.post(f"/accounts/{customer.id}/deactivate")
    assert off.status_code == 200 and off.get_json()["status"] == "inactive"
    assert off.get_json()["sip_devices"][0]["status"] == "inactive"
    assert rest.post(f"/accounts/{customer.id}/activate").get_json()["status"] == "active"
    assert rest.delete(f"/accounts/{customer.id}").status_code == 204
    assert rest.get(f"/accounts/{customer.id}").status_code == 404
    db.session.refresh(customer)
    assert customer.deleted_at is not None


# -- money ---------------------------------------------------------------------------------------


def test_payment_and_charge_move_the_balance_and_issue_receipts(rest, customer, vat):
    customer.taxes = [vat]
    db.session.commit()
    paid = rest.post(f"/accounts/{customer.id}/payments", {"amount": "20", "description": "Top"})
    assert paid.status_code == 201, paid.get_json()
    assert paid.get_json()["balance"] == "20.00" and paid.get_json()["document"]["kind"]
    charged = rest.post(f"/accounts/{customer.id}/charges", {"amount": "5"})
    body = charged.get_json()
    # 5 + 20 % VAT + 0.10 fixed = 6.10 taken from the prepaid funds.
    assert body["balance"] == "13.90"
    assert [entry["kind"] for entry in body["entries"]] == ["charge", "tax"]


def test_amounts_are_plain_decimals_at_the_minor_unit(rest, customer):
    customer.balance = Decimal("1234.5")
    customer.low_balance_alert = Decimal("0.125")  # finer than a cent: shown rounded half-up
    db.session.commit()
    body = rest.get(f"/accounts/{customer.id}").get_json()
    # For machines: no code, no grouping, the currency's decimals.
    assert (body["balance"], body["low_balance_alert"]) == ("1234.50", "0.13")


@pytest.mark.parametrize(
    ("amount", "status"),
    [("0", 422), ("-5", 422), ("1e3", 422), (10, 422), ("10.123", 422), ("", 422)],
)
def test_bad_amounts_book_nothing(rest, customer, amount, status):
    response = rest.post(f"/accounts/{customer.id}/payments", {"amount": amount})
    assert response.status_code == status and "amount" in response.get_json()["fields"]
    assert count(LedgerEntry) == 0


def test_a_balance_past_the_largest_stored_amount_is_refused_not_a_500(rest, customer):
    big = {"amount": "9999999999999"}
    assert rest.post(f"/accounts/{customer.id}/payments", big).status_code == 201
    response = rest.post(f"/accounts/{customer.id}/payments", big)
    assert response.status_code == 422 and "amount" in response.get_json()["fields"]
    assert count(LedgerEntry) == 1


# -- tenancy -------------------------------------------------------------------------------------


def test_a_resellers_key_sees_and_changes_only_its_subtree(reseller_rest, tenants):
    page = reseller_rest.get("/accounts").get_json()
    assert {item["account_number"] for item in page["items"]} == {
        tenants["a_customer"].account_number,
        tenants["a1"].account_number,
        tenants["a1_customer"].account_number,
    }
    foreign = tenants["b_customer"]
    for method, url, body in (
        ("GET", f"/accounts/{foreign.id}", None),
        ("PATCH", f"/accounts/{foreign.id}", {"company": "Hijacked"}),
        ("POST", f"/accounts/{foreign.id}/deactivate", None),
        ("POST", f"/accounts/{foreign.id}/payments", {"amount": "5"}),
        ("POST", f"/accounts/{foreign.id}/charges", {"amount": "5"}),
        ("DELETE", f"/accounts/{foreign.id}", None),
    ):
        response = reseller_rest.call(method, url, json=body)
        assert response.status_code == 404, (method, url)
    db.session.refresh(foreign)
    assert (foreign.company, foreign.status, foreign.deleted_at) == ("", Status.ACTIVE, None)
    assert count(LedgerEntry) == 0


def test_a_resellers_key_creates_under_itself_with_its_own_rate_groups(reseller_rest, tenants):
    refused = reseller_rest.post(
        "/accounts", {"rate_group_id": tenants["b_group"].id, "currency": "USD"}
    )
    assert refused.status_code == 422 and "rate_group_id" in refused.get_json()["fields"]
    staff_only = reseller_rest.post("/accounts", {"reseller_id": tenants["b"].id})
    assert staff_only.status_code == 422 and "reseller_id" in staff_only.get_json()["fields"]
    made = reseller_rest.post("/accounts", {"rate_group_id": tenants["a_group"].id})
    assert made.status_code == 201, made.get_json()
    account = db.session.get(Account, made.get_json()["account"]["id"])
    assert account.reseller_id == tenants["a"].id


def test_rate_groups_and_taxes_are_scoped_to_the_key(reseller_rest, tenants):
    groups = reseller_rest.get("/rate-groups").get_json()["items"]
    taxes = reseller_rest.get("/taxes").get_json()["items"]
    assert [g["name"] for g in groups] == ["Plan A"]
    assert [t["name"] for t in taxes] == ["Tax A"]


def test_without_a_key_nothing_but_the_document_is_served(client, customer):
    assert client.get("/api/v1/accounts").status_code == 401
    assert client.get(f"/api/v1/accounts/{customer.id}").status_code == 401
    document = client.get("/api/v1/openapi.json")
    assert document.status_code == 200 and document.get_json()["openapi"] == "3.1.0"


def test_the_openapi_document_is_made_from_the_validating_schemas(client):
    document = client.get("/api/v1/openapi.json").get_json()
    schema = document["components"]["schemas"]["AccountCreate"]
    assert set(schema["properties"]) == set(AccountCreate.model_fields)
    assert schema["additionalProperties"] is False
    create = document["paths"]["/api/v1/accounts"]["post"]
    assert create["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/AccountCreate"
    }
    assert {"201", "401", "409", "422"} <= set(create["responses"])
    assert any(p["name"] == "Idempotency-Key" for p in create["parameters"])


# -- keys and the reference page in the portal ---------------------------------------------------


def test_a_reseller_makes_its_own_keys_and_sees_only_them(user, admin, tenants):
    from portal.apikeys.service import create_key
    from portal.models import ApiKey

    create_key(admin, "admins-switch", "")
    assert user.login(tenants["a"].account_number).status_code == 303
    page = user.post("/api-keys/", {"name": "signup page", "allowed_ips": ""}, "/api-keys/")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and "signup page" in text and "admins-switch" not in text
    key = text.split('id="new-api-key">')[1].split("<")[0]
    made = db.session.scalar(select(ApiKey).where(ApiKey.name == "signup page"))
    assert made.owner_id == tenants["a"].id
    # The new key acts in the reseller's tenant.
    listed = Rest(user.client, key).get("/accounts").get_json()["items"]
    assert tenants["b_customer"].account_number not in {i["account_number"] for i in listed}
    admins_key = db.session.scalar(select(ApiKey).where(ApiKey.name == "admins-switch"))
    revoke = user.post(f"/api-keys/{admins_key.id}/revoke", {}, "/api-keys/")
    assert revoke.status_code == 404
    db.session.refresh(admins_key)
    assert admins_key.revoked_at is None


def test_the_reference_page_lists_every_operation_and_schema(as_admin):
    page = as_admin.get("/api-keys/reference")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    for expected in (
        "/api/v1/accounts/{account_id}/payments",
        "Create a customer or reseller",
        'id="schema-AccountCreate"',
        "number_translation",
        "Idempotency-Key",
        # The softswitch's endpoints, the directory's form body among them.
        "/api/v1/calls/authorize",
        "/api/v1/calls/{call_id}/end",
        'id="schema-CallAuthorization"',
        'id="schema-CallDecisionOut"',
        "(application/x-www-form-urlencoded)",
    ):
        assert expected in text, expected


def test_ids_beyond_the_integer_range_are_not_found(rest, as_admin):
    huge = 2**63
    assert rest.get(f"/accounts/{huge}").status_code == 404
    assert rest.delete(f"/accounts/{huge}").status_code == 404
    assert as_admin.get(f"/accounts/{huge}").status_code == 404


# -- mass create ---------------------------------------------------------------------------------


def test_mass_create_returns_every_credential_once(rest, default_rate_group):
    body = {"count": 3, "rate_group_id": default_rate_group.id, "create_sip_device": True}
    headers = {"Idempotency-Key": "batch-1"}
    response = rest.post("/accounts/mass-create", body, headers=headers)
    assert response.status_code == 201, response.get_json()
    answer = response.get_json()
    assert len(answer["account_ids"]) == 3 == len(answer["credentials"])
    for credential in answer["credentials"]:
        account = db.session.get(Account, credential["account_id"])
        assert verify_password(account.password_hash, credential["password"])
        assert account.pin == credential["pin"]
        assert account.sip_devices[0].password == credential["sip_password"]
    replay = rest.post("/accounts/mass-create", body, headers=headers)
    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.get_json() == {"account_ids": answer["account_ids"], "credentials": None}
    assert len(customer_rows()) == 3


@pytest.mark.parametrize(
    ("change", "field"),
    [({"count": 0}, "count"), ({"count": 10_001}, "count"), ({"currency": "EUR"}, "rate_group_id")],
)
def test_mass_create_bad_input_creates_nothing(rest, default_rate_group, change, field):
    body = {"count": 2, "rate_group_id": default_rate_group.id, **change}
    response = rest.post("/accounts/mass-create", body)
    assert response.status_code == 422 and field in response.get_json()["fields"]
    assert customer_rows() == []


def test_a_resellers_mass_create_stays_in_its_tenant(reseller_rest, tenants):
    foreign = reseller_rest.post(
        "/accounts/mass-create", {"count": 2, "rate_group_id": tenants["b_group"].id}
    )
    assert foreign.status_code == 422 and "rate_group_id" in foreign.get_json()["fields"]
    made = reseller_rest.post(
        "/accounts/mass-create", {"count": 2, "rate_group_id": tenants["a_group"].id}
    )
    assert made.status_code == 201, made.get_json()
    owners = {db.session.get(Account, i).reseller_id for i in made.get_json()["account_ids"]}
    assert owners == {tenants["a"].id}


def test_purge_forgets_only_answers_older_than_a_day(app, rest, api_body):
    from datetime import timedelta

    from portal.models import utcnow

    assert rest.post("/accounts", api_body, headers={"Idempotency-Key": "old"}).status_code == 201
    body2 = {**api_body, "account_number": "4444444446", "email": "new@example.com"}
    assert rest.post("/accounts", body2, headers={"Idempotency-Key": "new"}).status_code == 201
    old = db.session.scalar(select(IdempotencyRecord).where(IdempotencyRecord.key == "old"))
    old.created_at = utcnow() - timedelta(hours=25)
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["api", "purge"])
    assert result.exit_code == 0 and "Purged 1" in result.output
    assert list(db.session.scalars(select(IdempotencyRecord.key))) == ["new"]


def test_a_page_of_accounts_costs_a_few_queries_not_some_per_account(
    rest, admin, default_rate_group, vat
):
    from sqlalchemy import event

    for account in make_customers(admin, default_rate_group, 20):
        account.taxes = [vat]
        make_sip_device(account, account.account_number, "sip-pass")
    db.session.commit()
    statements = []

    def count(*_args):
        statements.append(1)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        page = rest.get("/accounts", query_string={"limit": 20}).get_json()
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert len(page["items"]) == 20 and all(item["tax_ids"] == [vat.id] for item in page["items"])
    assert all(len(item["sip_devices"]) == 1 for item in page["items"])
    assert len(statements) <= 8, len(statements)


def test_a_large_mass_create_answers_202_with_a_job_whose_credentials_come_once(
    rest, default_rate_group
):
    count = bulk.INLINE_COUNT + 1
    body = {"count": count, "rate_group_id": default_rate_group.id}
    headers = {"Idempotency-Key": "big-batch"}
    response = rest.post("/accounts/mass-create", body, headers=headers)
    assert response.status_code == 202, response.get_json()
    job_url = response.headers["Location"]
    job_id = response.get_json()["job"]["id"]
    assert job_url == f"/api/v1/jobs/{job_id}"
    replay = rest.post("/accounts/mass-create", body, headers=headers)
    assert replay.status_code == 202 and replay.get_json()["job"]["id"] == job_id
    assert replay.headers["Location"] == job_url
    job = rest.get(f"/jobs/{job_id}").get_json()
    assert (job["status"], job["done"], job["total"]) == ("done", count, count)
    assert job["result"] == {"created": count} and job["credentials_available"] is True
    assert len(customer_rows()) == count  # the replay made no second batch
    taken = rest.post(f"/jobs/{job_id}/credentials")
    assert taken.status_code == 200 and taken.headers["Cache-Control"] == "no-store"
    credentials = taken.get_json()["credentials"]
    assert len(credentials) == count
    account = db.session.get(Account, credentials[0]["account_id"])
    assert verify_password(account.password_hash, credentials[0]["password"])
    again = rest.post(f"/jobs/{job_id}/credentials")
    assert again.status_code == 404 and again.get_json()["error"]
    assert rest.get(f"/jobs/{job_id}").get_json()["credentials_available"] is False


def test_a_large_mass_create_refused_by_the_rules_makes_no_job(rest, default_rate_group):
    body = {"count": bulk.INLINE_COUNT + 1, "rate_group_id": 999_999}
    response = rest.post("/accounts/mass-create", body)
    assert response.status_code == 422 and "rate_group_id" in response.get_json()["fields"]
    assert db.session.scalar(select(func.count()).select_from(Job)) == 0


def test_another_tenants_job_is_not_found_over_the_api(reseller_rest, rest, default_rate_group):
    body = {"count": bulk.INLINE_COUNT + 1, "rate_group_id": default_rate_group.id}
    job_id = rest.post("/accounts/mass-create", body).get_json()["job"]["id"]
    assert reseller_rest.get(f"/jobs/{job_id}").status_code == 404
    assert reseller_rest.post(f"/jobs/{job_id}/credentials").status_code == 404
    assert rest.post(f"/jobs/{job_id}/credentials").status_code == 200
