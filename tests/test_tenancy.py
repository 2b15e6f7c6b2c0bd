"""Resellers, sub-resellers, admins and sub-admins: each sees exactly its own room."""

import html
import re

import pytest
from sqlalchemy import select

from portal.accounts.moving import move_account
from portal.extensions import db
from portal.models import Account, AuditEntry, Rate, RateGroup, Role, Status
from tests.conftest import PASSWORD, Browser


def text(response) -> str:
    """The response text, entities decoded."""
    return html.unescape(response.get_data(as_text=True))


def numbers_in(response) -> set[str]:
    """Account numbers linked from a list page."""
    return set(re.findall(r'href="/accounts/\d+">(\d+)</a>', response.get_data(as_text=True)))


def record_urls(world, name: str) -> list[str]:
    """Every record URL that belongs to tenant `name`."""
    customer, group, tax = world[f"{name}_customer"], world[f"{name}_group"], world[f"{name}_tax"]
    rate_id = db.session.scalar(select(Rate.id).where(Rate.rate_group_id == group.id))
    return [
        f"/accounts/{customer.id}",
        f"/accounts/{customer.id}/edit",
        f"/accounts/{world[name].id}",
        f"/tariff/rate-groups/{group.id}",
        f"/tariff/rate-groups/{group.id}/edit",
        f"/tariff/rate-groups/{group.id}/export.csv",
        f"/tariff/rate-groups/{group.id}/lookup?number=44",
        f"/tariff/rate-groups/{group.id}/rates/{rate_id}/edit",
        f"/configuration/taxes/{tax.id}/edit",
    ]


def test_a_reseller_gets_404_for_every_record_of_another(user, tenants):
    user.login(tenants["b"].account_number)
    for url in record_urls(tenants, "a") + record_urls(tenants, "a1"):
        assert user.get(url).status_code == 404, url
    token_page = "/accounts/"
    victim = tenants["a_customer"]
    for url, data in (
        (f"/accounts/{victim.id}/status", {"status": "inactive"}),
        (f"/accounts/{victim.id}/delete", {}),
        (f"/accounts/{victim.id}/edit", {"first_name": "Hacked"}),
        (f"/tariff/rate-groups/{tenants['a_group'].id}/status", {"status": "inactive"}),
        (f"/configuration/taxes/{tenants['a_tax'].id}/status", {"status": "inactive"}),
    ):
        assert user.post(url, data, token_from=token_page).status_code == 404, url
    db.session.expire_all()
    assert db.session.get(Account, victim.id).status == Status.ACTIVE
    assert db.session.get(Account, victim.id).first_name == "CustomerA"
    assert db.session.get(RateGroup, tenants["a_group"].id).status == Status.ACTIVE


def test_no_list_or_search_shows_another_tenants_rows(user, tenants):
    user.login(tenants["b"].account_number)
    assert numbers_in(user.get("/accounts/")) == {tenants["b_customer"].account_number}
    assert numbers_in(user.get("/accounts/?q=customera")) == set()
    assert numbers_in(user.get("/accounts/?q=3000000001")) == set()
    assert numbers_in(user.get("/accounts/resellers/")) == set()
    assert "Plan A" not in text(user.get("/tariff/rate-groups/"))
    assert "Tax A" not in text(user.get("/configuration/taxes/"))
    form = text(user.get("/accounts/new"))
    assert "Plan B (USD)" in form and "Plan A" not in form and "Default" not in form


def test_a_parent_reseller_sees_its_sub_resellers_customers(user, tenants):
    user.login(tenants["a"].account_number)
    customers = numbers_in(user.get("/accounts/"))
    assert customers == {
        tenants["a_customer"].account_number,
        tenants["a1_customer"].account_number,
    }
    assert numbers_in(user.get("/accounts/resellers/")) == {tenants["a1"].account_number}
    assert user.get(f"/accounts/{tenants['a1_customer'].id}").status_code == 200
    # ... but not its sub-reseller's rate groups and taxes, which are the sub-reseller's own.
    assert user.get(f"/tariff/rate-groups/{tenants['a1_group'].id}").status_code == 404


def test_a_sub_reseller_does_not_see_its_parent(user, tenants):
    user.login(tenants["a1"].account_number)
    assert numbers_in(user.get("/accounts/")) == {tenants["a1_customer"].account_number}
    assert user.get(f"/accounts/{tenants['a'].id}").status_code == 404
    assert user.get(f"/accounts/{tenants['a_customer'].id}").status_code == 404


def test_a_customer_sees_nothing_of_the_managers(user, tenants):
    user.login(tenants["a_customer"].account_number)
    for url in record_urls(tenants, "a"):
        assert user.get(url).status_code in (403, 404), url


