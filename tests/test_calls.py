"""Call authorization, reservations, hang-up rating, the reaper and the FreeSWITCH directory."""

import hashlib
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from xml.etree import ElementTree

import pytest
from sqlalchemy import func, select, text
from werkzeug.test import Client as WerkzeugClient

from portal.apikeys.service import create_key, revoke_key
from portal.billing.service import add_payment
from portal.calls.engine import CALLS_BIND, authorize_call
from portal.calls.service import end_call
from portal.extensions import db
from portal.models import (
    Account,
    AccountType,
    ApiKey,
    Call,
    CallStatus,
    EntryKind,
    LedgerEntry,
    OutboxMessage,
    RateGroup,
    Role,
    Status,
    utcnow,
)
from portal.rules.calls import billable_seconds, call_cost, max_duration, minimum_to_call
from portal.softswitch import authorize as lane_module
from portal.web import HTTP_ERRORS
from tests.conftest import (
    Api,
    Browser,
    make_account,
    make_caller,
    make_sip_device,
    make_test_app,
)

LONDON = "442079460958"  # the 4420 rate: 0.10 connect, 0.60/min, 30 s then 6 s increments
MOBILE = "447911123456"  # the 44 rate: 0.60/min in whole minutes


# --- Pure rating -------------------------------------------------------------------------


@dataclass
class R:
    """A rate for the pure rules."""

    connect_cost: Decimal = Decimal(0)
    cost_per_minute: Decimal = Decimal("0.6")
    initial_increment: int = 60
    increment: int = 60


@pytest.mark.parametrize(
    ("initial", "increment", "seconds", "billed"),
    [
        (60, 60, 0, 0),
        (60, 60, 1, 60),
        (60, 60, 60, 60),
        (60, 60, 61, 120),
        (30, 6, 30, 30),
        (30, 6, 31, 36),
        (30, 6, 47, 48),
        (0, 6, 1, 6),
        (1, 1, 59, 59),
        (0, 0, 7, 7),
    ],
)
def test_billable_seconds_round_up_to_whole_increments(initial, increment, seconds, billed):
    assert billable_seconds(R(initial_increment=initial, increment=increment), seconds) == billed


def test_call_cost_is_connect_plus_increments_rounded_up():
    london = R(Decimal("0.1"), Decimal("0.6"), 30, 6)
    assert call_cost(london, 0) == 0  # unanswered: not even the connect cost
    assert call_cost(london, 1) == Decimal("0.40")  # connect + the 30 s initial increment
    assert call_cost(london, 47) == Decimal("0.58")  # 48 s
    # 1 s at 0.01/min is 0.0001666...: rounded up to the 5th decimal, never down.
    assert call_cost(R(cost_per_minute=Decimal("0.01"), initial_increment=1, increment=1), 1) == (
        Decimal("0.00017")
    )
    assert minimum_to_call(london) == Decimal("0.40")


def test_max_duration_from_funds_and_the_cap():
    uk = R()
    assert max_duration(uk, Decimal("3.00"), 3600) == 300
    assert max_duration(uk, Decimal("3.59"), 3600) == 300  # the 6th minute is not affordable
    assert max_duration(uk, Decimal("0.59"), 3600) == 0  # below the first minute
    assert max_duration(uk, Decimal("1000"), 3600) == 3600  # capped
    assert max_duration(R(cost_per_minute=Decimal(0)), Decimal(0), 600) == 600  # free
    london = R(Decimal("0.1"), Decimal("0.6"), 30, 6)
    assert max_duration(london, Decimal("1.00"), 3600) == 90  # 0.10 + 90 s at 0.01/s
    assert max_duration(london, Decimal("0.39"), 3600) == 0  # connect + 30 s is 0.40


@pytest.mark.parametrize("connect", ["0", "0.07", "1.3"])
@pytest.mark.parametrize(("initial", "increment"), [(60, 60), (30, 6), (1, 1), (0, 15)])
def test_max_duration_is_the_longest_affordable_call(connect, initial, increment):
    rate = R(Decimal(connect), Decimal("0.37"), initial, increment)
    step = max(increment, 1)
    for cents in range(0, 1500, 7):
        funds = Decimal(cents) / 100
        seconds = max_duration(rate, funds, 100_000)
        if seconds == 0:
            assert funds < minimum_to_call(rate)
            continue
        assert call_cost(rate, seconds) <= funds
        assert call_cost(rate, seconds + step) > funds, (funds, seconds)


# --- API keys ----------------------------------------------------------------------------


def test_api_without_a_key_is_401_json(client, call_rates):
    response = client.post("/api/v1/calls/authorize", json={})
    assert response.status_code == 401
    assert response.is_json and "Bearer" in response.json["error"]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Bearer not-a-key", "Malformed API key."),
        ("Bearer vbp_000000000000_secret", "Unknown API key."),
        ("Token abc", "Send an API key"),
    ],
)
def test_bad_keys_are_401_json(client, api_key, header, message):
    response = client.post("/api/v1/calls/authorize", json={}, headers={"Authorization": header})
    assert response.status_code == 401
    assert response.is_json and response.json["error"].startswith(message)


def test_a_known_prefix_with_a_wrong_secret_is_unknown(client, api_key):
    forged = api_key[: api_key.rindex("_") + 1] + "x" * 43
    response = Api(client, forged).authorize()
    assert response.status_code == 401 and response.json["error"] == "Unknown API key."


def test_a_revoked_key_stops_working_at_once(app, client, admin, call_rates):
    row, key = create_key(admin, "fs1", "")
    api = Api(client, key)
    assert api.authorize().status_code == 400  # past authentication: the empty body is refused
    revoke_key(admin, row)
    response = api.authorize()
    assert response.status_code == 401
    assert response.json == {"error": "This API key was revoked."}


def test_ip_allow_list(app, client, admin):
    _row, key = create_key(admin, "fs1", "10.0.0.0/24, 192.0.2.7")
    api = Api(client, key)
    response = api.authorize()  # the test client comes from 127.0.0.1
    assert response.status_code == 403
    assert response.json == {"error": "This API key may not be used from this address."}
    for address in ("10.0.0.99", "192.0.2.7"):
        response = api.post(
            "/api/v1/calls/authorize", json={}, environ_base={"REMOTE_ADDR": address}
        )
        assert response.status_code == 400, address  # authenticated; the empty body is refused


@pytest.mark.parametrize(
    "refusal, status, error",
    [
        ("revoked", 401, "This API key was revoked."),
        ("address", 403, "This API key may not be used from this address."),
        ("owner", 401, "The account of this API key is not active."),
    ],
)
def test_a_refused_key_gets_no_decision_and_writes_nothing(
    app, client, admin, call_rates, refusal, status, error
):
    # A valid request: the key's state is checked with the account's row, before any check.
    allowed_ips = "10.0.0.0/24" if refusal == "address" else ""
    row, key = create_key(admin, "fs1", allowed_ips)
    account = make_caller("5000000030", call_rates, "10")
    if refusal == "revoked":
        revoke_key(admin, row)
    elif refusal == "owner":
        db.session.get(Account, admin.id).status = Status.INACTIVE
        db.session.commit()
    body = {"call_id": "c1", "account": account.account_number, "destination": MOBILE}
    response = Api(client, key).authorize(**body)
    assert (response.status_code, response.json) == (status, {"error": error})
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Call)) == 0
    assert db.session.get(Account, account.id).live_calls == 0
    assert db.session.get(ApiKey, row.id).last_used_at is None


