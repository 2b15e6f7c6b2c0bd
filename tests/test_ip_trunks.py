"""IP-authenticated trunks: source_ip identifies the account; ranges never overlap."""

import pytest
from sqlalchemy import func, select

from portal.access.service import add_trunk
from portal.apikeys.service import create_key
from portal.extensions import db
from portal.models import Account, AccountBlockedPrefix, AuditEntry, Call, IpTrunk, Status
from portal.rules.addresses import network_range, parse_network, source_key
from portal.transactions import ValidationFailed
from tests.conftest import Api, in_threads, make_caller

MOBILE = "447911123456"  # the 44 rate (call_rates)
HX = {"HX-Request": "true"}


def _trunk(account, network: str, tech_prefix: str = "", actor=None) -> IpTrunk:
    """An IP trunk added through the service, as the page and the API add it."""
    return add_trunk(actor, account, {"network": network, "tech_prefix": tech_prefix})


def _calls(api, source_ip: str, destination: str = MOBILE, **extra):
    """Authorize one call from `source_ip` (a new call id each time)."""
    _calls.count = getattr(_calls, "count", 0) + 1
    return api.authorize(
        call_id=f"ip{_calls.count}", source_ip=source_ip, destination=destination, **extra
    )


# --- Pure rules ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "normalized"),
    [
        ("203.0.113.7", "203.0.113.7/32"),
        ("203.0.113.0/24", "203.0.113.0/24"),
        ("203.0.113.9/24", "203.0.113.0/24"),  # host bits cleared
        (" 2001:DB8::/48 ", "2001:db8::/48"),
        ("2001:db8::1", "2001:db8::1/128"),
        ("::ffff:203.0.113.0/120", "203.0.113.0/24"),  # IPv4-mapped is IPv4
        ("203.0.113.256", None),
        ("203.0.113.0/33", None),
        ("fe80::1%eth0", None),
        ("example.com", None),
        ("", None),
    ],
)
def test_networks_are_normalized(text, normalized):
    network = parse_network(text)
    assert (str(network) if network else None) == normalized


def test_range_keys_sort_as_addresses_do():
    low, high = network_range(parse_network("10.0.0.0/8"))
    assert low < source_key("10.200.1.1") < high
    assert source_key("9.255.255.255") < low and source_key("11.0.0.0") > high
    # IPv4 sorts inside IPv6 (as ::ffff:a.b.c.d); the mapped form is the same address.
    assert source_key("::ffff:10.0.0.1") == source_key("10.0.0.1")
    assert source_key("::1") < low < source_key("2001:db8::1")
    assert source_key("10.0.0.0/8") is None and source_key("10.0.0.256") is None


# --- Authorization ----------------------------------------------------------------------


def test_a_32_identifies_its_account(api, call_rates):
    account = make_caller("5000000201", call_rates, "1000")
    _trunk(account, "203.0.113.7")
    response = _calls(api, "203.0.113.7")
    assert response.status_code == 200
    assert response.json["allowed"] is True, response.json
    call = db.session.scalar(select(Call))
    assert (call.account_id, call.source_ip, call.sip_username) == (account.id, "203.0.113.7", "")
    refused = _calls(api, "203.0.113.8")
    assert refused.json["cause"] == "AUTHENTICATION_FAIL"


def test_a_24_holds_its_addresses_and_not_its_neighbours(api, call_rates):
    first = make_caller("5000000202", call_rates, "1000")
    second = make_caller("5000000203", call_rates, "1000")
    _trunk(first, "10.0.0.0/24")
    _trunk(second, "10.0.2.0/24")
    for address, owner in [
        ("10.0.0.0", first),
        ("10.0.0.255", first),
        ("10.0.2.17", second),
        ("10.0.1.5", None),  # in the gap: the range below ends before it
        ("10.0.3.0", None),
        ("9.255.255.255", None),
    ]:
        response = _calls(api, address)
        if owner is None:
            assert response.json["cause"] == "AUTHENTICATION_FAIL", address
        else:
            assert response.json["allowed"] is True, (address, response.json)
            call = db.session.scalar(select(Call).order_by(Call.id.desc()))
            assert call.account_id == owner.id, address


