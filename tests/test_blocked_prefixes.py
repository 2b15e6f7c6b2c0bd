"""Blocked prefixes: DESTINATION_BLOCKED after the rate checks, per account, group and level."""

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import (
    AccountBlockedPrefix,
    AuditEntry,
    Call,
    RateGroupBlockedPrefix,
)
from tests.conftest import make_caller

LONDON = "442079460958"  # the 4420 rate (call_rates)
MOBILE = "447911123456"  # the 44 rate
HX = {"HX-Request": "true"}


def _block(account=None, group=None, prefix="4479"):
    """A blocked prefix of an account or a rate group, straight into the database."""
    if account is not None:
        db.session.add(AccountBlockedPrefix(account_id=account.id, prefix=prefix))
    else:
        db.session.add(RateGroupBlockedPrefix(rate_group_id=group.id, prefix=prefix))
    db.session.commit()


def _checks(body: dict) -> dict:
    """The explained checks by name (the caller's own, level 0)."""
    return {check["check"]: check for check in body["checks"] if "level" not in check}


def test_a_call_to_an_accounts_blocked_prefix_is_refused_with_its_own_cause(api, call_rates):
    account = make_caller("5000000101", call_rates, "10")
    _block(account, prefix="4479")
    response = api.authorize(
        call_id="c1", account=account.account_number, destination=MOBILE, explain=True
    )
    body = response.json
    assert response.status_code == 200
    assert (body["allowed"], body["cause"], body["max_duration_seconds"]) == (
        False,
        "DESTINATION_BLOCKED",
        0,
    )
    blocked = _checks(body)["destination_allowed"]
    assert blocked == {
        "check": "destination_allowed",
        "passed": False,
        "translated_destination": MOBILE,
        "blocked_prefix": "4479",
        "blocked_by": "account",
    }
    assert body["refused_by"] == {"level": 0, "account": "5000000101", "account_id": account.id}
    call = db.session.scalar(select(Call))
    assert (call.status.value, call.cause, call.reserved) == ("refused", "DESTINATION_BLOCKED", 0)
    # Another number of the same rate is not blocked, and nothing was reserved by the refusal.
    other = api.authorize(call_id="c2", account=account.account_number, destination=LONDON)
    assert other.json["allowed"] is True, other.json
    db.session.refresh(account)
    assert account.live_calls == 1


def test_a_rate_groups_blocked_prefix_refuses_every_account_of_the_group(api, call_rates):
    first = make_caller("5000000102", call_rates, "10")
    second = make_caller("5000000103", call_rates, "10")
    _block(group=call_rates, prefix="44207")
    for number, account in enumerate((first, second)):
        response = api.authorize(
            call_id=f"c{number}", account=account.account_number, destination=LONDON, explain=True
        )
        assert response.json["cause"] == "DESTINATION_BLOCKED"
        blocked = _checks(response.json)["destination_allowed"]
        assert (blocked["blocked_prefix"], blocked["blocked_by"]) == ("44207", "rate group")
    allowed = api.authorize(call_id="c3", account=first.account_number, destination=MOBILE)
    assert allowed.json["allowed"] is True


def test_the_longest_blocked_prefix_is_named_and_a_shorter_number_is_not_blocked(api, call_rates):
    account = make_caller("5000000104", call_rates, "10")
    _block(account, prefix="44")
    _block(account, prefix="4420794")
    body = api.authorize(
        call_id="c1", account=account.account_number, destination=LONDON, explain=True
    ).json
    assert _checks(body)["destination_allowed"]["blocked_prefix"] == "4420794"
    db.session.execute(db.delete(AccountBlockedPrefix).where(AccountBlockedPrefix.prefix == "44"))
    db.session.commit()
    # "4420" does not start with "4420794": the blocked prefix matches only longer numbers.
    short = api.authorize(call_id="c2", account=account.account_number, destination="4420")
    assert short.json["allowed"] is True, short.json


