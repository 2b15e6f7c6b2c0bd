"""Moving accounts between owners (issue 17.4); an inactive reseller stops its subtree (17.5)."""

import html

import pytest
from sqlalchemy import select

from portal.accounts.moving import LIVE_CALLS
from portal.accounts.service import set_status
from portal.apikeys.service import create_key
from portal.extensions import db
from portal.models import Account, AuditEntry, Rate, RateGroup, Role, Status
from tests.conftest import Api, Browser, Rest, make_account


def text(response) -> str:
    """The response text, entities decoded."""
    return html.unescape(response.get_data(as_text=True))


def logged_in(app, account: Account) -> Browser:
    """A browser logged in as `account`."""
    browser = Browser(app.test_client())
    response = browser.login(account.account_number)
    assert response.status_code == 303, text(response)
    return browser


def move(browser: Browser, account: Account, owner: Account | None, group, taxes=(), **kwargs):
    """POST the Move form of `account` (owner None: the admins)."""
    url = f"/accounts/{account.id}/move"
    data = {
        "reseller_id": str(owner.id) if owner else "",
        "rate_group_id": str(group.id) if group else "",
        "tax_ids": [str(tax.id) for tax in taxes],
    }
    return browser.post(url, data, token_from=url, **kwargs)


def fresh(account: Account) -> Account:
    """The account as stored now."""
    db.session.expire_all()
    return db.session.get(Account, account.id)


# --- Moving ---


def test_admin_moves_a_customer_to_another_reseller(app, admin, tenants):
    customer, b = tenants["a_customer"], tenants["b"]
    staff = logged_in(app, admin)
    page = staff.get(f"/accounts/{customer.id}")
    assert f'href="/accounts/{customer.id}/move"' in text(page)
    form = text(staff.get(f"/accounts/{customer.id}/move"))
    assert f'<option value="{b.id}">Reseller B (2000000002)</option>' in form
    assert f'<option value="{tenants["a"].id}">' not in form  # its owner now
    response = move(staff, customer, b, tenants["b_group"], [tenants["b_tax"]])
    assert response.status_code == 303, text(response)
    moved = fresh(customer)
    assert moved.reseller_id == b.id and moved.tenant_path == f"{b.id}/"
    assert moved.rate_group_id == tenants["b_group"].id
    assert [tax.id for tax in moved.taxes] == [tenants["b_tax"].id]
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "move"))
    assert entry.account_id == customer.id and entry.actor_id == admin.id
    assert entry.changes["owner"] == ["Reseller A (2000000001)", "Reseller B (2000000002)"]
    assert entry.changes["taxes"] == [[], ["Tax B"]]
    # The tenant boundary follows the move: B sees it now, A no longer does.
    assert logged_in(app, b).get(f"/accounts/{customer.id}").status_code == 200
    assert logged_in(app, tenants["a"]).get(f"/accounts/{customer.id}").status_code == 404


def test_moving_a_sub_reseller_takes_its_whole_subtree(app, admin, tenants):
    a, b, a1, a1_customer = tenants["a"], tenants["b"], tenants["a1"], tenants["a1_customer"]
    staff = logged_in(app, admin)
    response = move(staff, a1, b, tenants["b_group"])
    assert response.status_code == 303, text(response)
    assert fresh(a1).tenant_path == f"{b.id}/"
    assert fresh(a1_customer).tenant_path == f"{b.id}/{a1.id}/"
    # Its customers keep the rate group their own reseller gave them.
    assert fresh(a1_customer).rate_group_id == tenants["a1_group"].id
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "move"))
    assert entry.changes["accounts moved with it"] == [None, 1]
    as_b = logged_in(app, b)
    for account in (a1, a1_customer):
        assert as_b.get(f"/accounts/{account.id}").status_code == 200
        assert logged_in(app, a).get(f"/accounts/{account.id}").status_code == 404
    assert a1_customer.account_number in text(as_b.get("/accounts/"))
    # The sub-reseller still manages its own customer, and nothing of A's.
    as_a1 = logged_in(app, a1)
    assert as_a1.get(f"/accounts/{a1_customer.id}").status_code == 200
    assert as_a1.get(f"/accounts/{tenants['a_customer'].id}").status_code == 404


