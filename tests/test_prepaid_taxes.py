"""One tax rule for both account types: a prepaid call's debit carries its percentage taxes."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from portal import mail as portal_mail
from portal.billing.run import run_billing
from portal.calls.service import try_call
from portal.extensions import db
from portal.models import (
    Account,
    AccountType,
    BillingSchedule,
    Call,
    CallStatus,
    Document,
    DocumentKind,
    DocumentSequence,
    EntryKind,
    LedgerEntry,
    OutboxMessage,
    Tax,
    utcnow,
)
from portal.rules.calls import (
    billable_seconds,
    call_taxes,
    charged_cost,
    max_duration,
    minimum_to_call,
    taxed_charge,
)
from portal.rules.rating import RateRow
from portal.rules.tax import percentage_taxes
from tests.conftest import make_caller

MOBILE = "447911123456"  # the 44 rate of call_rates: 0.60/min in whole minutes


# --- Pure rules -------------------------------------------------------------------------


def test_each_percentage_tax_is_rounded_half_up_on_its_own():
    assert percentage_taxes(Decimal("2.40"), [Decimal(20), Decimal("1.5")]) == [
        Decimal("0.48"),
        Decimal("0.04"),  # 0.036
    ]
    assert percentage_taxes(Decimal("0.30"), [Decimal("2.5")]) == [Decimal("0.01")]  # 0.0075
    assert percentage_taxes(Decimal("0.20"), [Decimal("2.5")]) == [Decimal("0.01")]  # 0.005 up
    assert percentage_taxes(Decimal("0.10"), [Decimal("2.5")]) == [Decimal("0.00")]  # 0.0025
    assert percentage_taxes(Decimal(13), [Decimal(10)], places=0) == [Decimal(1)]  # 1.3 JPY
    with pytest.raises(TypeError):
        percentage_taxes(2.4, [Decimal(20)])


def test_a_taxed_charge_is_the_rounded_cost_plus_each_rounded_tax():
    rate = RateRow("44", "UK", Decimal(0), Decimal("0.6"), 60, 60)
    rates = [Decimal(20), Decimal("1.5")]
    assert charged_cost(rate, 240, "USD") == Decimal("2.40")
    assert call_taxes(Decimal("2.40"), rates, "USD") == [Decimal("0.48"), Decimal("0.04")]
    assert taxed_charge(rate, 240, "USD", rates) == Decimal("2.92")
    assert taxed_charge(rate, 240, "USD") == Decimal("2.40")  # no taxes: the charge
    assert minimum_to_call(rate, "USD", rates) == Decimal("0.73")  # 0.60 + 0.12 + 0.009
    # 3.00 untaxed buys 5 minutes; taxed, 5 minutes cost 3.65 and 4 cost 2.92.
    assert max_duration(rate, Decimal(3), 3600, "USD") == 300
    assert max_duration(rate, Decimal(3), 3600, "USD", rates) == 240
    assert max_duration(rate, Decimal("0.72"), 3600, "USD", rates) == 0
    assert max_duration(rate, Decimal("0.73"), 3600, "USD", rates) == 60


def test_jpy_taxes_round_to_whole_yen_at_the_boundary():
    rate = RateRow("81", "Japan", Decimal("2.25"), Decimal(15), 1, 1)
    rates = [Decimal(10)]
    # 36 s: 11.25 -> 11, tax 1.1 -> 1: 12. 37 s: 11.5 -> 12, tax 1.2 -> 1: 13.
    assert taxed_charge(rate, 36, "JPY", rates) == Decimal(12)
    assert taxed_charge(rate, 37, "JPY", rates) == Decimal(13)
    assert max_duration(rate, Decimal(12), 3600, "JPY", rates) == 36
    assert max_duration(rate, Decimal(13), 3600, "JPY", rates) == 40  # 12.25 -> 12 + 1
    assert taxed_charge(rate, 41, "JPY", rates) == Decimal(14)  # 12.5 -> 13, + 1.3 -> 1
    assert minimum_to_call(rate, "JPY", rates) == Decimal(3)  # 2.5 -> 3, tax 0.3 -> 0


@pytest.mark.parametrize("currency", ["USD", "JPY", "KWD"])
@pytest.mark.parametrize(
    ("connect", "per_minute", "initial", "increment"),
    [("0", "0.6", 60, 60), ("0.1", "0.6", 30, 6), ("2.25", "15", 1, 1), ("0", "0.00731", 1, 1)],
)
@pytest.mark.parametrize(
    "rates", [[Decimal(20), Decimal("1.5")], [Decimal("7.7")], [Decimal(5)] * 3]
)
def test_max_duration_is_the_longest_call_whose_taxed_charge_fits(
    currency, connect, per_minute, initial, increment, rates
):
    rate = RateRow("1", "Test", Decimal(connect), Decimal(per_minute), initial, increment)
    cap = 7200
    for funds in ("0.5", "0.73", "1", "3", "12", "13", "17.77", "100"):
        funds = Decimal(funds)
        seconds = max_duration(rate, funds, cap, currency, rates)
        if seconds == 0:
            assert funds < minimum_to_call(rate, currency, rates)
            continue
        assert taxed_charge(rate, seconds, currency, rates) <= funds
        if seconds < cap:  # one more increment would not fit
            longer = billable_seconds(rate, seconds) + max(increment, 1)
            assert taxed_charge(rate, min(longer, cap), currency, rates) > funds


# --- Calls ------------------------------------------------------------------------------


@pytest.fixture
def three_taxes(app):
    """Two percentage taxes and one fixed-amount tax (the admins')."""
    taxes = [
        Tax(name="VAT", rate=Decimal(20), fixed_amount=Decimal(0), priority=1),
        Tax(name="Levy", rate=Decimal("1.5"), fixed_amount=Decimal(0), priority=2),
        Tax(name="Stamp", rate=Decimal(0), fixed_amount=Decimal("0.3"), priority=3),
    ]
    db.session.add_all(taxes)
    db.session.commit()
    return taxes


def taxed_caller(number, call_rates, taxes, funds="3", **fields) -> Account:
    """A prepaid customer with these taxes, billed daily, funded by a payment."""
    fields.setdefault("billing_schedule", BillingSchedule.DAILY)
    account = make_caller(number, call_rates, funds, **fields)
    account.taxes = list(taxes)
    db.session.commit()
    return account


def entries_of(account_id: int, *kinds: EntryKind) -> list[LedgerEntry]:
    """The account's ledger entries of these kinds, oldest first."""
    return list(
        db.session.scalars(
            select(LedgerEntry)
            .where(LedgerEntry.account_id == account_id, LedgerEntry.kind.in_(kinds))
            .order_by(LedgerEntry.id)
        )
    )


def ledger_matches_balance(account_id: int) -> Decimal:
    """The account's balance, after checking it is the sum of its ledger."""
    db.session.expire_all()
    balance = db.session.get(Account, account_id).balance
    total = db.session.scalar(
        select(func.sum(LedgerEntry.amount)).where(LedgerEntry.account_id == account_id)
    )
    assert total == balance
    return balance


def test_a_prepaid_call_is_debited_with_its_percentage_taxes(api, call_rates, three_taxes):
    account = taxed_caller("5000000301", call_rates, three_taxes)
    granted = api.authorize(call_id="t1", account=account.account_number, destination=MOBILE)
    # 3.00 of funds: untaxed 300 s, taxed only 240 s (2.40 + 0.48 + 0.04 = 2.92).
    assert granted.json["allowed"] is True and granted.json["max_duration_seconds"] == 240
    assert db.session.scalar(select(Call.reserved)) == Decimal("2.92")

    ended = api.end("t1", 240)
    assert ended.status_code == 200 and ended.json["cost"] == "2.40000"
    usage = entries_of(account.id, EntryKind.USAGE)
    taxes = entries_of(account.id, EntryKind.TAX)
    assert [(e.amount, e.description) for e in usage] == [
        (Decimal("-2.40"), f"Call to {MOBILE} (240 s)")
    ]
    # One entry per percentage tax, none for the fixed one (it is per document).
    assert [(e.amount, e.description, e.tax_line) for e in taxes] == [
        (Decimal("-0.48"), f"VAT (20%): Call to {MOBILE} (240 s)", "VAT (20%)"),
        (Decimal("-0.04"), f"Levy (1.5%): Call to {MOBILE} (240 s)", "Levy (1.5%)"),
    ]
    assert ledger_matches_balance(account.id) == Decimal("0.08")  # never below zero
    # 0.08 does not buy a taxed minute (0.73) any more.
    again = api.authorize(call_id="t2", account=account.account_number, destination=MOBILE)
    assert again.json["cause"] == "NO_SUFFICIENT_FUND"


def test_funds_for_the_untaxed_first_minute_are_not_enough_taxed(api, call_rates, three_taxes):
    account = taxed_caller("5000000302", call_rates, three_taxes, funds="0.72")
    response = api.authorize(
        call_id="t1", account=account.account_number, destination=MOBILE, explain=True
    )
    assert response.json["allowed"] is False and response.json["cause"] == "NO_SUFFICIENT_FUND"
    funds = {check["check"]: check for check in response.json["checks"]}["funds"]
    assert funds["passed"] is False
    assert Decimal(funds["needed_to_start"]) == Decimal("0.73")
    assert funds["tax_rates_percent"] == ["20", "1.5"]
    assert Decimal(funds["tax_in_needed"]) == Decimal("0.13")
    assert ledger_matches_balance(account.id) == Decimal("0.72")


def test_a_call_shorter_than_its_reservation_pays_its_own_taxes(api, call_rates, three_taxes):
    account = taxed_caller("5000000303", call_rates, three_taxes, funds="10")
    api.authorize(call_id="t1", account=account.account_number, destination=MOBILE)
    assert api.end("t1", 61).json["cost"] == "1.20000"  # 2 minutes
    taxes = [e.amount for e in entries_of(account.id, EntryKind.TAX)]
    assert taxes == [Decimal("-0.24"), Decimal("-0.02")]  # 0.018 rounds up
    assert ledger_matches_balance(account.id) == Decimal("8.54")
    # Unanswered: no usage, no tax.
    api.authorize(call_id="t2", account=account.account_number, destination=MOBILE)
    assert api.end("t2", 0, "NO_ANSWER").json["cost"] == "0.00000"
    assert len(entries_of(account.id, EntryKind.TAX)) == 2
    assert ledger_matches_balance(account.id) == Decimal("8.54")


def test_the_reaper_posts_the_taxes_too(app, api, call_rates, three_taxes):
    app.config["CALL_RESERVE_SECONDS"] = 600
    account = taxed_caller("5000000304", call_rates, three_taxes, funds="20")
    granted = api.authorize(call_id="old", account=account.account_number, destination=MOBILE)
    assert granted.json["max_duration_seconds"] == 600  # 6.00 + 1.20 + 0.09 = 7.29 fits
    call = db.session.scalar(select(Call).where(Call.call_id == "old"))
    assert call.reserved == Decimal("7.29")
    call.started_at = utcnow() - timedelta(seconds=600 + 301)
    db.session.commit()
    assert app.test_cli_runner().invoke(args=["calls", "reap"]).output.strip() == "Reaped 1 calls."
    db.session.expire_all()
    assert db.session.get(Call, call.id).status == CallStatus.REAPED
    assert [e.amount for e in entries_of(account.id, EntryKind.USAGE, EntryKind.TAX)] == [
        Decimal("-6.00"),
        Decimal("-1.20"),
        Decimal("-0.09"),
    ]
    assert ledger_matches_balance(account.id) == Decimal("12.71")
    assert db.session.get(Account, account.id).reserved == 0


def test_a_prepaid_account_without_percentage_taxes_calls_as_before(api, call_rates, vat):
    stamp = Tax(name="Stamp", rate=Decimal(0), fixed_amount=Decimal("0.3"), priority=1)
    db.session.add(stamp)
    db.session.commit()
    account = taxed_caller("5000000305", call_rates, [stamp], funds="3")
    granted = api.authorize(call_id="t1", account=account.account_number, destination=MOBILE)
    assert granted.json["max_duration_seconds"] == 300
    api.end("t1", 300)
    assert entries_of(account.id, EntryKind.TAX) == []
    assert ledger_matches_balance(account.id) == Decimal(0)


def test_postpaid_usage_stays_untaxed_until_the_invoice(api, call_rates, three_taxes):
    account = taxed_caller(
        "5000000306",
        call_rates,
        three_taxes,
        funds="0",
        account_type=AccountType.POSTPAID,
        credit_limit=Decimal(3),
    )
    granted = api.authorize(call_id="t1", account=account.account_number, destination=MOBILE)
    assert granted.json["max_duration_seconds"] == 300  # the credit limit, untaxed
    api.end("t1", 300)
    assert entries_of(account.id, EntryKind.TAX) == []
    assert ledger_matches_balance(account.id) == Decimal(3)  # owed
    report = run_billing(day=date.today() + timedelta(days=1))
    assert (report.invoiced, report.statements) == (1, 0)
    (invoice,) = db.session.scalars(select(Document).where(Document.account_id == account.id))
    assert invoice.kind == DocumentKind.INVOICE
    assert [(line.description, line.amount) for line in invoice.lines] == [
        ("Calls (1)", Decimal("3.00")),
        ("VAT (20% + 0)", Decimal("0.60")),
        ("Levy (1.5% + 0)", Decimal("0.05")),  # 0.045 up
        ("Stamp (0% + 0.3)", Decimal("0.30")),
    ]


def test_a_dry_run_authorization_shows_the_taxed_figures(app, admin, call_rates, three_taxes):
    account = taxed_caller("5000000307", call_rates, three_taxes, funds="3")
    decision = try_call(admin, MOBILE, account.account_number)
    assert decision.allowed and decision.max_duration_seconds == 240
    assert db.session.scalar(select(func.count()).select_from(Call)) == 0


# --- The periodic statement -------------------------------------------------------------


def _statements(account_id: int) -> list[Document]:
    """The account's receipts that carry a billing date: its statements."""
    return list(
        db.session.scalars(
            select(Document)
            .where(
                Document.account_id == account_id,
                Document.kind == DocumentKind.RECEIPT,
                Document.billing_date.is_not(None),
            )
            .order_by(Document.id)
        )
    )


def _call(api, account, call_id: str, seconds: int) -> None:
    response = api.authorize(call_id=call_id, account=account.account_number, destination=MOBILE)
    assert response.json["allowed"] is True
    assert api.end(call_id, seconds).status_code == 200


def test_the_statement_lists_calls_their_taxes_and_the_fixed_tax_once(
    app, api, call_rates, three_taxes
):
    account = taxed_caller(
        "5000000310", call_rates, three_taxes, funds="20", email="prepaid@example.com"
    )
    _call(api, account, "s1", 240)  # 2.40, VAT 0.48, Levy 0.04 (0.036)
    _call(api, account, "s2", 61)  # 1.20, VAT 0.24, Levy 0.02 (0.018)
    assert ledger_matches_balance(account.id) == Decimal("15.62")
    tomorrow = date.today() + timedelta(days=1)

    dry = run_billing(day=tomorrow, dry_run=True)
    assert (dry.statements, dry.invoiced) == (1, 0)
    assert _statements(account.id) == []

    report = run_billing(day=tomorrow)
    assert (report.statements, report.invoiced, report.failed) == (1, 0, [])
    (statement,) = _statements(account.id)
    assert statement.billing_date == tomorrow and statement.due_date is None
    assert [(line.description, line.amount, line.is_tax) for line in statement.lines] == [
        ("Calls (2)", Decimal("3.60"), False),
        ("VAT (20%)", Decimal("0.72"), True),
        ("Levy (1.5%)", Decimal("0.06"), True),
        ("Stamp (fixed 0.3)", Decimal("0.30"), True),
    ]
    assert (statement.subtotal, statement.tax_total, statement.total) == (
        Decimal("3.60"),
        Decimal("1.08"),
        Decimal("4.68"),
    )
    assert statement.display_number == "R-000002"  # after the payment's receipt
    # The fixed tax is posted now, once; every call entry now names the statement.
    stamp = entries_of(account.id, EntryKind.TAX)[-1]
    assert (stamp.amount, stamp.description, stamp.document_id) == (
        Decimal("-0.30"),
        "Stamp (fixed 0.3)",
        statement.id,
    )
    documented = entries_of(account.id, EntryKind.USAGE, EntryKind.TAX)
    assert {e.document_id for e in documented} == {statement.id}
    assert ledger_matches_balance(account.id) == Decimal("15.32")
    # The statement's total is the ledger movement it documents.
    assert -sum(e.amount for e in documented) == statement.total
    mail = db.session.scalar(
        select(OutboxMessage)
        .where(OutboxMessage.kind == "receipt")
        .order_by(OutboxMessage.id.desc())
    )
    subject, body = portal_mail.text_of(mail)  # what the sender will write and send
    assert mail.recipient == "prepaid@example.com" and "R-000002" in subject
    assert "VAT (20%): USD\xa00.72" in body
    assert "Stamp (fixed 0.3): USD\xa00.30" in body
    assert "Available funds now: USD\xa015.32" in body

    # Run again: nothing twice. A later call waits for the next statement.
    _call(api, account, "s3", 60)
    assert run_billing(day=tomorrow).statements == 0
    assert len(_statements(account.id)) == 1
    assert [e.document_id for e in entries_of(account.id, EntryKind.USAGE)][-1] is None


def test_statements_are_numbered_without_gaps_per_issuer(api, call_rates, three_taxes):
    accounts = [
        taxed_caller(f"50000003{index}", call_rates, three_taxes, funds="5")
        for index in range(20, 24)
    ]
    for index, account in enumerate(accounts[:3]):
        _call(api, account, f"n{index}", 60)
    # The fourth has no calls: no statement. Payments took receipts 1 to 4.
    report = run_billing(day=date.today() + timedelta(days=1), chunk_size=2)
    assert report.statements == 3 and report.chunks == 2
    numbers = sorted(
        db.session.scalars(select(Document.number).where(Document.kind == DocumentKind.RECEIPT))
    )
    assert numbers == list(range(1, 8))
    assert _statements(accounts[3].id) == []
    sequence = db.session.scalar(
        select(DocumentSequence.next_number).where(
            DocumentSequence.issuer_key == 0, DocumentSequence.kind == DocumentKind.RECEIPT
        )
    )
    assert sequence == 8


def test_a_statement_waits_for_the_billing_day(api, call_rates, three_taxes):
    account = taxed_caller(
        "5000000330",
        call_rates,
        three_taxes,
        funds="5",
        billing_schedule=BillingSchedule.MONTHLY,
        billing_day=1,
    )
    _call(api, account, "w1", 60)
    today = date.today()
    first_of_next = (today.replace(day=28) + timedelta(days=4)).replace(day=1)
    # This month's billing date (the 1st) is before the call: its cut-off leaves it out.
    assert run_billing(day=today).statements == 0
    assert run_billing(day=first_of_next).statements == 1
    (statement,) = _statements(account.id)
    assert statement.billing_date == first_of_next


def test_the_customer_sees_the_statement_and_its_print_view(api, call_rates, three_taxes, user):
    account = taxed_caller("5000000340", call_rates, three_taxes, funds="5")
    _call(api, account, "p1", 60)
    run_billing(day=date.today() + timedelta(days=1))
    (statement,) = _statements(account.id)
    user.login(account.account_number)
    dashboard = user.get("/my/").get_data(as_text=True)
    assert statement.display_number in dashboard
    page = user.get(f"/documents/{statement.id}")
    assert page.status_code == 200
    text = page.get_data(as_text=True)
    for expected in ("Calls (1)", "VAT (20%)", "Levy (1.5%)", "Stamp (fixed 0.3)", "1.03"):
        assert expected in text


def test_staff_see_the_taxed_figures_and_the_statement_on_the_account_page(
    api, as_admin, call_rates, three_taxes
):
    account = taxed_caller("5000000350", call_rates, three_taxes, funds="5")
    panel = as_admin.get(f"/accounts/{account.id}/test-call?destination={MOBILE}")
    text = panel.get_data(as_text=True).replace("\xa0", " ")
    assert "tax rates percent: 20, 1.5" in text
    assert "needed to start: USD 0.73" in text and "tax in needed: USD 0.13" in text
    assert db.session.scalar(select(func.count()).select_from(Call)) == 0  # nothing written
    _call(api, account, "a1", 60)
    run_billing(day=date.today() + timedelta(days=1))
    (statement,) = _statements(account.id)
    page = as_admin.get(f"/accounts/{account.id}").get_data(as_text=True)
    assert f'href="/documents/{statement.id}"' in page and statement.display_number in page