def test_an_account_whose_funds_keep_changing_gets_a_503_and_nothing_written(
    app, api, call_rates, monkeypatch
):
    from portal.calls import service

    account = make_caller("5000000031", call_rates, "10")
    # Every write finds the row changed since it was read, as under a storm of parallel calls.
    monkeypatch.setattr(service, "_record", lambda *args: False)
    response = api.authorize(call_id="c1", account=account.account_number, destination=MOBILE)
    assert response.status_code == 503
    assert response.json == {"error": "The account's funds kept changing; retry the authorization."}
    assert db.session.scalar(select(func.count()).select_from(Call)) == 0


def test_mod_xml_curl_basic_auth_carries_the_key(client, api_key, customer_device):
    import base64

    basic = base64.b64encode(f"freeswitch:{api_key}".encode()).decode()
    response = Api(client, "unused").directory(
        customer_device.username, headers={"Authorization": f"Basic {basic}"}
    )
    assert response.status_code == 200 and 'result status="not found"' not in response.text


def test_an_admin_creates_a_key_shown_once_and_stored_as_sha256(as_admin, client):
    response = as_admin.post(
        "/api-keys/", {"name": "fs1 Frankfurt", "allowed_ips": ""}, token_from="/api-keys/"
    )
    assert response.status_code == 200
    key = re.search(r'<code id="new-api-key">([^<]+)</code>', response.text).group(1)
    assert "Shown once" in response.text
    row = db.session.scalar(select(ApiKey))
    assert row.name == "fs1 Frankfurt"
    assert row.key_hash == hashlib.sha256(key.encode()).hexdigest()
    stored = [str(getattr(row, c.key)) for c in ApiKey.__table__.columns]
    assert not any(key in value for value in stored)
    listing = as_admin.get("/api-keys/").text
    assert "fs1 Frankfurt" in listing and key not in listing
    assert Api(client, key).authorize().status_code == 400  # the key works

    revoked = as_admin.post(f"/api-keys/{row.id}/revoke", {}, token_from="/api-keys/")
    assert revoked.status_code == 303
    assert Api(client, key).authorize().status_code == 401
    assert "Revoked" in as_admin.get("/api-keys/").text


def test_last_used_is_written_at_most_once_a_minute_and_listed(as_admin, client, admin):
    row, key = create_key(admin, "fs1", "")
    assert "never" in as_admin.get("/api-keys/").text
    api = Api(client, key)
    api.authorize()
    first = db.session.get(ApiKey, row.id).last_used_at
    assert first is not None and utcnow() - first < timedelta(minutes=1)
    assert f"{first.day} {first:%b %Y, %H:%M:%S}" in as_admin.get("/api-keys/").text
    api.authorize()  # within the minute: no new write
    assert db.session.get(ApiKey, row.id).last_used_at == first
    db.session.get(ApiKey, row.id).last_used_at = first - timedelta(minutes=2)
    db.session.commit()
    api.authorize()
    assert db.session.get(ApiKey, row.id).last_used_at >= first


def test_a_refused_key_is_not_marked_used(client, admin):
    row, key = create_key(admin, "fs1", "10.0.0.0/24")
    assert Api(client, key).authorize().status_code == 403  # from 127.0.0.1
    assert db.session.get(ApiKey, row.id).last_used_at is None


def test_a_key_with_a_bad_address_list_is_refused(as_admin):
    response = as_admin.post(
        "/api-keys/",
        {"name": "fs1", "allowed_ips": "10.0.0.0/24, nonsense"},
        token_from="/api-keys/",
    )
    assert response.status_code == 422
    assert "&#34;nonsense&#34; is not an IP address or network." in response.text
    assert db.session.scalar(select(func.count()).select_from(ApiKey)) == 0


# --- Authorization: checks in order --------------------------------------------------------


def _live_call(account: Account, call_id: str) -> None:
    """A live call of `account` holding no credit (it counts against Max Channels only)."""
    db.session.add(
        Call(call_id=call_id, account_id=account.id, destination="44", status=CallStatus.LIVE)
    )
    account.live_calls += 1  # as an authorization counts it
    db.session.commit()


def _refusal_world(call_rates):
    """One account per refusal cause; each also fails every later check (so order decides)."""
    yesterday = utcnow() - timedelta(days=1)
    inactive_group = RateGroup(name="Old plan", status=Status.INACTIVE)
    db.session.add(inactive_group)
    db.session.commit()
    # Fails funds and channels: 0.59 is below a minute of UK, and one channel is in use.
    poor = {"max_channels": 1}
    no_rate = {"funds": "0", **poor}
    accounts = {
        "inactive": make_caller(
            "5000000001", None, status=Status.INACTIVE, expiry_date=yesterday, **poor
        ),
        "deleted": make_caller("5000000002", None, deleted_at=utcnow(), expiry_date=yesterday),
        "expired": make_caller("5000000003", None, expiry_date=yesterday, **poor),
        "no_group": make_caller("5000000004", None, **no_rate),
        "inactive_group": make_caller("5000000005", inactive_group, **no_rate),
        "no_prefix": make_caller("5000000006", call_rates, **no_rate),
        "no_funds": make_caller("5000000007", call_rates, "0.59", **poor),
        "channels": make_caller("5000000008", call_rates, "10", **poor),
    }
    for name, account in accounts.items():
        _live_call(account, f"busy-{name}")
    return accounts


REFUSALS = [
    ("unknown_account", "AUTHENTICATION_FAIL"),
    ("inactive", "ACCOUNT_INACTIVE_DELETED"),
    ("deleted", "ACCOUNT_INACTIVE_DELETED"),
    ("expired", "ACCOUNT_EXPIRE"),
    ("no_group", "ORIGINATION_RATE_NOT_FOUND"),
    ("inactive_group", "ORIGINATION_RATE_NOT_FOUND"),
    ("no_prefix", "ORIGINATION_RATE_NOT_FOUND"),
    ("no_funds", "NO_SUFFICIENT_FUND"),
    ("channels", "CHANNEL_LIMIT"),
]


@pytest.mark.parametrize(("case", "cause"), REFUSALS)
def test_each_refusal_cause_in_order(api, call_rates, case, cause):
    accounts = _refusal_world(call_rates)
    number = accounts[case].account_number if case in accounts else "5999999999"
    destination = "3312345678" if case == "no_prefix" else MOBILE
    response = api.authorize(call_id=f"c-{case}", account=number, destination=destination)
    assert response.status_code == 200
    body = response.json
    assert body["allowed"] is False and body["cause"] == cause
    assert body["max_duration_seconds"] == 0
    call = db.session.scalar(select(Call).where(Call.call_id == f"c-{case}"))
    assert call.status == CallStatus.REFUSED and call.cause == cause and call.reserved == 0
    if case in accounts:
        account = db.session.get(Account, accounts[case].id)
        assert account.first_used is None
        assert account.available_funds == {"no_funds": Decimal("0.59")}.get(
            case, Decimal(10) if case == "channels" else Decimal(0)
        )