def test_the_translated_number_is_checked(api, call_rates):
    # 0 becomes 44: the blocked 4479 is refused when dialled as 07911..., and a blocked
    # prefix of the number as dialled does not matter once translation changes it.
    account = make_caller("5000000105", call_rates, "10", number_translation="0/44")
    _block(account, prefix="4479")
    _block(account, prefix="079")
    refused = api.authorize(
        call_id="c1", account=account.account_number, destination="07911123456", explain=True
    )
    assert refused.json["cause"] == "DESTINATION_BLOCKED"
    assert _checks(refused.json)["destination_allowed"]["translated_destination"] == MOBILE
    db.session.execute(db.delete(AccountBlockedPrefix).where(AccountBlockedPrefix.prefix == "4479"))
    db.session.commit()
    allowed = api.authorize(call_id="c2", account=account.account_number, destination="07911123456")
    assert allowed.json["allowed"] is True, allowed.json


def test_the_rate_checks_come_first_and_funds_after(api, call_rates):
    # No rate for 33: ORIGINATION_RATE_NOT_FOUND although 33 is blocked too.
    rich = make_caller("5000000106", call_rates, "10")
    _block(rich, prefix="33")
    no_rate = api.authorize(call_id="c1", account=rich.account_number, destination="33123456")
    assert no_rate.json["cause"] == "ORIGINATION_RATE_NOT_FOUND"
    # No funds and blocked: DESTINATION_BLOCKED, as it comes before the funds.
    poor = make_caller("5000000107", call_rates, "0")
    _block(poor, prefix="44")
    body = api.authorize(
        call_id="c2", account=poor.account_number, destination=MOBILE, explain=True
    ).json
    assert body["cause"] == "DESTINATION_BLOCKED"
    checks = [check["check"] for check in body["checks"]]
    assert checks.index("rate") < checks.index("destination_allowed") < checks.index("funds")
    assert _checks(body)["funds"]["passed"] is False


@pytest.mark.parametrize("where", ["account", "group"])
def test_a_resellers_blocked_prefix_refuses_its_customers_calls(api, tenants_calling, where):
    reseller = tenants_calling["a"]
    customer = tenants_calling["a_customer"]
    if where == "account":
        _block(reseller, prefix="4479")
    else:
        _block(group=tenants_calling["wholesale_group"], prefix="4479")
    response = api.authorize(
        call_id="c1", account=customer.account_number, destination=MOBILE, explain=True
    )
    body = response.json
    assert (body["allowed"], body["cause"]) == (False, "DESTINATION_BLOCKED")
    assert body["refused_by"] == {"level": 1, "account": "2000000001", "account_id": reseller.id}
    level = next(
        c for c in body["checks"] if c.get("level") == 1 and c["check"] == "destination_allowed"
    )
    assert level["blocked_by"] == ("account" if where == "account" else "rate group")
    assert _checks(body)["destination_allowed"]["passed"] is True
    # The sub-reseller's customer is refused by the same reseller, two levels up.
    deeper = api.authorize(
        call_id="c2",
        account=tenants_calling["a1_customer"].account_number,
        destination=MOBILE,
        explain=True,
    ).json
    assert deeper["cause"] == "DESTINATION_BLOCKED" and deeper["refused_by"]["level"] == 2
    # Reseller B is not concerned by A's own blocks, but shares the admins' Wholesale group.
    other = api.authorize(
        call_id="c3", account=tenants_calling["b_customer"].account_number, destination=MOBILE
    )
    assert other.json["allowed"] is (where == "account"), other.json


def test_test_a_call_shows_the_blocked_prefix(as_admin, call_rates):
    account = make_caller("5000000108", call_rates, "10")
    _block(account, prefix="4479")
    text = as_admin.get(f"/accounts/{account.id}/test-call?destination={MOBILE}").text
    assert "Refused: DESTINATION_BLOCKED" in text
    assert "destination allowed" in text and "blocked prefix: 4479" in text
    assert db.session.scalar(select(func.count()).select_from(Call)) == 0