def reseller_form(number: str, group_id: int, **changes) -> dict:
    """A valid Create Reseller form."""
    data = {
        "account_number": number,
        "password": "Resell3r-pass",
        "first_name": "Rita",
        "last_name": "Reseller",
        "company": "Rita Telecom",
        "country": "US",
        "timezone": "UTC",
        "status": "active",
        "max_channels": "10",
        "valid_days": "365",
        "rate_group_id": str(group_id),
        "billing_schedule": "monthly",
        "billing_day": "1",
        "currency": "USD",
        "account_type": "postpaid",
        "credit_limit": "500",
        "email": "rita@example.com",
    }
    data.update(changes)
    return data


def test_create_reseller_form_has_no_pin_or_sip_device(as_admin, default_rate_group):
    page = text(as_admin.get("/accounts/new/reseller"))
    assert "<h1>Create Reseller</h1>" in page
    assert 'name="pin"' not in page and 'name="create_sip_device"' not in page
    for label in ("Account Number", "Rate Group", "Billing Schedule", "Account Type", "Tax"):
        assert f">{label}</label>" in page


def test_admin_creates_a_reseller_which_then_creates_its_own_world(
    user, as_admin, default_rate_group
):
    response = as_admin.post(
        "/accounts/new/reseller",
        reseller_form("4000000001", default_rate_group.id),
        token_from="/accounts/new/reseller",
    )
    assert response.status_code == 200, text(response)
    reseller = db.session.scalar(select(Account).where(Account.account_number == "4000000001"))
    assert reseller.role == Role.RESELLER and reseller.reseller_id is None and reseller.pin is None
    assert reseller.sip_devices == []
    as_admin.post("/logout", {}, token_from="/dashboard/")

    user.login("4000000001", "Resell3r-pass")
    # Its own rate group, then a sub-reseller and a customer of its own.
    user.post(
        "/tariff/rate-groups/new",
        {"name": "Rita Gold", "currency": "USD", "status": "active"},
        token_from="/tariff/rate-groups/",
    )
    group = db.session.scalar(select(RateGroup).where(RateGroup.name == "Rita Gold"))
    assert group.reseller_id == reseller.id
    sub = reseller_form("4000000002", group.id, email="sub@example.com")
    assert (
        user.post("/accounts/new/reseller", sub, token_from="/accounts/new/reseller").status_code
        == 200
    )
    sub_reseller = db.session.scalar(select(Account).where(Account.account_number == "4000000002"))
    assert sub_reseller.reseller_id == reseller.id
    assert sub_reseller.tenant_path == f"{reseller.id}/"
    # A reseller may not create staff.
    assert user.get("/accounts/new/admin").status_code == 403
    assert user.get("/accounts/new/subadmin").status_code == 403
    assert user.get("/accounts/staff/").status_code == 403


def test_admin_puts_a_customer_under_a_reseller(as_admin, tenants, default_rate_group):
    reseller = tenants["b"]
    partial = text(
        as_admin.get(
            f"/accounts/partials/owner?reseller_id={reseller.id}", headers={"HX-Request": "true"}
        )
    )
    assert 'hx-swap-oob="true"' in partial
    assert "Plan B (USD)" in partial and "Tax B (5% + 0)" in partial and "Default" not in partial
    data = {
        "reseller_id": str(reseller.id),
        "account_number": "5000000001",
        "password": "Passw0rd123",
        "pin": "123456",
        "country": "US",
        "timezone": "UTC",
        "status": "active",
        "max_channels": "0",
        "valid_days": "30",
        "rate_group_id": str(default_rate_group.id),  # the admins' group: not the reseller's
        "billing_schedule": "daily",
        "currency": "USD",
        "account_type": "prepaid",
    }
    response = as_admin.post("/accounts/new", data, token_from="/accounts/new")
    assert response.status_code == 422 and "Not a valid choice" in text(response)
    data["rate_group_id"] = str(tenants["b_group"].id)
    data["tax_ids"] = [str(tenants["b_tax"].id)]
    response = as_admin.post("/accounts/new", data, token_from="/accounts/new")
    assert response.status_code == 200, text(response)
    account = db.session.scalar(select(Account).where(Account.account_number == "5000000001"))
    assert account.reseller_id == reseller.id and account.tenant_path == reseller.subtree_path
    assert [t.name for t in account.taxes] == ["Tax B"]


def staff_form(number: str, **changes) -> dict:
    """A valid Create Admin / Sub-admin form."""
    data = {
        "account_number": number,
        "password": "Staff-passw0rd",
        "first_name": "Sam",
        "last_name": "Staff",
        "email": f"{number}@example.com",
        "telephone": "+1 212 555 0100",
        "timezone": "America/New_York",
        "status": "active",
    }
    data.update(changes)
    return data