@pytest.mark.parametrize("device_status", [None, Status.INACTIVE])
def test_unknown_or_inactive_sip_user_is_authentication_fail(api, call_rates, device_status):
    account = make_caller("5000000010", call_rates, "10")
    if device_status:
        device = make_sip_device(account, "sipuser10", "Secret-0010")
        device.status = device_status
        db.session.commit()
    response = api.authorize(call_id="c1", sip_username="sipuser10", destination=MOBILE)
    assert response.json["allowed"] is False
    assert response.json["cause"] == "AUTHENTICATION_FAIL"


def test_an_active_sip_user_calls_as_its_account(api, call_rates):
    account = make_caller("5000000011", call_rates, "10")
    make_sip_device(account, "sipuser11", "Secret-0011")
    response = api.authorize(call_id="c1", sip_username="sipuser11", destination=MOBILE)
    assert response.json["allowed"] is True
    call = db.session.scalar(select(Call))
    assert call.account_id == account.id and call.sip_username == "sipuser11"


def test_a_deleted_account_behind_an_active_sip_device_is_inactive_deleted(api, call_rates):
    account = make_caller("5000000012", call_rates, "10")
    make_sip_device(account, "sipuser12", "Secret-0012")
    account.deleted_at = utcnow()
    db.session.commit()
    response = api.authorize(call_id="c1", sip_username="sipuser12", destination=MOBILE)
    assert response.json["cause"] == "ACCOUNT_INACTIVE_DELETED"


def test_an_allowed_call_answers_rate_and_duration(api, call_rates):
    account = make_caller("5000000020", call_rates, "3")
    response = api.authorize(call_id="c1", account=account.account_number, destination=MOBILE)
    assert response.status_code == 200
    assert response.json == {
        "allowed": True,
        "cause": "OK",
        "translated_destination": MOBILE,
        "rate": {
            "prefix": "44",
            "destination": "UK",
            "connect_cost": "0.00000",
            "cost_per_minute": "0.60000",
            "initial_increment": 60,
            "increment": 60,
        },
        "max_duration_seconds": 300,
    }
    call = db.session.scalar(select(Call))
    assert call.status == CallStatus.LIVE and call.reserved == Decimal("3.00")
    assert db.session.get(Account, account.id).balance == Decimal(3)  # reserved, not spent


def test_longest_prefix_wins(api, call_rates):
    account = make_caller("5000000021", call_rates, "10")
    london = api.authorize(call_id="c1", account=account.account_number, destination=LONDON)
    mobile = api.authorize(call_id="c2", account=account.account_number, destination=MOBILE)
    assert london.json["rate"]["prefix"] == "4420"
    assert london.json["rate"]["destination"] == "UK London"
    assert mobile.json["rate"]["prefix"] == "44"


@pytest.mark.parametrize(
    ("rules", "dialled", "translated", "prefix"),
    [
        ("00/", "00" + LONDON, LONDON, "4420"),  # only the translated number has a rate
        ("011/00,00/", "011" + MOBILE, MOBILE, "44"),  # cumulative: 011 -> 00 -> nothing
        ("+/", "+" + LONDON, LONDON, "4420"),
        ("0/*,*/44", "07911123456", MOBILE, "44"),  # strip the 0 (*), then prepend 44 to all
        ("*/44", "2079460958", LONDON, "4420"),
    ],
)
def test_number_translation_applies_before_the_rate_lookup(
    api, call_rates, rules, dialled, translated, prefix
):
    account = make_caller("5000000022", call_rates, "10", number_translation=rules)
    response = api.authorize(call_id="c1", account=account.account_number, destination=dialled)
    assert response.json["allowed"] is True, response.json
    assert response.json["translated_destination"] == translated
    assert response.json["rate"]["prefix"] == prefix
    call = db.session.scalar(select(Call))
    assert (call.destination, call.translated_destination) == (dialled, translated)


def test_untranslated_number_without_a_rate_is_refused(api, call_rates):
    account = make_caller("5000000023", call_rates, "10")
    response = api.authorize(
        call_id="c1", account=account.account_number, destination="00" + LONDON
    )
    assert response.json["cause"] == "ORIGINATION_RATE_NOT_FOUND"


def test_max_duration_follows_funds_credit_and_the_reserve_cap(app, api, call_rates):
    prepaid = make_caller("5000000030", call_rates, "1000")
    postpaid = make_caller(
        "5000000031",
        call_rates,
        account_type=AccountType.POSTPAID,
        credit_limit=Decimal("5"),
        balance=Decimal("2"),  # owed: 3.00 of credit left
    )
    rich = api.authorize(call_id="c1", account=prepaid.account_number, destination=MOBILE)
    assert rich.json["max_duration_seconds"] == 3600  # CALL_RESERVE_SECONDS by default
    credit = api.authorize(call_id="c2", account=postpaid.account_number, destination=MOBILE)
    assert credit.json["max_duration_seconds"] == 300
    app.config["CALL_RESERVE_SECONDS"] = 600
    capped = api.authorize(call_id="c3", account=prepaid.account_number, destination=MOBILE)
    assert capped.json["max_duration_seconds"] == 600
    reserved = db.session.scalars(select(Call.reserved).order_by(Call.id)).all()
    assert reserved == [Decimal(36), Decimal(3), Decimal(6)]


def test_live_reservations_count_against_funds(api, call_rates):
    account = make_caller("5000000032", call_rates, "5")
    first = api.authorize(call_id="c1", account=account.account_number, destination=MOBILE)
    second = api.authorize(call_id="c2", account=account.account_number, destination=MOBILE)
    third = api.authorize(
        call_id="c3", account=account.account_number, destination=MOBILE, explain=True
    )
    assert first.json["max_duration_seconds"] == 480  # 4.80 of 5.00
    assert second.json["allowed"] is False and second.json["cause"] == "NO_SUFFICIENT_FUND"
    funds = {check["check"]: check for check in third.json["checks"]}["funds"]
    assert funds["passed"] is False
    assert Decimal(funds["reserved_by_live_calls"]) == Decimal("4.8")
    assert Decimal(funds["usable"]) == Decimal("0.2")


def test_first_used_is_set_once(api, call_rates):
    account = make_caller("5000000040", call_rates, "10")
    refused = api.authorize(call_id="c0", account=account.account_number, destination="33")
    assert refused.json["allowed"] is False
    assert db.session.get(Account, account.id).first_used is None
    api.authorize(call_id="c1", account=account.account_number, destination=MOBILE)
    first_used = db.session.get(Account, account.id).first_used
    assert first_used is not None and utcnow() - first_used < timedelta(minutes=1)
    db.session.get(Account, account.id).first_used = first_used - timedelta(days=3)
    db.session.commit()
    api.authorize(call_id="c2", account=account.account_number, destination=MOBILE)
    assert db.session.get(Account, account.id).first_used == first_used - timedelta(days=3)