def test_ipv6_and_ipv4_mapped_addresses(api, call_rates):
    account = make_caller("5000000204", call_rates, "1000")
    _trunk(account, "2001:db8:5::/48")
    _trunk(account, "198.51.100.0/24")
    assert _calls(api, "2001:db8:5:ffff::1").json["allowed"] is True
    assert _calls(api, "2001:DB8:5::9").json["allowed"] is True
    assert _calls(api, "2001:db8:6::1").json["cause"] == "AUTHENTICATION_FAIL"
    assert _calls(api, "::ffff:198.51.100.20").json["allowed"] is True


def test_a_tech_prefix_must_be_dialled_and_is_stripped(api, call_rates):
    account = make_caller("5000000205", call_rates, "1000", number_translation="0/44")
    _trunk(account, "192.0.2.0/24", tech_prefix="9901")
    response = _calls(api, "192.0.2.10", "9901" + MOBILE, explain=True)
    body = response.json
    assert body["allowed"] is True, body
    assert body["translated_destination"] == MOBILE and body["rate"]["prefix"] == "44"
    call = db.session.scalar(select(Call))
    assert (call.destination, call.translated_destination) == ("9901" + MOBILE, MOBILE)
    # Stripped, then translated (0 -> 44), then rated and checked against blocked prefixes.
    translated = _calls(api, "192.0.2.10", "990107911123456")
    assert translated.json["translated_destination"] == MOBILE, translated.json
    db.session.add(AccountBlockedPrefix(account_id=account.id, prefix="4479"))
    db.session.commit()
    assert _calls(api, "192.0.2.10", "9901" + MOBILE).json["cause"] == "DESTINATION_BLOCKED"
    # Without the tech prefix (or with nothing after it) the call is not the account's.
    assert _calls(api, "192.0.2.10", MOBILE).json["cause"] == "AUTHENTICATION_FAIL"
    assert _calls(api, "192.0.2.10", "9901").json["cause"] == "AUTHENTICATION_FAIL"


def test_an_inactive_trunk_or_account(api, call_rates):
    account = make_caller("5000000206", call_rates, "1000")
    trunk = _trunk(account, "192.0.2.7")
    trunk.status = Status.INACTIVE
    db.session.commit()
    assert _calls(api, "192.0.2.7").json["cause"] == "AUTHENTICATION_FAIL"
    trunk.status = Status.ACTIVE
    account.status = Status.INACTIVE
    db.session.commit()
    assert _calls(api, "192.0.2.7").json["cause"] == "ACCOUNT_INACTIVE_DELETED"


def test_a_reseller_key_identifies_only_its_own_subtrees_trunks(client, tenants_calling):
    _row, key = create_key(tenants_calling["a"], "fs-a", "")
    api = Api(client, key)
    _trunk(tenants_calling["a1_customer"], "198.51.100.1")
    _trunk(tenants_calling["b_customer"], "198.51.100.2")
    assert _calls(api, "198.51.100.1").json["allowed"] is True
    other = _calls(api, "198.51.100.2", explain=True)
    assert other.status_code == 200 and other.json["cause"] == "AUTHENTICATION_FAIL"
    call = db.session.scalar(select(Call).order_by(Call.id.desc()))
    assert call.account_id is None and call.source_ip == "198.51.100.2"


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"source_ip": "203.0.113.256"}, "source_ip", "An IPv4 or IPv6 address"),
        ({"source_ip": "203.0.113.0/24"}, "source_ip", "An IPv4 or IPv6 address"),
        ({"source_ip": "fe80::1%eth0"}, "source_ip", "An IPv4 or IPv6 address"),
        ({"source_ip": ""}, "source_ip", "Required: a non-empty string."),
        ({"source_ip": 7}, "source_ip", "Required: a non-empty string."),
        ({"source_ip": "1" * 46}, "source_ip", "At most 45 characters."),
        ({"source_ip": "203.0.113.7", "account": "5000000207"}, "account", "Send exactly one"),
        ({"source_ip": "203.0.113.7", "sip_username": "ann"}, "account", "Send exactly one"),
    ],
)
def test_a_bad_source_ip_is_a_400_on_its_field(api, call_rates, body, field, message):
    response = api.authorize(call_id="bad", destination=MOBILE, **body)
    assert response.status_code == 400
    assert response.json["fields"][field].startswith(message), response.json
    assert db.session.scalar(select(func.count()).select_from(Call)) == 0


