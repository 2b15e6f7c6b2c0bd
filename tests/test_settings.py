"""Global configuration: admins only, validated ranges, and its effect on the form."""

import re

import pytest

from portal.settings.service import get_setting

URL = "/configuration/"


def submit(user, **values):
    """Post the configuration form."""
    data = {"account_number_length": "10", "pin_length": "6"}
    data.update({key: str(value) for key, value in values.items()})
    return user.post(URL, data, token_from=URL)


def test_defaults(app):
    assert get_setting("account_number_length") == 10
    assert get_setting("pin_length") == 6


def test_admin_changes_lengths_and_the_form_follows(as_admin, default_rate_group):
    page = as_admin.get(URL).get_data(as_text=True)
    assert "Account number length" in page and "PIN length" in page
    response = submit(as_admin, account_number_length=14, pin_length=9)
    assert response.status_code == 303
    assert get_setting("account_number_length") == 14
    assert get_setting("pin_length") == 9
    form = as_admin.get("/accounts/new").get_data(as_text=True)
    assert re.search(r'id="account_number"[^>]*value="\d{14}"', form)
    assert re.search(r'id="pin"[^>]*value="\d{9}"', form)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"account_number_length": 5}, "between 6 and 20"),
        ({"account_number_length": 21}, "between 6 and 20"),
        ({"pin_length": 3}, "between 4 and 12"),
        ({"pin_length": 13}, "between 4 and 12"),
        ({"pin_length": "six"}, "Not a valid integer"),
        ({"account_number_length": ""}, "This field is required"),
    ],
)
def test_out_of_range_values_are_refused(as_admin, values, message):
    response = submit(as_admin, **values)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert get_setting("account_number_length") == 10 and get_setting("pin_length") == 6


@pytest.mark.parametrize("role_fixture", ["subadmin", "reseller", "customer"])
def test_only_admins_reach_the_configuration(request, user, role_fixture):
    account = request.getfixturevalue(role_fixture)
    user.login(account.account_number)
    assert user.get(URL).status_code == 403
    assert submit(user, pin_length=8).status_code == 403
    assert get_setting("pin_length") == 6