def test_authorizing_does_not_touch_the_accounts_updated_at(api, call_rates):
    account = make_caller("5000000041", call_rates, "10")
    api.authorize(call_id="c1", account=account.account_number, destination=MOBILE)
    before = db.session.get(Account, account.id).updated_at  # First Used was set: a change
    api.authorize(call_id="c2", account=account.account_number, destination=MOBILE)
    assert db.session.get(Account, account.id).updated_at == before


@pytest.mark.parametrize("async_commit", [True, False])
def test_authorizations_commit_with_or_without_waiting_for_the_disk(
    app, api, call_rates, async_commit
):
    app.config["CALLS_ASYNC_COMMIT"] = async_commit  # before the call API's first connection
    account = make_caller("5000000042", call_rates, "10")
    assert api.authorize(call_id="c1", account=account.account_number, destination=MOBILE).json[
        "allowed"
    ]
    refused = api.authorize(call_id="c2", account="5999999999", destination=MOBILE)
    assert refused.json["cause"] == "AUTHENTICATION_FAIL"
    db.session.expire_all()
    statuses = dict(db.session.execute(select(Call.call_id, Call.status)).all())
    assert statuses == {"c1": CallStatus.LIVE, "c2": CallStatus.REFUSED}
    assert db.session.get(Account, account.id).live_calls == 1
    # Only the call API's connections may commit without waiting for the disk; the portal's
    # (payments, invoices) always wait. PostgreSQL relaxes it per statement, never a session.
    # MariaDB: a commit's flush is the server's setting (innodb_flush_log_at_trx_commit, 1 by
    # default), the same for every connection: nothing is relaxed there.
    query, full, relaxed = {
        "sqlite": (text("PRAGMA synchronous"), 2, 1),
        "postgresql": (text("SHOW synchronous_commit"), "on", "on"),
        "mysql": (text("SELECT @@innodb_flush_log_at_trx_commit"), 1, 1),
    }[db.engine.dialect.name]
    with db.engine.connect() as connection:
        assert connection.scalar(query) == full
    with db.engines[CALLS_BIND].connect() as connection:
        assert connection.scalar(query) == (relaxed if async_commit else full)


def test_an_authorization_survives_a_database_restart(api, call_rates):
    dialect = db.engine.dialect.name
    if dialect == "sqlite":
        pytest.skip("a SQLite file has no server connection to lose")
    account = make_caller("5000000043", call_rates, "100")
    assert api.authorize(call_id="c1", account=account.account_number, destination=MOBILE).json[
        "allowed"
    ]
    # The server drops every other connection, as a restart does: the call API's pooled one
    # (kept without a test query) fails once and the authorization runs again on a new one.
    if dialect == "postgresql":
        db.session.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    else:
        others = db.session.scalars(
            text(
                "SELECT id FROM information_schema.processlist"
                " WHERE db = DATABASE() AND id <> CONNECTION_ID()"
            )
        ).all()
        for connection_id in others:
            db.session.execute(text(f"KILL CONNECTION {int(connection_id)}"))
    db.session.commit()
    again = api.authorize(call_id="c2", account=account.account_number, destination=MOBILE)
    assert again.status_code == 200 and again.json["allowed"], again.json
    assert db.session.scalar(select(func.count()).select_from(Call)) == 2


def test_explain_lists_every_check_with_its_figures(api, call_rates):
    account = make_caller("5000000050", call_rates, "10", max_channels=4)
    response = api.authorize(
        call_id="c1", account=account.account_number, destination=LONDON, explain=True
    )
    checks = {check["check"]: check for check in response.json["checks"]}
    assert list(checks) == [
        "authentication",
        "account_active",
        "not_expired",
        "rate_group",
        "rate",
        "destination_allowed",
        "funds",
        "channels",
    ]
    assert all(check["passed"] for check in checks.values())
    assert checks["authentication"]["account"] == account.account_number
    assert checks["account_active"]["status"] == "active"
    assert checks["rate_group"]["rate_group"] == "Calls"
    assert checks["rate"]["translated_destination"] == LONDON
    assert checks["rate"]["rate"]["prefix"] == "4420"
    funds = checks["funds"]
    assert Decimal(funds["available_funds"]) == 10
    assert Decimal(funds["reserved_by_live_calls"]) == 0
    assert Decimal(funds["needed_to_start"]) == Decimal("0.40")
    assert checks["channels"] == {
        "check": "channels",
        "passed": True,
        "live_calls": 0,
        "max_channels": 4,
    }
    plain = api.authorize(call_id="c2", account=account.account_number, destination=LONDON)
    assert "checks" not in plain.json


def test_explain_reports_every_check_past_the_first_failure(api, call_rates):
    # Expired, and 0.59 is below a minute of UK, and its one channel is in use: the cause is
    # the first failure in rule order, the later checks still show their figures.
    account = make_caller(
        "5000000051", call_rates, "0.59", expiry_date=utcnow() - timedelta(1), max_channels=1
    )
    _live_call(account, "busy")
    plain = api.authorize(call_id="c0", account=account.account_number, destination=MOBILE)
    response = api.authorize(
        call_id="c1", account=account.account_number, destination=MOBILE, explain=True
    )
    body = response.json
    assert body["allowed"] is False and body["cause"] == "ACCOUNT_EXPIRE"
    # explain adds the checks and changes nothing else of the answer.
    explained = ("checks", "refused_by")
    assert {k: v for k, v in body.items() if k not in explained} == plain.json
    assert body["refused_by"] == {
        "level": 0,
        "account": account.account_number,
        "account_id": account.id,
    }
    checks = {check["check"]: check for check in body["checks"]}
    assert list(checks) == [
        "authentication",
        "account_active",
        "not_expired",
        "rate_group",
        "rate",
        "destination_allowed",
        "funds",
        "channels",
    ]
    passed = {name: check["passed"] for name, check in checks.items()}
    assert passed == {
        "authentication": True,
        "account_active": True,
        "not_expired": False,
        "rate_group": True,
        "rate": True,
        "destination_allowed": True,
        "funds": False,
        "channels": False,
    }
    assert checks["not_expired"]["expiry_date"]
    assert checks["rate"]["rate"]["prefix"] == "44"
    assert Decimal(checks["funds"]["usable"]) == Decimal("0.59")
    assert Decimal(checks["funds"]["needed_to_start"]) == Decimal("0.60")
    assert checks["channels"]["live_calls"] == 1 and checks["channels"]["max_channels"] == 1
    call = db.session.scalar(select(Call).where(Call.call_id == "c1"))
    assert call.status == CallStatus.REFUSED and call.cause == "ACCOUNT_EXPIRE"


def test_explain_leaves_out_checks_that_cannot_be_evaluated(api, call_rates):
    no_group = make_caller("5000000052", None, "10", status=Status.INACTIVE)
    response = api.authorize(
        call_id="c1", account=no_group.account_number, destination=MOBILE, explain=True
    )
    assert response.json["cause"] == "ACCOUNT_INACTIVE_DELETED"
    checks = {check["check"]: check for check in response.json["checks"]}
    # No rate group: no rate to look up, so no funds needed to start; the account's own
    # blocked prefixes and the channels still count.
    assert list(checks) == [
        "authentication",
        "account_active",
        "not_expired",
        "rate_group",
        "destination_allowed",
        "channels",
    ]
    assert checks["rate_group"] == {"check": "rate_group", "passed": False, "rate_group": None}
    unknown = api.authorize(
        call_id="c2", account="5999999999", destination=MOBILE, explain=True
    ).json
    assert unknown["cause"] == "AUTHENTICATION_FAIL"
    assert unknown["checks"] == [{"check": "authentication", "passed": False, "account": None}]


