"""Tariff -> Rate Groups: groups, rates, CSV import/export, lookup, tenancy."""

import html
import io
import random
import re
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Rate, RateGroup, Status
from portal.rules.rating import RateTable, find_rate
from portal.tariffs.rate_csv import HEADER, parse_rates
from portal.tariffs.service import load_rate_table, lookup_rate

URL = "/tariff/rate-groups/"
CSV_HEADER = ",".join(HEADER) + "\n"


def text(response) -> str:
    """The response text, HTML entities decoded."""
    return html.unescape(response.get_data(as_text=True))


def rates_of(group) -> list[Rate]:
    """The group's rates by prefix."""
    return list(
        db.session.scalars(select(Rate).where(Rate.rate_group_id == group.id).order_by(Rate.prefix))
    )


def upload(user, group, content: bytes, mode="replace"):
    """Post a CSV file to the import form."""
    page = f"{URL}{group.id}"
    data = {"file": (io.BytesIO(content), "rates.csv"), "mode": mode}
    if mode == "replace":
        data["confirm_replace"] = "y"
    return user.post(
        f"{URL}{group.id}/import", data, token_from=page, content_type="multipart/form-data"
    )


def rate_form(**changes) -> dict:
    """A valid add-rate form."""
    data = {
        "prefix": "44",
        "destination": "United Kingdom",
        "connect_cost": "0.01",
        "cost_per_minute": "0.025",
        "initial_increment": "30",
        "increment": "6",
    }
    data.update(changes)
    return data


# --- rate groups -------------------------------------------------------------------------------


def test_admin_creates_a_rate_group_that_the_form_offers(as_admin):
    data = {"name": "Gold", "currency": "EUR", "status": "active"}
    response = as_admin.post(URL + "new", data, token_from=URL)
    assert response.status_code == 303
    group = db.session.scalar(select(RateGroup).where(RateGroup.name == "Gold"))
    assert group.currency == "EUR" and group.reseller_id is None
    assert "Gold" in text(as_admin.get(URL))
    assert ">Gold (EUR)<" in text(as_admin.get("/accounts/new"))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": ""}, "This field is required"),
        ({"name": "Default"}, "already have a rate group with this name"),
        ({"currency": "ABC"}, "Not a valid choice"),
        ({"status": "gone"}, "Not a valid choice"),
    ],
)
def test_bad_rate_group_input(as_admin, default_rate_group, data, message):
    response = as_admin.post(
        URL + "new", {"name": "N", "currency": "USD", "status": "active", **data}, token_from=URL
    )
    assert response.status_code == 422
    assert message in text(response)
    assert db.session.scalar(select(func.count()).select_from(RateGroup)) == 1


def test_deactivated_rate_group_disappears_from_the_create_form(as_admin, default_rate_group):
    assert ">Default (USD)<" in text(as_admin.get("/accounts/new"))
    url = f"{URL}{default_rate_group.id}/status"
    assert as_admin.post(url, {"status": "inactive"}, token_from=URL).status_code == 303
    assert db.session.get(RateGroup, default_rate_group.id).status == Status.INACTIVE
    assert ">Default (USD)<" not in text(as_admin.get("/accounts/new"))
    as_admin.post(url, {"status": "active"}, token_from=URL)
    assert ">Default (USD)<" in text(as_admin.get("/accounts/new"))


def test_edit_rate_group_and_currency_is_locked_while_used(as_admin, default_rate_group, customer):
    url = f"{URL}{default_rate_group.id}/edit"
    assert "Edit rate group" in text(as_admin.get(url))
    response = as_admin.post(
        url, {"name": "Basic", "currency": "EUR", "status": "active"}, token_from=url
    )
    assert response.status_code == 422
    assert "1 account(s) use this rate group in USD" in text(response)
    response = as_admin.post(
        url, {"name": "Basic", "currency": "USD", "status": "active"}, token_from=url
    )
    assert response.status_code == 303
    db.session.refresh(default_rate_group)
    assert default_rate_group.name == "Basic"