# --- The account page -------------------------------------------------------------------


def _account_prefixes(account) -> list[str]:
    return list(
        db.session.scalars(
            select(AccountBlockedPrefix.prefix)
            .where(AccountBlockedPrefix.account_id == account.id)
            .order_by(AccountBlockedPrefix.prefix)
        )
    )


def test_an_admin_blocks_and_unblocks_a_prefix_on_the_account_page(as_admin, customer):
    page = f"/accounts/{customer.id}"
    assert 'id="blocked-prefixes"' in as_admin.get(page).text
    response = as_admin.post(f"{page}/blocked-prefixes", {"prefix": " 4479 "}, token_from=page)
    assert response.status_code == 303
    assert _account_prefixes(customer) == ["4479"]
    shown = as_admin.get(page).text
    assert "<code>4479</code>" in shown
    entry = db.session.scalar(select(AuditEntry).order_by(AuditEntry.id.desc()))
    assert entry.account_id == customer.id and entry.changes == {"blocked prefix": [None, "4479"]}
    blocked = db.session.scalar(select(AccountBlockedPrefix))
    fragment = as_admin.post(
        f"{page}/blocked-prefixes/{blocked.id}/delete", {}, token_from=page, headers=HX
    )
    assert fragment.status_code == 200 and "No blocked prefixes." in fragment.text
    assert "<html" not in fragment.text
    assert _account_prefixes(customer) == []
    entry = db.session.scalar(select(AuditEntry).order_by(AuditEntry.id.desc()))
    assert entry.changes == {"blocked prefix": ["4479", None]}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "This field is required."),
        ("44a", "Digits only, 1 to 32."),
        ("+44", "Digits only, 1 to 32."),
        ("4" * 33, "Field cannot be longer than 32 characters."),
        ("44\x0079", None),
    ],
)
def test_a_bad_prefix_is_refused_on_its_field(as_admin, customer, value, message):
    page = f"/accounts/{customer.id}"
    response = as_admin.post(f"{page}/blocked-prefixes", {"prefix": value}, token_from=page)
    assert response.status_code in (400, 422)
    if message:
        assert message in response.text
    assert _account_prefixes(customer) == []


def test_a_duplicate_prefix_is_refused_on_its_field(as_admin, customer):
    page = f"/accounts/{customer.id}"
    as_admin.post(f"{page}/blocked-prefixes", {"prefix": "4479"}, token_from=page)
    again = as_admin.post(
        f"{page}/blocked-prefixes", {"prefix": "4479"}, token_from=page, headers=HX
    )
    assert again.status_code == 200
    assert "This prefix is already blocked." in again.text
    assert _account_prefixes(customer) == ["4479"]


def test_another_resellers_customer_is_not_found(user, tenants):
    user.login(tenants["b"].account_number)
    customer = tenants["a_customer"]
    url = f"/accounts/{customer.id}/blocked-prefixes"
    assert user.post(url, {"prefix": "44"}, token_from="/dashboard/").status_code == 404
    _block(customer, prefix="4479")
    blocked = db.session.scalar(select(AccountBlockedPrefix))
    assert user.post(f"{url}/{blocked.id}/delete", {}, token_from="/dashboard/").status_code == 404
    assert _account_prefixes(customer) == ["4479"]


def test_a_reseller_manages_its_customers_blocked_prefixes_not_its_parents(user, tenants):
    user.login(tenants["a"].account_number)
    url = f"/accounts/{tenants['a_customer'].id}/blocked-prefixes"
    assert user.post(url, {"prefix": "33"}, token_from="/dashboard/").status_code == 303
    own = f"/accounts/{tenants['a'].id}/blocked-prefixes"
    assert user.post(own, {"prefix": "33"}, token_from="/dashboard/").status_code == 404


# --- The rate group page ----------------------------------------------------------------