def test_a_retried_authorization_gets_the_same_answer_and_reserves_once(api, call_rates):
    account = make_caller("5000000060", call_rates, "10")
    first = api.authorize(call_id="same", account=account.account_number, destination=MOBILE)
    again = api.authorize(call_id="same", account=account.account_number, destination=MOBILE)
    assert again.json == first.json
    assert db.session.scalar(select(func.count()).select_from(Call)) == 1
    assert db.session.scalar(select(func.sum(Call.reserved))) == Decimal("9.6")


def test_a_retried_refusal_gets_the_same_refusal(api, call_rates):
    account = make_caller("5000000061", call_rates, "0.10")
    first = api.authorize(call_id="poor", account=account.account_number, destination=MOBILE)
    assert first.json["cause"] == "NO_SUFFICIENT_FUND"
    add_payment(None, db.session.get(Account, account.id), "10")
    again = api.authorize(call_id="poor", account=account.account_number, destination=MOBILE)
    assert again.json == first.json  # the stored decision, not a new one
    assert db.session.scalar(select(func.count()).select_from(Call)) == 1


@pytest.mark.parametrize("finish", ["end", "reap"])
def test_authorizing_an_ended_call_again_is_409(app, api, call_rates, finish):
    account = make_caller("5000000062", call_rates, "10")
    api.authorize(call_id="done", account=account.account_number, destination=MOBILE)
    if finish == "end":
        assert api.end("done", 30).status_code == 200
    else:
        call = db.session.scalar(select(Call).where(Call.call_id == "done"))
        call.started_at = utcnow() - timedelta(hours=2)
        db.session.commit()
        assert app.test_cli_runner().invoke(args=["calls", "reap"]).exit_code == 0
    balance = db.session.get(Account, account.id).balance
    again = api.authorize(call_id="done", account=account.account_number, destination=MOBILE)
    assert again.status_code == 409
    assert again.json == {
        "error": "This call has already ended.",
        "fields": {"call_id": "This call has already ended."},
    }
    assert db.session.scalar(select(func.count()).select_from(Call)) == 1
    live = select(func.count()).select_from(Call).where(Call.status == CallStatus.LIVE)
    assert db.session.scalar(live) == 0
    assert db.session.get(Account, account.id).balance == balance


def test_a_key_only_reaches_its_own_tenant(app, client, call_rates, tenants_calling):
    tenants = tenants_calling
    _row, key = create_key(tenants["a"], "reseller switch", "")
    api = Api(client, key)
    theirs = make_caller("5000000070", call_rates, "10")
    response = api.authorize(call_id="t1", account=theirs.account_number, destination=MOBILE)
    assert response.json["cause"] == "AUTHENTICATION_FAIL"
    own = tenants["a1_customer"]  # a sub-reseller's customer is in reseller A's subtree
    response = api.authorize(call_id="t2", account=own.account_number, destination="44")
    assert response.json["allowed"] is True  # Plan A1's 44 rate is free
    # Another tenant's call id is neither replayed nor reused.
    admins = Api(client, create_key(make_account(Role.ADMIN, "1000000099"), "fs", "")[1])
    admins.authorize(call_id="theirs", account=theirs.account_number, destination=MOBILE)
    response = api.authorize(call_id="theirs", account=own.account_number, destination="44")
    assert response.status_code == 409 and response.json["fields"] == {
        "call_id": "This call id is already taken."
    }
    assert api.end("theirs", 10).status_code == 404


@pytest.mark.parametrize("by", ["account", "sip_username"])
@pytest.mark.parametrize(
    ("owner", "reachable"),
    [
        ("admin", {"a_customer", "a1_customer", "b_customer", "admin"}),
        ("subadmin", {"a_customer", "a1_customer", "b_customer"}),
        ("a", {"a_customer", "a1_customer"}),
        ("a1", {"a1_customer"}),
        ("a_customer", {"a_customer"}),
    ],
)
def test_each_kind_of_key_reaches_only_its_tenants_callers(client, tenants, owner, reachable, by):
    tenants["admin"] = make_account(Role.ADMIN, "1000000098")
    tenants["subadmin"] = make_account(Role.SUBADMIN, "1000000097")
    make_sip_device(tenants["admin"], tenants["admin"].account_number, "Sip-Secret-98")
    api = Api(client, create_key(tenants[owner], "fs", "")[1])
    for name in ("a_customer", "a1_customer", "b_customer", "admin"):
        # Every caller here has a SIP device named after its account number.
        who = {by: tenants[name].account_number}
        answer = api.authorize(call_id=f"{owner}-{name}", destination="44", **who).json
        assert (answer["cause"] != "AUTHENTICATION_FAIL") == (name in reachable), name


# --- Reservations under concurrency ---------------------------------------------------------


def _assert_counters_match_live_calls(account_id: int) -> tuple[int, Decimal]:
    """The account's live-call counters equal the sums over its live calls; return them."""
    db.session.expire_all()
    account = db.session.get(Account, account_id)
    live, reserved = db.session.execute(
        select(func.count(), func.coalesce(func.sum(Call.reserved), 0)).where(
            Call.account_id == account_id, Call.status == CallStatus.LIVE
        )
    ).one()
    assert (account.live_calls, account.reserved) == (live, Decimal(reserved))
    return live, account.reserved


def _authorize_together(app, owner_id: int, account_number: str, call_ids: list[str]) -> list:
    """Authorize calls from parallel threads, each in its own app context and session."""
    barrier = threading.Barrier(len(call_ids))

    def one(call_id: str) -> dict:
        barrier.wait()
        with app.app_context():
            owner = db.session.get(Account, owner_id)
            decision = authorize_call(owner, call_id, MOBILE, account_number=account_number)
            return decision.answer(explain=False)

    with ThreadPoolExecutor(max_workers=len(call_ids)) as pool:
        return list(pool.map(one, call_ids))


@pytest.mark.parametrize("reserve_seconds", [3600, 120])
def test_parallel_calls_never_spend_more_than_the_funds(app, admin, call_rates, reserve_seconds):
    app.config["CALL_RESERVE_SECONDS"] = reserve_seconds
    account = make_caller("5000000080", call_rates, "3")  # 5 minutes at 0.60/min
    answers = _authorize_together(
        app, admin.id, account.account_number, [f"p{i}" for i in range(20)]
    )
    granted = [a["max_duration_seconds"] for a in answers if a["allowed"]]
    refused = {a["cause"] for a in answers if not a["allowed"]}
    rate = R()
    assert sum(call_cost(rate, seconds) for seconds in granted) <= Decimal(3)
    assert sum(granted) == 300  # and every cent of it can be used
    assert len(granted) == (1 if reserve_seconds == 3600 else 3)
    assert refused == {"NO_SUFFICIENT_FUND"}
    assert _assert_counters_match_live_calls(account.id) == (len(granted), Decimal(3))