def test_staff_move_a_reseller_to_the_top_level(app, subadmin, tenants, default_rate_group):
    a1, a1_customer = tenants["a1"], tenants["a1_customer"]
    response = move(logged_in(app, subadmin), a1, None, default_rate_group)
    assert response.status_code == 303, text(response)
    assert fresh(a1).reseller_id is None and fresh(a1).tenant_path == ""
    assert fresh(a1_customer).tenant_path == f"{a1.id}/"
    assert logged_in(app, tenants["a"]).get(f"/accounts/{a1_customer.id}").status_code == 404


def test_a_reseller_moves_within_its_own_subtree(app, tenants):
    a, a1, customer = tenants["a"], tenants["a1"], tenants["a_customer"]
    as_a = logged_in(app, a)
    form = text(as_a.get(f"/accounts/{customer.id}/move"))
    assert "Reseller B" not in form and "Plan B" not in form and "Default" not in form
    assert move(as_a, customer, a1, tenants["a1_group"]).status_code == 303
    assert fresh(customer).tenant_path == f"{a.id}/{a1.id}/"
    assert logged_in(app, a1).get(f"/accounts/{customer.id}").status_code == 200
    # And back to itself, with its own rate group.
    assert move(as_a, customer, a, tenants["a_group"]).status_code == 303
    assert fresh(customer).reseller_id == a.id and fresh(customer).tenant_path == f"{a.id}/"


@pytest.mark.parametrize("target", ["itself", "descendant"])
def test_an_account_cannot_move_under_itself_or_its_subtree(app, admin, tenants, target):
    a = tenants["a"]
    owner = a if target == "itself" else tenants["a1"]
    response = move(logged_in(app, admin), a, owner, tenants["a1_group"])
    assert response.status_code == 422
    assert "cannot be moved under itself or its own subtree" in text(response)
    assert fresh(a).tenant_path == "" and fresh(tenants["a1"]).tenant_path == f"{a.id}/"


def test_a_target_the_mover_cannot_see_is_not_found(app, tenants):
    as_a = logged_in(app, tenants["a"])
    customer, b = tenants["a_customer"], tenants["b"]
    assert move(as_a, customer, b, tenants["b_group"]).status_code == 404
    url = f"/accounts/{customer.id}/move/choices?reseller_id={b.id}"
    assert as_a.get(url).status_code == 404
    # Nor may it move what it cannot see, or staff, or itself.
    assert as_a.get(f"/accounts/{tenants['b_customer'].id}/move").status_code == 404
    assert as_a.get(f"/accounts/{tenants['a'].id}/move").status_code == 404
    assert fresh(customer).reseller_id == tenants["a"].id


def test_admins_and_sub_admins_are_not_moved(app, admin, subadmin):
    staff = logged_in(app, admin)
    assert staff.get(f"/accounts/{subadmin.id}/move").status_code == 404


def test_a_live_call_anywhere_in_the_subtree_refuses_the_move(app, admin, tenants):
    a1, a1_customer = tenants["a1"], tenants["a1_customer"]
    a1_customer.live_calls = 1
    db.session.commit()
    response = move(logged_in(app, admin), a1, tenants["b"], tenants["b_group"])
    assert response.status_code == 422
    assert LIVE_CALLS in text(response)
    assert fresh(a1).reseller_id == tenants["a"].id
    assert fresh(a1_customer).tenant_path == f"{tenants['a'].id}/{a1.id}/"
    assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "move")) is None


def test_the_rate_group_and_taxes_must_be_the_new_owners(app, admin, tenants):
    customer, b = tenants["a_customer"], tenants["b"]
    staff = logged_in(app, admin)
    response = move(staff, customer, b, tenants["a_group"], [tenants["a_tax"]])
    assert response.status_code == 422
    page = text(response)
    assert "Choose a rate group of the new owner." in page
    assert "Choose taxes of the new owner from the list." in page
    response = move(staff, customer, b, None)
    assert "Choose a rate group of the new owner." in text(response)
    euro = RateGroup(name="Euro plan", currency="EUR", reseller_id=b.id)
    db.session.add(euro)
    db.session.commit()
    response = move(staff, customer, b, euro)
    assert response.status_code == 422 and "priced in EUR" in text(response)
    assert fresh(customer).reseller_id == tenants["a"].id


def test_garbage_and_the_current_owner_are_field_errors(app, admin, tenants):
    customer = tenants["a_customer"]
    staff = logged_in(app, admin)
    response = move(staff, customer, tenants["a"], tenants["a_group"])
    assert response.status_code == 422 and "already belongs there" in text(response)
    url = f"/accounts/{customer.id}/move"
    response = staff.post(url, {"reseller_id": "abc", "rate_group_id": "x"}, token_from=url)
    assert response.status_code == 422 and "Choose the new owner from the list." in text(response)