def test_reseller_sees_and_manages_only_its_own_rate_groups(user, reseller, default_rate_group):
    user.login(reseller.account_number)
    page = text(user.get(URL))
    assert "Reseller plan" in page and "Default" not in page
    for path in ("", "/edit", "/export.csv", "/lookup?number=44"):
        assert user.get(f"{URL}{default_rate_group.id}{path}").status_code == 404, path
    for path, data in (("/status", {"status": "inactive"}), ("/rates", rate_form())):
        assert (
            user.post(f"{URL}{default_rate_group.id}{path}", data, token_from=URL).status_code
            == 404
        )
    assert db.session.get(RateGroup, default_rate_group.id).status == Status.ACTIVE
    # Names are unique per owner: a reseller may reuse the admins' name.
    response = user.post(
        URL + "new", {"name": "Default", "currency": "USD", "status": "active"}, token_from=URL
    )
    assert response.status_code == 303


def test_admins_see_resellers_rate_groups_with_their_owner(as_admin, reseller):
    page = text(as_admin.get(URL))
    assert "Reseller plan" in page and f"({reseller.account_number})" in page


def test_customers_cannot_manage_rate_groups(user, customer, default_rate_group):
    user.login(customer.account_number)
    assert user.get(URL).status_code == 403
    assert user.get(f"{URL}{default_rate_group.id}").status_code == 403


# --- rates -------------------------------------------------------------------------------------


def test_add_edit_and_delete_a_rate(as_admin, default_rate_group):
    page = f"{URL}{default_rate_group.id}"
    assert as_admin.post(page + "/rates", rate_form(), token_from=page).status_code == 303
    (rate,) = rates_of(default_rate_group)
    assert (rate.prefix, rate.connect_cost, rate.cost_per_minute) == (
        "44",
        Decimal("0.01"),
        Decimal("0.025"),
    )
    assert (rate.initial_increment, rate.increment) == (30, 6)
    assert "United Kingdom" in text(as_admin.get(page))

    edit = f"{page}/rates/{rate.id}/edit"
    assert (
        as_admin.post(edit, rate_form(cost_per_minute="0.02"), token_from=edit).status_code == 303
    )
    db.session.refresh(rate)
    assert rate.cost_per_minute == Decimal("0.02")

    assert as_admin.post(f"{page}/rates/{rate.id}/delete", {}, token_from=page).status_code == 303
    assert rates_of(default_rate_group) == []


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"prefix": "44a"}, "prefix", "Digits only"),
        ({"prefix": "1" * 33}, "prefix", "longer than 32 characters"),
        ({"connect_cost": "-1"}, "connect_cost", "Must not be negative"),
        ({"cost_per_minute": "abc"}, "cost_per_minute", "Enter a number"),
        ({"cost_per_minute": "0.000001"}, "cost_per_minute", "5 decimal places"),
        ({"cost_per_minute": "NaN"}, "cost_per_minute", "Enter a number"),
        ({"initial_increment": "-1"}, "initial_increment", "from 0 to 3600"),
        ({"increment": "0"}, "increment", "from 1 to 3600"),
        ({"increment": "x"}, "increment", "Not a valid integer"),
    ],
)
def test_bad_rates_are_refused(as_admin, default_rate_group, changes, field, message):
    page = f"{URL}{default_rate_group.id}"
    response = as_admin.post(page + "/rates", rate_form(**changes), token_from=page)
    assert response.status_code == 422
    assert message in text(response)
    assert rates_of(default_rate_group) == []


def test_one_rate_per_prefix(as_admin, default_rate_group):
    page = f"{URL}{default_rate_group.id}"
    as_admin.post(page + "/rates", rate_form(), token_from=page)
    response = as_admin.post(page + "/rates", rate_form(destination="Again"), token_from=page)
    assert response.status_code == 422
    assert "already has a rate for this prefix" in text(response)
    assert len(rates_of(default_rate_group)) == 1


def test_rate_of_another_group_is_not_found_through_this_one(
    as_admin, default_rate_group, reseller
):
    other = db.session.scalar(select(RateGroup).where(RateGroup.reseller_id == reseller.id))
    rate = Rate(rate_group_id=other.id, prefix="1", destination="US")
    db.session.add(rate)
    db.session.commit()
    assert as_admin.get(f"{URL}{default_rate_group.id}/rates/{rate.id}/edit").status_code == 404


def test_lookup_shows_which_rate_a_number_gets(as_admin, default_rate_group):
    upload(
        as_admin,
        default_rate_group,
        (CSV_HEADER + "44,UK,0,0.02,60,60\n447,UK mobile,0,0.1,60,60\n").encode(),
    )
    url = f"{URL}{default_rate_group.id}/lookup?number="
    assert "prefix <strong>447</strong> UK mobile" in text(as_admin.get(url + "447911123456"))
    assert "prefix <strong>44</strong> UK" in text(as_admin.get(url + "+44 20 7946 0958"))
    assert "No rate matches 33123" in text(as_admin.get(url + "33123"))