def test_parallel_calls_respect_max_channels(app, api_key, call_rates):
    number = make_caller("5000000081", call_rates, "1000", max_channels=3).account_number
    barrier = threading.Barrier(20)

    def one(index: int) -> dict:
        api = Api(app.test_client(), api_key)  # real HTTP requests, one client per thread
        body = {"call_id": f"ch{index}", "account": number, "destination": LONDON}
        barrier.wait()
        with app.app_context():
            return api.authorize(**body).json

    with ThreadPoolExecutor(max_workers=20) as pool:
        answers = list(pool.map(one, range(20)))
    assert sum(a["allowed"] for a in answers) == 3
    assert {a["cause"] for a in answers if not a["allowed"]} == {"CHANNEL_LIMIT"}
    live = select(func.count()).select_from(Call).where(Call.status == CallStatus.LIVE)
    assert db.session.scalar(live) == 3
    account_id = db.session.scalar(select(Account.id).where(Account.account_number == number))
    assert _assert_counters_match_live_calls(account_id)[0] == 3


def test_parallel_calls_and_hangups_keep_the_counters_exact(app, admin, call_rates):
    account = make_caller("5000000083", call_rates, "1000", max_channels=5)
    first = _authorize_together(app, admin.id, account.account_number, [f"a{i}" for i in range(5)])
    assert all(answer["allowed"] for answer in first)
    # Each live call is ended twice at once (the second end changes nothing), next to new calls.
    tasks = [("end", f"a{i}") for i in range(5)] * 2 + [("call", f"b{i}") for i in range(5)]
    barrier = threading.Barrier(len(tasks))

    def hang_up_or_call(task: tuple[str, str]) -> None:
        kind, call_id = task
        barrier.wait()
        with app.app_context():
            if kind == "end":
                end_call(db.session.scalar(select(Call).where(Call.call_id == call_id)), 61, "")
            else:
                owner = db.session.get(Account, admin.id)
                authorize_call(owner, call_id, MOBILE, account_number=account.account_number)

    with ThreadPoolExecutor(max_workers=len(tasks)) as pool:
        list(pool.map(hang_up_or_call, tasks))
    live, _reserved = _assert_counters_match_live_calls(account.id)
    assert len(_usage_entries(account)) == 5
    assert live == db.session.scalar(
        select(func.count()).select_from(Call).where(Call.call_id.like("b%"), Call.status == "live")
    )


def test_parallel_retries_of_one_call_reserve_once(app, admin, call_rates):
    account = make_caller("5000000082", call_rates, "10")
    answers = _authorize_together(app, admin.id, account.account_number, ["dup"] * 8)
    assert all(answer == answers[0] for answer in answers) and answers[0]["allowed"]
    assert db.session.scalar(select(func.count()).select_from(Call)) == 1


# --- Hang-up, reaper ------------------------------------------------------------------------


def _usage_entries(account: Account) -> list[LedgerEntry]:
    return list(
        db.session.scalars(
            select(LedgerEntry).where(
                LedgerEntry.account_id == account.id, LedgerEntry.kind == EntryKind.USAGE
            )
        )
    )


def test_end_rates_the_call_once_and_frees_the_reservation(api, call_rates):
    account = make_caller("5000000090", call_rates, "10")
    api.authorize(call_id="c1", account=account.account_number, destination=LONDON)
    response = api.end("c1", 47)
    assert response.status_code == 200
    assert response.json == {
        "call_id": "c1",
        "status": "ended",
        "duration_seconds": 47,
        "cost": "0.58000",  # 0.10 connect + 48 s (30 s, then 3 x 6 s) at 0.01/s
        "unauthorized": False,
    }
    entries = _usage_entries(account)
    assert [(e.amount, e.description) for e in entries] == [
        (Decimal("-0.58"), f"Call to {LONDON} (47 s)")
    ]
    assert db.session.get(Account, account.id).balance == Decimal("9.42")
    call = db.session.scalar(select(Call))
    assert call.reserved == 0 and call.hangup_cause == "NORMAL_CLEARING"
    assert call.ended_at is not None

    again = api.end("c1", 300, "ANOTHER")
    assert again.status_code == 200 and again.json == response.json
    assert len(_usage_entries(account)) == 1
    assert db.session.get(Account, account.id).balance == Decimal("9.42")
    assert db.session.scalar(select(Call)).hangup_cause == "NORMAL_CLEARING"

    assert _assert_counters_match_live_calls(account.id) == (0, 0)
    # The freed reservation is usable again: 9.42 buys 15 whole minutes.
    next_call = api.authorize(call_id="c2", account=account.account_number, destination=MOBILE)
    assert next_call.json["max_duration_seconds"] == 900


def test_end_never_bills_past_the_authorized_duration(api, call_rates):
    account = make_caller("5000000091", call_rates, "1")
    granted = api.authorize(call_id="c1", account=account.account_number, destination=MOBILE)
    assert granted.json["max_duration_seconds"] == 60
    assert api.end("c1", 500).json["cost"] == "0.60000"
    assert db.session.get(Account, account.id).balance == Decimal("0.4")


def test_an_unanswered_call_costs_nothing(api, call_rates):
    account = make_caller("5000000092", call_rates, "10")
    api.authorize(call_id="c1", account=account.account_number, destination=LONDON)
    assert api.end("c1", 0, "NO_ANSWER").json["cost"] == "0.00000"
    assert _usage_entries(account) == []
    assert db.session.scalar(select(Call.status)) == CallStatus.ENDED


def test_end_of_an_unknown_call_is_404_json_saying_what_to_send(api):
    response = api.end("nope", 10)
    assert response.status_code == 404
    assert set(response.json["fields"]) == {"destination", "account"}
    # A NUL in the id: PostgreSQL would refuse the query.
    response = api.end("no%00pe", 10)
    assert response.status_code == 404 and response.json == {"error": "No such call."}


def test_end_sends_one_low_balance_mail(api, call_rates):
    account = make_caller(
        "5000000093",
        call_rates,
        "3",
        email="low@example.com",
        email_alerts=True,
        low_balance_alert=Decimal("1"),
    )
    for call_id in ("c1", "c2"):
        api.authorize(call_id=call_id, account=account.account_number, destination=MOBILE)
        api.end(call_id, 61)
    mails = db.session.scalars(select(OutboxMessage).where(OutboxMessage.kind == "low_balance"))
    assert [m.recipient for m in mails] == ["low@example.com"]
    assert db.session.get(Account, account.id).balance == Decimal("0.6")