def test_the_move_form_is_htmx_friendly(app, admin, tenants):
    customer, b = tenants["a_customer"], tenants["b"]
    staff = logged_in(app, admin)
    choices = staff.get(f"/accounts/{customer.id}/move/choices?reseller_id={b.id}")
    assert choices.status_code == 200 and 'hx-swap-oob="true"' in text(choices)
    assert "Plan B" in text(choices) and "Plan A" not in text(choices)
    headers = {"HX-Request": "true"}
    response = move(staff, customer, b, tenants["b_group"], headers=headers)
    assert response.status_code == 204
    assert response.headers["HX-Redirect"] == f"/accounts/{customer.id}"


def test_the_move_needs_the_csrf_token(app, admin, tenants):
    staff = logged_in(app, admin)
    customer = tenants["a_customer"]
    response = staff.client.post(
        f"/accounts/{customer.id}/move",
        data={"reseller_id": str(tenants["b"].id), "rate_group_id": str(tenants["b_group"].id)},
    )
    assert response.status_code in (400, 422)
    assert fresh(customer).reseller_id == tenants["a"].id


def test_a_moved_resellers_api_key_follows_it(app, client, admin, tenants):
    a1, b = tenants["a1"], tenants["b"]
    _row, key = create_key(a1, "signup", "")
    rest = Rest(client, key)
    url = f"/accounts/{tenants['a1_customer'].id}"
    assert rest.get(url).status_code == 200  # its identity is now cached
    assert move(logged_in(app, admin), a1, b, tenants["b_group"]).status_code == 303
    assert rest.get(url).status_code == 200
    assert rest.get(f"/accounts/{tenants['a_customer'].id}").status_code == 404


# --- Deactivating a reseller stops its whole subtree ---


def test_an_inactive_reseller_stops_its_subtrees_logins_and_sessions(app, admin, tenants):
    a, a1, a1_customer = tenants["a"], tenants["a1"], tenants["a1_customer"]
    customer_browser = logged_in(app, a1_customer)
    reseller_browser = logged_in(app, a1)
    set_status(admin, fresh(a), Status.INACTIVE)
    for account in (a1, a1_customer, tenants["a_customer"]):
        response = Browser(app.test_client()).login(account.account_number)
        assert response.status_code == 422
        assert "This account is inactive." in text(response)
    assert customer_browser.get("/my/").status_code == 302
    assert reseller_browser.get("/dashboard/").status_code == 302
    # Another reseller's world goes on.
    assert logged_in(app, tenants["b_customer"]).get("/my/").status_code == 200
    set_status(admin, fresh(a), Status.ACTIVE)
    assert customer_browser.get("/my/").status_code == 200
    assert reseller_browser.get("/dashboard/").status_code == 200
    assert logged_in(app, a1_customer).get("/my/").status_code == 200


def test_a_deleted_reseller_stops_its_subtree_too(app, admin, tenants):
    a = fresh(tenants["a"])
    a.deleted_at = a.created_at
    db.session.commit()
    response = Browser(app.test_client()).login(tenants["a1_customer"].account_number)
    assert response.status_code == 422


def test_an_inactive_reseller_stops_its_subtrees_api_keys(app, client, admin, tenants):
    _row, key = create_key(tenants["a1"], "signup", "")
    rest = Rest(client, key)
    assert rest.get("/accounts").status_code == 200
    set_status(admin, fresh(tenants["a"]), Status.INACTIVE)
    response = rest.get("/accounts")
    assert response.status_code == 401
    assert response.json["error"] == "The account of this API key is not active."
    call = Api(client, key).authorize(
        call_id="k1", account=tenants["a1_customer"].account_number, destination="4420"
    )
    assert call.status_code == 401
    set_status(admin, fresh(tenants["a"]), Status.ACTIVE)
    assert rest.get("/accounts").status_code == 200