def test_database_lookup_agrees_with_find_rate(app, default_rate_group):
    rng = random.Random(7)
    prefixes = {
        "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 6))) for _ in range(400)
    }
    prefixes.add("")
    db.session.add_all(
        Rate(rate_group_id=default_rate_group.id, prefix=p, destination=p) for p in prefixes
    )
    db.session.commit()
    table = load_rate_table(default_rate_group)
    assert isinstance(table, RateTable) and len(table) == len(prefixes)
    for _ in range(300):
        number = "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 12)))
        assert lookup_rate(default_rate_group.id, number).prefix == find_rate(table, number).prefix


# --- CSV import and export ---------------------------------------------------------------------

GOOD_CSV = (
    CSV_HEADER + "44,United Kingdom,0.01,0.025,30,6\n1,USA,0,0.01,60,60\n,Anywhere,0,0.5,60,60\n"
)


def test_import_saves_every_row_and_export_gives_the_same_file(as_admin, default_rate_group):
    response = upload(as_admin, default_rate_group, GOOD_CSV.encode())
    assert response.status_code == 303
    rates = rates_of(default_rate_group)
    assert [r.prefix for r in rates] == ["", "1", "44"]
    assert rates[2].cost_per_minute == Decimal("0.025")
    exported = as_admin.get(f"{URL}{default_rate_group.id}/export.csv")
    assert exported.mimetype == "text/csv"
    assert "attachment" in exported.headers["Content-Disposition"]
    by_prefix = sorted(parse_rates(GOOD_CSV.encode()).rows, key=lambda row: row.prefix)
    assert parse_rates(exported.data).rows == by_prefix


def test_import_accepts_a_byte_order_mark_and_crlf(as_admin, default_rate_group):
    content = ("\ufeff" + GOOD_CSV).replace("\n", "\r\n").encode("utf-8")
    assert upload(as_admin, default_rate_group, content).status_code == 303
    assert len(rates_of(default_rate_group)) == 3


def test_one_bad_row_saves_nothing_and_is_reported(as_admin, default_rate_group):
    upload(as_admin, default_rate_group, GOOD_CSV.encode())
    bad = CSV_HEADER + "49,Germany,0,0.02,60,60\n33,France,0,abc,60,60\n"
    response = upload(as_admin, default_rate_group, bad.encode())
    page = text(response)
    assert response.status_code == 422
    assert "Nothing was imported: 1 problem found." in page
    report = '<td>3</td><td>cost_per_minute</td><td>Enter a number, e.g. 10.50. Got "abc".</td>'
    assert report in page
    # The group still has exactly its old rates.
    assert [r.prefix for r in rates_of(default_rate_group)] == ["", "1", "44"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "The file is empty."),
        (b"prefix,destination\n44,UK\n", "The first line must be the header"),
        (CSV_HEADER.encode(), "header but no rates"),
        (
            "prefix,destination,connect_cost,cost_per_minute,initial_increment,increment\n44,Kö,0,1,1,1\n".encode(
                "utf-16"
            ),
            "not UTF-8",
        ),
        ((CSV_HEADER + "44,Città,0,1,1,1\n").encode("latin-1"), "not UTF-8"),
        (
            (CSV_HEADER + "44,UK,0,1,1,1\n44,UK again,0,1,1,1\n").encode(),
            'Duplicate prefix "44" (first on line 2)',
        ),
        ((CSV_HEADER + "44,UK,0,1,1\n").encode(), "Expected 6 columns, found 5"),
        ((CSV_HEADER + "4x,UK,0,1,1,1\n").encode(), "Digits only"),
        ((CSV_HEADER + "44,UK,-1,1,1,1\n").encode(), "Must not be negative"),
        ((CSV_HEADER + "44,UK,0,1,1,0\n").encode(), "from 1 to 3600"),
        (b"\x00\x01\x02binary", "not a text CSV"),
    ],
)
def test_bad_files_get_a_clear_error_and_save_nothing(
    as_admin, default_rate_group, content, message
):
    response = upload(as_admin, default_rate_group, content)
    assert response.status_code == 422
    assert message in text(response)
    assert rates_of(default_rate_group) == []