def test_reaper_closes_stale_calls_billed_in_full(app, api, call_rates):
    app.config["CALL_RESERVE_SECONDS"] = 600
    account = make_caller("5000000094", call_rates, "20")
    api.authorize(call_id="old", account=account.account_number, destination=MOBILE)
    api.authorize(call_id="new", account=account.account_number, destination=MOBILE)
    old = db.session.scalar(select(Call).where(Call.call_id == "old"))
    old.started_at = utcnow() - timedelta(seconds=600 + 301)  # past max duration + 300 s grace
    db.session.commit()

    result = app.test_cli_runner().invoke(args=["calls", "reap"])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "Reaped 1 calls."
    db.session.expire_all()
    calls = {c.call_id: c for c in db.session.scalars(select(Call))}
    assert calls["old"].status == CallStatus.REAPED and calls["old"].hangup_cause == "REAPED"
    assert calls["old"].duration_seconds == 600 and calls["old"].cost == Decimal(6)
    assert calls["old"].reserved == 0
    assert calls["new"].status == CallStatus.LIVE and calls["new"].reserved == Decimal(6)
    assert _assert_counters_match_live_calls(account.id) == (1, Decimal(6))
    assert db.session.get(Account, account.id).balance == Decimal(14)
    assert len(_usage_entries(account)) == 1
    # A late end for the reaped call changes nothing; a second reap finds nothing.
    assert api.end("old", 30).json["status"] == "reaped"
    assert app.test_cli_runner().invoke(args=["calls", "reap"]).output.strip() == (
        "Reaped 0 calls."
    )
    assert db.session.get(Account, account.id).balance == Decimal(14)


# --- FreeSWITCH directory -----------------------------------------------------------------


def test_directory_answers_an_active_users_xml(api, call_rates):
    account = make_caller("5000000100", call_rates, "10", first_name='Ann "A&B"')
    device = make_sip_device(account, "ann100", "Sip-Secret-100")
    device.context = "customers"
    db.session.commit()
    response = api.directory("ann100")
    assert response.status_code == 200 and response.mimetype == "text/xml"
    document = ElementTree.fromstring(response.text)  # noqa: S314 (our own answer)
    assert document.get("type") == "freeswitch/xml"
    domain = document.find("section[@name='directory']/domain")
    assert domain.get("name") == "sip.example.com"
    user = domain.find("user")
    assert user.get("id") == "ann100"
    assert user.find("params/param[@name='password']").get("value") == "Sip-Secret-100"
    variables = {v.get("name"): v.get("value") for v in user.findall("variables/variable")}
    assert variables == {
        "accountcode": "5000000100",
        "user_context": "customers",
        "effective_caller_id_name": 'Ann "A&B"',
        "effective_caller_id_number": "5000000100",
    }


@pytest.mark.parametrize("case", ["unknown", "inactive_device", "inactive_account", "expired"])
def test_directory_says_not_found_otherwise(api, call_rates, case):
    account = make_caller("5000000101", call_rates, "10")
    device = make_sip_device(account, "bob101", "Sip-Secret-101")
    if case == "inactive_device":
        device.status = Status.INACTIVE
    elif case == "inactive_account":
        account.status = Status.INACTIVE
    elif case == "expired":
        account.expiry_date = utcnow() - timedelta(days=1)
    db.session.commit()
    response = api.directory("nobody" if case == "unknown" else "bob101")
    assert response.status_code == 200 and response.mimetype == "text/xml"
    assert '<result status="not found"/>' in response.text
    assert "Sip-Secret-101" not in response.text


def test_directory_says_not_found_for_control_characters(api, customer_device):
    username = customer_device.username
    for user, domain in ((username + "\x00", "sip.example.com"), (username, "sip\x01.example")):
        response = api.directory(user, domain)
        assert response.status_code == 200, (user, domain)
        assert '<result status="not found"/>' in response.text
    assert '<user id="' in api.directory(username).text  # the same user, asked properly


def test_directory_ignores_other_sections(api, customer_device):
    response = api.post(
        "/api/v1/freeswitch/directory",
        data={"section": "dialplan", "user": customer_device.username},
    )
    assert '<result status="not found"/>' in response.text


# --- Bad requests: 400 JSON, nothing written ---------------------------------------------


def _no_calls() -> bool:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(Call)) == 0


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"call_id", "destination", "account"}),
        ({"call_id": 5, "destination": 44, "account": 1}, {"call_id", "destination", "account"}),
        ({"call_id": "c1", "destination": ["44"], "account": "5000000110"}, {"destination"}),
        ({"call_id": "c1", "destination": "44", "account": None}, {"account"}),
        ({"call_id": "c1", "destination": "4" * 100_000, "account": "5000000110"}, {"destination"}),
        ({"call_id": "c1", "destination": "4" * 33, "account": "5000000110"}, {"destination"}),
        ({"call_id": "c1", "destination": "44 79", "account": "5000000110"}, {"destination"}),
        ({"call_id": "x" * 129, "destination": "44", "account": "5000000110"}, {"call_id"}),
        (
            {"call_id": "c1", "destination": "44", "account": "5000000110", "sip_username": "u"},
            {"account"},
        ),
        (
            {"call_id": "c1", "destination": "44", "account": "5000000110", "max": 1},
            {"max"},
        ),
        # NUL fits no database column (PostgreSQL refuses it): a field error, not a 500.
        ({"call_id": "c\x001", "destination": "44", "account": "5000000110"}, {"call_id"}),
        ({"call_id": "c1", "destination": "44", "account": "500000\x000110"}, {"account"}),
        ({"call_id": "c1", "destination": "44", "sip_username": "u\x00"}, {"sip_username"}),
        # JSON can carry a lone UTF-16 surrogate ("\\ud800"), which no driver can encode.
        ({"call_id": "c\ud800", "destination": "44", "account": "5000000110"}, {"call_id"}),
        # Taken as sent: surrounding spaces or a trailing newline are not a number.
        ({"call_id": "c1", "destination": " 44", "account": "5000000110"}, {"destination"}),
        ({"call_id": "c1", "destination": "44\n", "account": "5000000110"}, {"destination"}),
    ],
)
def test_invalid_authorizations_are_400_with_field_errors(api, call_rates, body, fields):
    make_caller("5000000110", call_rates, "10")
    response = api.post("/api/v1/calls/authorize", json=body)
    assert response.status_code == 400 and response.is_json
    assert response.json["error"] == "Invalid request."
    assert set(response.json["fields"]) == fields
    assert _no_calls()


@pytest.mark.parametrize(
    "kwargs",
    [
        {"data": "{not json", "content_type": "application/json"},
        {"data": "call_id=c1", "content_type": "application/x-www-form-urlencoded"},
        {"json": ["call_id", "c1"]},
        {"json": "c1"},
    ],
)
def test_non_objects_are_400_json(api, kwargs):
    response = api.post("/api/v1/calls/authorize", **kwargs)
    assert response.status_code == 400 and response.is_json
    assert "JSON object" in response.json["error"]
    assert _no_calls()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"duration_seconds": "10"}, "duration_seconds"),
        ({"duration_seconds": True}, "duration_seconds"),
        ({"duration_seconds": 1.5}, "duration_seconds"),
        ({"duration_seconds": -1}, "duration_seconds"),
        ({"duration_seconds": 86401}, "duration_seconds"),
        ({"duration_seconds": 10, "hangup_cause": 17}, "hangup_cause"),
        ({"duration_seconds": 10, "hangup_cause": "X" * 41}, "hangup_cause"),
        ({"duration_seconds": 10, "hangup_cause": "NORMAL\x00"}, "hangup_cause"),
        ({"duration_seconds": 10, "hangup_cause": "NORMAL\udc00"}, "hangup_cause"),
        ({"duration_seconds": 10, "billsec": 10}, "billsec"),
    ],
)
def test_invalid_ends_are_400_and_change_nothing(api, call_rates, body, field):
    account = make_caller("5000000111", call_rates, "10")
    api.authorize(call_id="c1", account=account.account_number, destination=MOBILE)
    response = api.post("/api/v1/calls/c1/end", json=body)
    assert response.status_code == 400 and field in response.json["fields"]
    call = db.session.scalar(select(Call))
    assert call.status == CallStatus.LIVE and call.reserved == Decimal("9.6")
    assert _usage_entries(account) == []