def test_an_inactive_reseller_stops_its_subtrees_calls(app, api, admin, tenants_calling):
    tenants = tenants_calling
    customer = tenants["a1_customer"]
    db.session.add(Rate(rate_group_id=tenants["a1_group"].id, prefix="4420", destination="L"))
    db.session.commit()

    def authorize(call_id):
        body = {"call_id": call_id, "account": customer.account_number, "destination": "4420"}
        return api.authorize(explain=True, **body).json

    assert authorize("c1")["cause"] != "ACCOUNT_INACTIVE_DELETED"
    assert "<result" not in api.directory(customer.account_number).get_data(as_text=True)
    set_status(admin, fresh(tenants["a"]), Status.INACTIVE)
    answer = authorize("c2")
    assert answer["allowed"] is False and answer["cause"] == "ACCOUNT_INACTIVE_DELETED"
    assert answer["refused_by"] == {
        "level": 2,
        "account": tenants["a"].account_number,
        "account_id": tenants["a"].id,
    }
    check = next(
        c for c in answer["checks"] if c.get("level") == 2 and c["check"] == "account_active"
    )
    assert check["passed"] is False and check["status"] == "inactive"
    assert 'status="not found"' in api.directory(customer.account_number).get_data(as_text=True)
    set_status(admin, fresh(tenants["a"]), Status.ACTIVE)
    assert authorize("c3")["cause"] != "ACCOUNT_INACTIVE_DELETED"
    assert "<result" not in api.directory(customer.account_number).get_data(as_text=True)


def test_a_reseller_deactivating_its_sub_reseller_stops_that_subtree(app, tenants):
    as_a = logged_in(app, tenants["a"])
    url = f"/accounts/{tenants['a1'].id}/status"
    assert as_a.post(url, {"status": "inactive"}, token_from="/accounts/").status_code == 303
    refused = Browser(app.test_client()).login(tenants["a1_customer"].account_number)
    assert refused.status_code == 422
    # Its own customers, and the admins' customers, go on.
    assert logged_in(app, tenants["a_customer"]).get("/my/").status_code == 200
    admins_customer = make_account(Role.CUSTOMER, "3999999999")
    assert logged_in(app, admins_customer).get("/my/").status_code == 200


# --- Moving through the REST API ---


def test_the_api_moves_a_reseller_with_its_subtree(app, client, admin, tenants):
    a1, b = tenants["a1"], tenants["b"]
    rest = Rest(client, create_key(admin, "crm", "")[1])
    answer = rest.post(
        f"/accounts/{a1.id}/move",
        {"reseller_id": b.id, "rate_group_id": tenants["b_group"].id, "tax_ids": []},
    )
    assert answer.status_code == 200, answer.json
    assert answer.json["reseller_id"] == b.id
    assert fresh(tenants["a1_customer"]).tenant_path == f"{b.id}/{a1.id}/"
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "move"))
    assert entry.entity_label == a1.account_number


def test_the_api_refuses_a_bad_move_naming_the_field_and_changes_nothing(app, client, tenants):
    a, customer = tenants["a"], tenants["a_customer"]
    rest = Rest(client, create_key(a, "crm", "")[1])
    url = f"/accounts/{customer.id}/move"
    # Another tenant's reseller, a rate group of the wrong owner, an unknown field, a bad id.
    cases = [
        ({"reseller_id": tenants["b"].id, "rate_group_id": tenants["b_group"].id}, "reseller_id"),
        (
            {"reseller_id": tenants["a1"].id, "rate_group_id": tenants["b_group"].id},
            "rate_group_id",
        ),
        ({"reseller_id": tenants["a1"].id, "rate_group_id": 0}, "rate_group_id"),
        ({"reseller_id": tenants["a1"].id, "rate_group_id": 1, "color": "red"}, "color"),
        ({"reseller_id": None, "rate_group_id": tenants["a_group"].id}, "reseller_id"),
    ]
    for body, field in cases:
        answer = rest.post(url, body)
        assert answer.status_code == 422, (body, answer.json)
        assert field in answer.json["fields"], (body, answer.json)
    assert fresh(customer).reseller_id == a.id
    assert db.session.scalar(select(AuditEntry).where(AuditEntry.action == "move")) is None


def test_the_api_answers_404_for_an_account_the_key_cannot_see(app, client, tenants):
    rest = Rest(client, create_key(tenants["a"], "crm", "")[1])
    answer = rest.post(
        f"/accounts/{tenants['b_customer'].id}/move",
        {"reseller_id": tenants["a1"].id, "rate_group_id": tenants["a1_group"].id},
    )
    assert answer.status_code == 404
    assert fresh(tenants["b_customer"]).reseller_id == tenants["b"].id
