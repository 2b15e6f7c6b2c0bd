"""Tariff -> Rate Groups: list and create, scoped to the owner."""

from sqlalchemy import select

from portal.extensions import db
from portal.models import RateGroup

URL = "/tariff/rate-groups/"


def test_admin_creates_a_rate_group_that_the_form_offers(as_admin):
    response = as_admin.post(URL + "new", {"name": "Gold", "status": "active"}, token_from=URL)
    assert response.status_code == 303
    assert "Gold" in as_admin.get(URL).get_data(as_text=True)
    assert ">Gold<" in as_admin.get("/accounts/new").get_data(as_text=True)


def test_inactive_rate_group_is_listed_but_not_offered(as_admin):
    as_admin.post(URL + "new", {"name": "Legacy", "status": "inactive"}, token_from=URL)
    assert "Legacy" in as_admin.get(URL).get_data(as_text=True)
    assert "Legacy" not in as_admin.get("/accounts/new").get_data(as_text=True)


def test_name_is_required_and_unique_per_owner(as_admin, default_rate_group):
    response = as_admin.post(URL + "new", {"name": "", "status": "active"}, token_from=URL)
    assert response.status_code == 422 and "This field is required" in response.get_data(True)
    response = as_admin.post(URL + "new", {"name": "Default", "status": "active"}, token_from=URL)
    assert response.status_code == 422
    assert "already have a rate group with this name" in response.get_data(as_text=True)
    assert len(list(db.session.scalars(select(RateGroup)))) == 1


def test_reseller_rate_groups_are_its_own(user, reseller, default_rate_group):
    user.login(reseller.account_number)
    page = user.get(URL).get_data(as_text=True)
    assert "Reseller plan" in page and "Default" not in page
    # A reseller may reuse a name the admins use: names are unique per owner.
    response = user.post(URL + "new", {"name": "Default", "status": "active"}, token_from=URL)
    assert response.status_code == 303
    group = db.session.scalar(
        select(RateGroup).where(RateGroup.reseller_id == reseller.id, RateGroup.name == "Default")
    )
    assert group is not None


def test_customers_cannot_manage_rate_groups(user, customer):
    user.login(customer.account_number)
    assert user.get(URL).status_code == 403
    assert (
        user.post(URL + "new", {"name": "X", "status": "active"}, token_from="/").status_code == 403
    )