def test_exactly_one_caller_is_named_in_the_message(api, call_rates):
    response = api.authorize(call_id="c1", destination=MOBILE)
    assert response.json["fields"] == {
        "account": "Send exactly one of account, sip_username and source_ip."
    }


# --- Ranges never overlap -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("existing", "new"),
    [
        ("203.0.113.0/24", "203.0.113.0/24"),  # equal
        ("203.0.113.0/24", "203.0.113.77"),  # contained
        ("203.0.113.0/24", "203.0.113.128/25"),  # contained, at the end
        ("203.0.113.77", "203.0.112.0/23"),  # containing
        ("203.0.113.0/24", "::ffff:203.0.113.9"),  # the same address, IPv4-mapped
        ("2001:db8::/48", "2001:db8:0:1::/64"),  # IPv6, contained
        ("2001:db8:0:1::5", "2001:db8::/32"),  # IPv6, containing
    ],
)
def test_an_overlapping_range_is_refused(app, admin, call_rates, existing, new):
    first = make_caller("5000000210", call_rates)
    second = make_caller("5000000211", call_rates)
    _trunk(first, existing)
    with pytest.raises(ValidationFailed) as refused:
        _trunk(second, new, actor=admin)
    assert refused.value.errors["network"].startswith("Overlaps ")
    assert "of account 5000000210" in refused.value.errors["network"]
    with pytest.raises(ValidationFailed):
        _trunk(first, new)  # its own ranges may not overlap either
    assert db.session.scalar(select(func.count()).select_from(IpTrunk)) == 1


def test_adjacent_ranges_do_not_overlap(app, call_rates):
    account = make_caller("5000000212", call_rates)
    for network in ("203.0.113.0/25", "203.0.113.128/25", "203.0.112.255", "203.0.114.0/24"):
        _trunk(account, network)
    assert db.session.scalar(select(func.count()).select_from(IpTrunk)) == 4


def test_the_other_account_is_named_only_to_who_may_see_it(app, tenants):
    _trunk(tenants["b_customer"], "198.51.100.0/24")
    with pytest.raises(ValidationFailed) as refused:
        _trunk(tenants["a_customer"], "198.51.100.9", actor=tenants["a"])
    assert refused.value.errors == {"network": "Overlaps an address range of another account."}


def test_concurrent_overlapping_adds_keep_one(app, call_rates):
    # The overlap check and the insert run under one lock: of four overlapping ranges added
    # at once, one is saved and three are refused (UNIQUE alone would let all four in).
    ids = [make_caller(f"500000022{n}", call_rates).id for n in range(4)]
    networks = ["10.9.0.0/16", "10.9.1.0/24", "10.9.1.1", "10.8.0.0/15"]
    refused = []

    def add(n):
        try:
            _trunk(db.session.get(Account, ids[n]), networks[n])
        except ValidationFailed:
            refused.append(n)

    assert in_threads(app, add, list(range(4))) == []
    assert len(refused) == 3
    assert db.session.scalar(select(func.count()).select_from(IpTrunk)) == 1


# --- The account page -------------------------------------------------------------------


def test_an_admin_adds_and_removes_trunks_on_the_account_page(as_admin, customer):
    page = f"/accounts/{customer.id}"
    assert 'id="ip-trunks"' in as_admin.get(page).text
    for network, tech_prefix in [
        ("203.0.113.7", ""),
        ("198.51.100.0/24", "77"),
        ("2001:db8::/48", ""),
    ]:
        data = {"network": network, "tech_prefix": tech_prefix}
        assert as_admin.post(f"{page}/ip-trunks", data, token_from=page).status_code == 303
    shown = as_admin.get(page).text
    for text in ("203.0.113.7/32", "198.51.100.0/24", "2001:db8::/48"):
        assert f"<code>{text}</code>" in shown
    entry = db.session.scalar(select(AuditEntry).order_by(AuditEntry.id.desc()))
    assert entry.account_id == customer.id and entry.changes == {
        "IP trunk": [None, "2001:db8::/48"]
    }
    trunk = db.session.scalar(select(IpTrunk).where(IpTrunk.tech_prefix == "77"))
    fragment = as_admin.post(f"{page}/ip-trunks/{trunk.id}/delete", {}, token_from=page, headers=HX)
    assert fragment.status_code == 200 and "<code>198.51.100.0/24</code>" not in fragment.text
    assert "IP trunk 198.51.100.0/24 removed." in fragment.text
    assert db.session.scalar(select(func.count()).select_from(IpTrunk)) == 2
    entry = db.session.scalar(select(AuditEntry).order_by(AuditEntry.id.desc()))
    assert entry.changes == {"IP trunk": ["198.51.100.0/24 tech prefix 77", None]}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"network": "", "tech_prefix": ""}, "This field is required."),
        ({"network": "203.0.113.300", "tech_prefix": ""}, "An IPv4 or IPv6 address or CIDR range"),
        ({"network": "203.0.113.0/24", "tech_prefix": "9a"}, "Digits only, at most 16"),
        ({"network": "203.0.113.0/24", "tech_prefix": "9" * 17}, "Field cannot be longer"),
    ],
)
def test_bad_trunk_input_is_refused_on_its_field(as_admin, customer, data, message):
    page = f"/accounts/{customer.id}"
    response = as_admin.post(f"{page}/ip-trunks", data, token_from=page)
    assert response.status_code == 422 and message in response.text
    assert db.session.scalar(select(func.count()).select_from(IpTrunk)) == 0


