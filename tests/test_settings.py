"""Global configuration: admins only, grouped and validated, and its effect on new accounts."""

import re

import pytest

from portal.settings.service import DEFINITIONS, get_setting, get_settings

URL = "/configuration/"


def current_form() -> dict:
    """The configuration form as the browser would submit it unchanged."""
    data = {}
    for key, value in get_settings().items():
        if DEFINITIONS[key].kind == "bool":
            if value:
                data[key] = "y"
        else:
            data[key] = str(value)
    return data


def submit(user, **values):
    """Post the configuration form with some values changed."""
    data = current_form()
    data.update({key: str(value) for key, value in values.items()})
    return user.post(URL, data, token_from=URL)


def test_defaults(app):
    assert get_setting("account_number_length") == 10
    assert get_setting("pin_length") == 6
    assert get_setting("default_currency") == "USD"
    assert get_setting("default_create_sip_device") is True
    assert get_setting("password_min_length") == 8


def test_page_groups_settings_with_help(as_admin):
    page = as_admin.get(URL).get_data(as_text=True)
    for legend in (
        "Account numbers",
        "Calling card",
        "Defaults for new accounts",
        "Password policy",
        "Company profile for invoices",
    ):
        assert f"<legend>{legend}</legend>" in page
    assert "Digits in a calling-card PIN." in page
    # Taxes round at each currency's own minor unit: no global setting can make them finer
    # or coarser (a BHD tax rounded to 2 places was wrong).
    assert "Tax rounding" not in page and "tax_decimal_places" not in page


def test_admin_changes_lengths_and_the_form_follows(as_admin, default_rate_group):
    response = submit(as_admin, account_number_length=14, pin_length=9)
    assert response.status_code == 303
    assert get_setting("account_number_length") == 14
    assert get_setting("pin_length") == 9
    form = as_admin.get("/accounts/new").get_data(as_text=True)
    assert re.search(r'id="account_number"[^>]*value="\d{14}"', form)
    assert re.search(r'id="pin"[^>]*value="\d{9}"', form)


def test_new_account_form_takes_its_defaults_from_the_configuration(as_admin, default_rate_group):
    data = current_form()
    data.update(
        default_country="IN",
        default_timezone="Asia/Kolkata",
        default_currency="INR",
        default_valid_days="90",
        default_account_type="postpaid",
        default_billing_schedule="daily",
    )
    data.pop("default_create_sip_device")
    assert as_admin.post(URL, data, token_from=URL).status_code == 303
    form = as_admin.get("/accounts/new").get_data(as_text=True)
    assert '<option selected value="IN">India</option>' in form
    assert '<option selected value="Asia/Kolkata">' in form
    assert '<option selected value="INR">' in form
    assert re.search(r'id="valid_days"[^>]*value="90"', form)
    assert '<option selected value="postpaid">' in form
    assert '<option selected value="daily">' in form
    assert 'name="billing_day"' not in form  # daily: no billing day
    assert 'name="credit_limit"' in form  # postpaid: credit limit shown
    assert not re.search(r'id="create_sip_device"[^>]*checked', form)


def test_password_policy_minimum_applies_to_new_accounts(as_admin, default_rate_group):
    assert submit(as_admin, password_min_length=12).status_code == 303
    data = {
        "account_number": "4444444444",
        "password": "Short1pass",
        "pin": "123456",
        "country": "US",
        "timezone": "UTC",
        "status": "active",
        "max_channels": "0",
        "valid_days": "30",
        "rate_group_id": str(default_rate_group.id),
        "billing_schedule": "daily",
        "currency": "USD",
        "account_type": "prepaid",
    }
    response = as_admin.post("/accounts/new", data, token_from="/accounts/new")
    assert response.status_code == 422
    assert "at least 12 characters" in response.get_data(as_text=True)


def test_company_profile_is_saved(as_admin):
    response = submit(
        as_admin,
        company_name="Acme VoIP Ltd",
        company_address="1 Main St\nSpringfield",
        company_tax_number="GB123456789",
        company_email="billing@acme.example",
    )
    assert response.status_code == 303
    assert get_setting("company_address") == "1 Main St\nSpringfield"
    assert get_setting("company_email") == "billing@acme.example"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"account_number_length": 5}, "between 6 and 20"),
        ({"account_number_length": 21}, "between 6 and 20"),
        ({"pin_length": 3}, "between 4 and 12"),
        ({"pin_length": 13}, "between 4 and 12"),
        ({"pin_length": "six"}, "Not a valid integer"),
        ({"account_number_length": ""}, "This field is required"),
        ({"password_min_length": 7}, "between 8 and 64"),
        ({"default_currency": "XYZ"}, "Not a valid choice"),
        ({"default_timezone": "Mars/Olympus"}, "Not a valid choice"),
        ({"company_email": "not-an-email"}, "@-sign"),
        ({"company_name": "x" * 121}, "longer than 120"),
    ],
)
def test_bad_values_are_refused_and_nothing_is_saved(as_admin, values, message):
    valid_change = {"default_valid_days": 30}
    response = submit(as_admin, **{**valid_change, **values})
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert get_setting("default_valid_days") == 3650  # the valid change was not saved either


@pytest.mark.parametrize("role_fixture", ["subadmin", "reseller", "customer"])
def test_only_admins_reach_the_configuration(request, user, role_fixture):
    account = request.getfixturevalue(role_fixture)
    user.login(account.account_number)
    assert user.get(URL).status_code == 403
    assert submit(user, pin_length=8).status_code == 403
    assert get_setting("pin_length") == 6