@pytest.mark.parametrize("kind", ["admin", "subadmin"])
def test_admin_creates_staff(user, as_admin, kind):
    url = f"/accounts/new/{kind}"
    page = text(as_admin.get(url))
    assert 'name="pin"' not in page and 'name="rate_group_id"' not in page
    response = as_admin.post(url, staff_form("6000000001"), token_from=url)
    assert response.status_code == 200, text(response)
    account = db.session.scalar(select(Account).where(Account.account_number == "6000000001"))
    assert account.role == Role(kind) and account.telephone == "+12125550100"
    assert "6000000001" in text(as_admin.get("/accounts/staff/"))
    as_admin.post("/logout", {}, token_from="/dashboard/")
    assert user.login("6000000001", "Staff-passw0rd").status_code == 303


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"account_number": "12"}, "exactly 10 digits"),
        ({"password": "weak"}, "at least 8"),
        ({"email": "admin@example.com"}, "already uses this e-mail"),
        ({"telephone": "555"}, "valid"),
        ({"timezone": "Nowhere/City"}, "Not a valid choice"),
        ({"status": "sleeping"}, "Not a valid choice"),
    ],
)
def test_bad_staff_input_is_refused(as_admin, admin, change, message):
    url = "/accounts/new/subadmin"
    response = as_admin.post(url, staff_form("6000000002", **change), token_from=url)
    assert response.status_code == 422 and message in text(response)
    assert db.session.scalar(select(Account).where(Account.role == Role.SUBADMIN)) is None


def test_sub_admins_do_all_but_staff_and_configuration(user, subadmin, admin, tenants):
    user.login(subadmin.account_number)
    for url in (
        "/accounts/new/admin",
        "/accounts/new/subadmin",
        "/accounts/staff/",
        "/configuration/",
        "/audit/",
    ):
        assert user.get(url).status_code == 403, url
    assert user.get(f"/accounts/{admin.id}").status_code == 404
    for url in (
        "/accounts/",
        "/accounts/new",
        "/accounts/new/reseller",
        "/accounts/resellers/",
        f"/accounts/{tenants['a_customer'].id}",
        f"/tariff/rate-groups/{tenants['a_group'].id}",
    ):
        assert user.get(url).status_code == 200, url
    assert numbers_in(user.get("/accounts/resellers/")) >= {tenants["a"].account_number}


def test_nobody_deactivates_or_deletes_itself(as_admin, admin):
    for url in (f"/accounts/{admin.id}/status", f"/accounts/{admin.id}/delete"):
        assert (
            as_admin.post(url, {"status": "inactive"}, token_from="/dashboard/").status_code == 403
        )
    db.session.refresh(admin)
    assert admin.status == Status.ACTIVE and admin.deleted_at is None


def test_dashboards_count_what_each_may_see(user, as_admin, tenants):
    page = as_admin.get("/dashboard/").get_data(as_text=True)
    assert '<span class="tile-number" data-count="customer">3</span>' in page
    assert '<span class="tile-number" data-count="reseller">3</span>' in page
    as_admin.post("/logout", {}, token_from="/dashboard/")
    user.login(tenants["a"].account_number)
    page = user.get("/dashboard/").get_data(as_text=True)
    assert '<span class="tile-number" data-count="customer">2</span>' in page
    assert '<span class="tile-number" data-count="reseller">1</span>' in page
    assert '<span class="tile-number" data-count="rate_groups">1</span>' in page


def test_logging_in_writes_no_audit_entry(user, tenants):
    assert user.login(tenants["a1"].account_number, PASSWORD).status_code == 303
    assert db.session.scalar(select(AuditEntry)) is None  # logging in changes nothing


def test_moving_a_sub_reseller_keeps_every_tenant_boundary(app, admin, tenants):
    # Issue 17: A1 (with its customer) moves from A to B; every boundary follows the move.
    a, b, a1 = tenants["a"], tenants["b"], tenants["a1"]
    move_account(admin, a1, b, {"rate_group_id": tenants["b_group"].id})
    db.session.expire_all()
    as_a = Browser(app.test_client())
    as_a.login(a.account_number)
    for url in record_urls(tenants, "a1"):
        assert as_a.get(url).status_code == 404, url
    assert numbers_in(as_a.get("/accounts/")) == {tenants["a_customer"].account_number}
    assert numbers_in(as_a.get("/accounts/resellers/")) == set()
    as_b = Browser(app.test_client())
    as_b.login(b.account_number)
    assert numbers_in(as_b.get("/accounts/")) == {
        tenants["b_customer"].account_number,
        tenants["a1_customer"].account_number,
    }
    assert numbers_in(as_b.get("/accounts/resellers/")) == {a1.account_number}
    for url in record_urls(tenants, "a"):
        assert as_b.get(url).status_code == 404, url
    # B sees its new sub-reseller's customer, not the sub-reseller's own rate groups.
    assert as_b.get(f"/accounts/{tenants['a1_customer'].id}").status_code == 200
    assert as_b.get(f"/tariff/rate-groups/{tenants['a1_group'].id}").status_code == 404
    as_a1 = Browser(app.test_client())
    as_a1.login(a1.account_number)
    assert numbers_in(as_a1.get("/accounts/")) == {tenants["a1_customer"].account_number}
    assert as_a1.get(f"/accounts/{b.id}").status_code == 404