def test_an_overlap_is_refused_on_the_page_with_the_other_account(as_admin, customer, call_rates):
    other = make_caller("5000000230", call_rates)
    _trunk(other, "203.0.113.0/24")
    page = f"/accounts/{customer.id}"
    data = {"network": "203.0.113.5", "tech_prefix": ""}
    response = as_admin.post(f"{page}/ip-trunks", data, token_from=page, headers=HX)
    assert response.status_code == 200
    assert "Overlaps 203.0.113.0/24 of account 5000000230." in response.text
    assert db.session.scalar(select(func.count()).select_from(IpTrunk)) == 1


def test_another_resellers_customers_trunks_are_not_found(user, tenants):
    trunk = _trunk(tenants["a_customer"], "198.51.100.3")
    user.login(tenants["b"].account_number)
    url = f"/accounts/{tenants['a_customer'].id}/ip-trunks"
    data = {"network": "198.51.100.4", "tech_prefix": ""}
    assert user.post(url, data, token_from="/dashboard/").status_code == 404
    assert user.post(f"{url}/{trunk.id}/delete", {}, token_from="/dashboard/").status_code == 404
    assert db.session.scalar(select(func.count()).select_from(IpTrunk)) == 1


# --- The REST API -----------------------------------------------------------------------


def test_the_rest_api_manages_an_accounts_trunks(rest, customer, call_rates):
    url = f"/accounts/{customer.id}/ip-trunks"
    created = rest.post(url, {"network": "203.0.113.0/24", "tech_prefix": "42"})
    assert created.status_code == 201
    assert {k: created.json[k] for k in ("network", "tech_prefix", "status")} == {
        "network": "203.0.113.0/24",
        "tech_prefix": "42",
        "status": "active",
    }
    overlap = rest.post(url, {"network": "203.0.113.9"})
    assert overlap.status_code == 422
    assert overlap.json["fields"]["network"] == "Overlaps 203.0.113.0/24 of this account."
    assert rest.post(url, {"network": "nope"}).status_code == 422
    assert rest.post(url, {"network": "10.0.0.1", "tech_prefix": "x"}).status_code == 422
    assert [t["network"] for t in rest.get(url).json["items"]] == ["203.0.113.0/24"]
    assert rest.delete(f"{url}/{created.json['id']}").status_code == 204
    assert rest.delete(f"{url}/{created.json['id']}").status_code == 404
    assert rest.get(url).json["items"] == []


def test_the_rest_api_hides_another_tenants_trunks(reseller_rest, tenants):
    url = f"/accounts/{tenants['b_customer'].id}/ip-trunks"
    assert reseller_rest.get(url).status_code == 404
    assert reseller_rest.post(url, {"network": "10.1.1.1"}).status_code == 404
    own = f"/accounts/{tenants['a_customer'].id}/ip-trunks"
    assert reseller_rest.post(own, {"network": "10.1.1.1"}).status_code == 201


def test_staff_accounts_have_no_trunks(as_admin, subadmin):
    page = f"/accounts/{subadmin.id}"
    assert 'id="ip-trunks"' not in as_admin.get(page).text
    data = {"network": "10.1.1.1", "tech_prefix": ""}
    assert as_admin.post(f"{page}/ip-trunks", data, token_from=page).status_code == 404