def test_a_rate_groups_blocked_prefixes_on_its_page(as_admin, default_rate_group):
    page = f"/tariff/rate-groups/{default_rate_group.id}"
    response = as_admin.post(f"{page}/blocked-prefixes", {"prefix": "900"}, token_from=page)
    assert response.status_code == 303
    assert "<code>900</code>" in as_admin.get(page).text
    duplicate = as_admin.post(f"{page}/blocked-prefixes", {"prefix": "900"}, token_from=page)
    assert duplicate.status_code == 422 and "This prefix is already blocked." in duplicate.text
    bad = as_admin.post(f"{page}/blocked-prefixes", {"prefix": "9x"}, token_from=page)
    assert bad.status_code == 422 and "Digits only, 1 to 32." in bad.text
    blocked = db.session.scalar(select(RateGroupBlockedPrefix))
    entry = db.session.scalar(select(AuditEntry).order_by(AuditEntry.id.desc()))
    assert entry.entity_type == "rate_group" and entry.changes == {"blocked prefix": [None, "900"]}
    as_admin.post(f"{page}/blocked-prefixes/{blocked.id}/delete", {}, token_from=page)
    assert db.session.scalar(select(func.count()).select_from(RateGroupBlockedPrefix)) == 0


def test_another_resellers_rate_group_is_not_found(user, tenants):
    user.login(tenants["b"].account_number)
    url = f"/tariff/rate-groups/{tenants['a_group'].id}/blocked-prefixes"
    assert user.post(url, {"prefix": "44"}, token_from="/dashboard/").status_code == 404
    assert db.session.scalar(select(func.count()).select_from(RateGroupBlockedPrefix)) == 0


# --- The REST API -----------------------------------------------------------------------


def test_the_rest_api_manages_an_accounts_blocked_prefixes(rest, customer):
    url = f"/accounts/{customer.id}/blocked-prefixes"
    created = rest.post(url, {"prefix": "4479"})
    assert created.status_code == 201 and created.json["prefix"] == "4479"
    assert rest.post(url, {"prefix": "4479"}).json == {
        "error": "Invalid fields.",
        "fields": {"prefix": "This prefix is already blocked."},
    }
    assert rest.post(url, {"prefix": "44x"}).status_code == 422
    assert rest.post(url, {"prefix": "44", "extra": 1}).status_code == 422
    assert [item["prefix"] for item in rest.get(url).json["items"]] == ["4479"]
    assert rest.delete(f"{url}/{created.json['id']}").status_code == 204
    assert rest.delete(f"{url}/{created.json['id']}").status_code == 404
    assert rest.get(url).json["items"] == []
    assert db.session.scalar(select(func.count()).select_from(AuditEntry)) >= 2


def test_the_rest_api_manages_a_rate_groups_blocked_prefixes(rest, default_rate_group):
    url = f"/rate-groups/{default_rate_group.id}/blocked-prefixes"
    created = rest.post(url, {"prefix": "900"})
    assert created.status_code == 201
    assert [item["prefix"] for item in rest.get(url).json["items"]] == ["900"]
    assert rest.delete(f"{url}/{created.json['id']}").status_code == 204
    assert rest.get(url).json["items"] == []


def test_the_rest_api_hides_another_tenants_records(reseller_rest, tenants):
    assert (
        reseller_rest.get(f"/accounts/{tenants['b_customer'].id}/blocked-prefixes").status_code
        == 404
    )
    url = f"/rate-groups/{tenants['b_group'].id}/blocked-prefixes"
    assert reseller_rest.post(url, {"prefix": "44"}).status_code == 404
    own = f"/rate-groups/{tenants['a_group'].id}/blocked-prefixes"
    assert reseller_rest.post(own, {"prefix": "44"}).status_code == 201
    mine = f"/accounts/{tenants['a'].id}/blocked-prefixes"
    assert reseller_rest.post(mine, {"prefix": "44"}).status_code in (403, 404)