def test_api_errors_are_json_not_html(api):
    response = api.post("/api/v1/calls/authorize", data="x" * 100, content_type="text/plain")
    assert response.status_code == 400 and response.is_json


def test_the_lane_is_the_only_handler_of_its_path(app, client, api_key):
    url = "/api/v1/calls/authorize"
    for method in ("GET", "PUT", "DELETE", "PATCH"):
        response = client.open(url, method=method, headers={"Authorization": f"Bearer {api_key}"})
        assert response.status_code == 405 and response.headers["Allow"] == "POST"
        assert response.json == {"error": HTTP_ERRORS[405][1]}
    # Past the lane, Flask has no route of its own for the path: nothing answers twice.
    past_the_lane = WerkzeugClient(app.wsgi_app.wsgi_app).post(url, json={})
    assert past_the_lane.status_code == 404
    # The OpenAPI document still describes it, as a POST.
    spec = client.get("/api/v1/openapi.json").json
    assert list(spec["paths"]["/api/v1/calls/authorize"]) == ["post"]
    assert _no_calls()


def test_a_failure_in_the_lane_is_a_json_500_and_writes_nothing(
    app, client, api_key, call_rates, monkeypatch, caplog
):
    account = make_caller("5000000114", call_rates, "10")
    app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production, not as in tests

    def broken(*args, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(lane_module, "authorize_call", broken)
    response = Api(client, api_key).authorize(
        call_id="c1", account=account.account_number, destination=LONDON
    )
    assert response.status_code == 500 and response.is_json and "error" in response.json
    assert "the database went away" not in response.text
    assert "the database went away" in caplog.text  # in the log, for the operator
    assert _no_calls()
    assert db.session.get(Account, account.id).live_calls == 0


def test_the_lane_takes_the_client_address_from_a_trusted_proxy(database_url, app, admin):
    _row, key = create_key(admin, "fs-behind-nginx", "192.0.2.7")
    proxied = make_test_app(database_url, PROXY_COUNT=1)
    try:
        client = proxied.test_client()
        headers = {"Authorization": f"Bearer {key}"}
        url = "/api/v1/calls/authorize"
        assert client.post(url, json={}, headers=headers).status_code == 403  # from 127.0.0.1
        forwarded = {**headers, "X-Forwarded-For": "192.0.2.7"}
        response = client.post(url, json={}, headers=forwarded)
        assert response.status_code == 400  # the key is accepted; the empty body is not
    finally:
        with proxied.app_context():
            for engine in db.engines.values():
                engine.dispose()


# --- The "Test a call" panel and call records ---------------------------------------------


def test_test_a_call_explains_without_writing(as_admin, call_rates):
    account = make_caller("5000000120", call_rates, "10", max_channels=2)
    url = f"/accounts/{account.id}/test-call?destination={LONDON}"
    response = as_admin.get(url, headers={"HX-Request": "true"})
    assert response.status_code == 200 and "<html" not in response.text
    text = response.text
    assert f"Allowed: up to 990 s to {LONDON} at USD\xa00.60/min (prefix 4420)." in text
    for figure in (
        "available funds: USD\xa010.00",
        "needed to start: USD\xa00.40",
        "max channels: 2",
    ):
        assert figure in text, figure
    assert "FAILED" not in text
    assert _no_calls()
    fresh = db.session.get(Account, account.id)
    assert fresh.first_used is None and fresh.balance == Decimal(10)


def test_test_a_call_shows_the_refusal(as_admin, call_rates):
    account = make_caller("5000000121", call_rates, "0.10")
    response = as_admin.get(f"/accounts/{account.id}/test-call?destination={MOBILE}")
    assert response.status_code == 200 and "<html" in response.text  # a page without htmx
    assert "Refused: NO_SUFFICIENT_FUND." in response.text
    assert "FAILED" in response.text and "needed to start: USD\xa00.60" in response.text
    assert _no_calls()


def test_test_a_call_shows_figures_in_words_not_python_values(as_admin, call_rates):
    account = make_caller("5000000124", None, "10", expiry_date=datetime(2031, 5, 17, 12, 0))
    response = as_admin.get(f"/accounts/{account.id}/test-call?destination={LONDON}")
    text = response.text
    assert "deleted: No" in text and "rate group: none" in text
    assert "expiry date: 17 May 2031, 12:00:00" in text
    other = make_caller("5000000125", call_rates, "10")
    text += as_admin.get(f"/accounts/{other.id}/test-call?destination={LONDON}").text
    rate = "rate: prefix 4420 (UK London), connect USD\xa00.10, USD\xa00.60/min"
    assert f"{rate}, increments 30 s then 6 s" in text
    for repr_ in ("False", "True", "None", "{'", "2031-05-17T"):
        assert repr_ not in text, repr_


def test_test_a_call_refuses_a_bad_number(as_admin, call_rates):
    account = make_caller("5000000122", call_rates, "10")
    for bad in ("44abc", "4" * 33):
        response = as_admin.get(f"/accounts/{account.id}/test-call?destination={bad}")
        assert "Enter 1 to 32 digits" in response.text
    assert _no_calls()


def test_the_account_page_offers_the_panel(as_admin, call_rates):
    account = make_caller("5000000123", call_rates, "10")
    page = as_admin.get(f"/accounts/{account.id}").text
    assert "Test a call" in page and f"/accounts/{account.id}/test-call" in page


def test_call_records_on_the_account_page_and_in_the_customer_portal(
    app, as_admin, api, call_rates
):
    account = make_caller("5000000124", call_rates, "10")
    api.authorize(call_id="c1", account=account.account_number, destination=LONDON)
    api.end("c1", 47)
    api.authorize(call_id="c2", account=account.account_number, destination="33")  # refused
    row = re.compile(
        rf"{LONDON}</td>\s*<td class=\"num\">47 s</td>\s*<td class=\"num\">USD\xa00\.58<"
    )
    assert row.search(as_admin.get(f"/accounts/{account.id}").text)
    customer = Browser(app.test_client())
    customer.login(account.account_number)
    page = customer.get("/my/").text
    assert row.search(page) and ">33<" not in page


def test_unknown_api_routes_and_methods_answer_json(client):
    for response in (client.get("/api/v1/nothing-here"), client.get("/api/v1/calls/authorize")):
        assert response.status_code in (401, 404, 405)
        assert response.is_json and "error" in response.get_json()