def test_many_errors_are_counted_and_the_first_listed(as_admin, default_rate_group):
    content = CSV_HEADER + "".join(f"x{i},Bad,0,1,1,1\n" for i in range(500))
    page = text(upload(as_admin, default_rate_group, content.encode()))
    assert "500 problems found" in page and "The first 200 are listed" in page


def test_missing_file_is_a_field_error(as_admin, default_rate_group):
    page = f"{URL}{default_rate_group.id}"
    response = as_admin.post(page + "/import", {"mode": "replace"}, token_from=page)
    assert response.status_code == 422 and "Choose a CSV file." in text(response)


def test_a_20_mb_upload_is_refused_clearly(as_admin, default_rate_group):
    line = "44,United Kingdom,0.01,0.025,30,6\n"
    content = (CSV_HEADER + line * (20 * 1024 * 1024 // len(line))).encode()
    response = upload(as_admin, default_rate_group, content)
    assert response.status_code == 413
    assert "at most 10 MB" in text(response)
    assert rates_of(default_rate_group) == []


def test_merge_adds_and_overwrites_but_keeps_the_rest(as_admin, default_rate_group):
    upload(as_admin, default_rate_group, GOOD_CSV.encode())
    merge = CSV_HEADER + "44,UK new,0,0.03,60,60\n49,Germany,0,0.02,60,60\n"
    assert upload(as_admin, default_rate_group, merge.encode(), mode="merge").status_code == 303
    rates = {r.prefix: r for r in rates_of(default_rate_group)}
    assert sorted(rates) == ["", "1", "44", "49"]
    assert rates["44"].destination == "UK new"
    replace = CSV_HEADER + "33,France,0,0.02,60,60\n"
    upload(as_admin, default_rate_group, replace.encode(), mode="replace")
    assert [r.prefix for r in rates_of(default_rate_group)] == ["33"]


def test_merge_is_the_import_default_and_replacing_needs_the_box_ticked(
    as_admin, default_rate_group
):
    page = text(as_admin.get(f"{URL}{default_rate_group.id}"))
    merge = re.search(r'<input[^>]*value="merge"[^>]*>', page).group(0)
    replace = re.search(r'<input[^>]*value="replace"[^>]*>', page).group(0)
    assert "checked" in merge and "checked" not in replace
    upload(as_admin, default_rate_group, GOOD_CSV.encode())
    kept = [r.prefix for r in rates_of(default_rate_group)]
    page = f"{URL}{default_rate_group.id}"
    data = {"file": (io.BytesIO(b"prefix,cost_per_minute\n33,0.02\n"), "r.csv"), "mode": "replace"}
    response = as_admin.post(
        page + "/import", data, token_from=page, content_type="multipart/form-data"
    )
    assert response.status_code == 422
    assert "Tick this box to replace all rates" in text(response)
    assert [r.prefix for r in rates_of(default_rate_group)] == kept  # nothing replaced


def test_deactivating_a_rate_group_asks_first(as_admin, default_rate_group):
    page = text(as_admin.get(f"{URL}{default_rate_group.id}"))
    action = f"{URL}{default_rate_group.id}/status"
    form = re.search(rf'<form method="post" action="{action}"[^>]*>', page).group(0)
    assert 'hx-confirm="Deactivate rate group Default? Accounts using it can no longer' in form


def test_export_neutralises_spreadsheet_formulas_and_imports_back(as_admin, default_rate_group):
    db.session.add(
        Rate(rate_group_id=default_rate_group.id, prefix="1", destination="=HYPERLINK(1)")
    )
    db.session.commit()
    exported = as_admin.get(f"{URL}{default_rate_group.id}/export.csv").data
    assert b"'=HYPERLINK(1)" in exported
    assert parse_rates(exported).rows[0].destination == "=HYPERLINK(1)"


def test_rates_page_is_paginated_and_searchable(as_admin, default_rate_group):
    content = CSV_HEADER + "".join(f"{4400 + i},Dest {i},0,1,1,1\n" for i in range(120))
    upload(as_admin, default_rate_group, content.encode())
    page = f"{URL}{default_rate_group.id}"
    first = text(as_admin.get(page))
    assert "120 rates in USD" in first
    assert first.count("Dest ") == 50
    found = text(as_admin.get(page + "?q=4519", headers={"HX-Request": "true"}))
    assert "<html" not in found and "Dest 119" in found and found.count("Dest ") == 1
