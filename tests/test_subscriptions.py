"""Subscriptions: charged once per period by the billing run, pro-rated, cancelled, taxed."""

from datetime import date, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from portal.billing.run import run_billing
from portal.extensions import db
from portal.models import (
    AccountType,
    AuditEntry,
    BillingSchedule,
    Document,
    DocumentKind,
    EntryKind,
    LedgerEntry,
    Product,
    ProductPeriod,
    Role,
    Subscription,
    SubscriptionCharge,
)
from portal.products.subscriptions import cancel, subscribe
from portal.rules.subscriptions import due_periods, prorated, unused_credit
from portal.transactions import ValidationFailed
from tests.conftest import make_account


def make_product(period=ProductPeriod.MONTHLY, price="30", setup="0", **fields) -> Product:
    """An active admins' product."""
    product = Product(
        name=fields.pop("name", f"Plan {period.value}"),
        period=period,
        price=Decimal(price),
        setup_fee=Decimal(setup),
        currency=fields.pop("currency", "USD"),
        **fields,
    )
    db.session.add(product)
    db.session.commit()
    return product


def subscriber(number: str, zone: str = "UTC", **fields):
    """A customer of the admins in `zone`."""
    return make_account(Role.CUSTOMER, number, timezone=zone, **fields)


def entries(account, kind=EntryKind.SUBSCRIPTION) -> list[LedgerEntry]:
    """The account's ledger entries of `kind`, oldest first."""
    return list(
        db.session.scalars(
            select(LedgerEntry)
            .where(LedgerEntry.account_id == account.id, LedgerEntry.kind == kind)
            .order_by(LedgerEntry.id)
        )
    )


def charges(subscription) -> list[SubscriptionCharge]:
    """The subscription's charged periods."""
    return list(
        db.session.scalars(
            select(SubscriptionCharge)
            .where(SubscriptionCharge.subscription_id == subscription.id)
            .order_by(SubscriptionCharge.period_start)
        )
    )


def at(text: str) -> datetime:
    """A naive UTC time."""
    return datetime.fromisoformat(text)


# --- pure rules ---


def test_prorated_first_month_to_the_cent():
    # 30.00 from the 10th of a 31-day month: 22 days left (10th included) / 31.
    assert prorated(Decimal("30"), "monthly", date(2026, 1, 10), "USD") == Decimal("21.29")
    assert prorated(Decimal("30"), "monthly", date(2026, 2, 15), "USD") == Decimal("15.00")
    assert prorated(Decimal("30"), "monthly", date(2026, 3, 1), "USD") == Decimal("30.00")
    assert prorated(Decimal("1000"), "monthly", date(2026, 4, 30), "JPY") == Decimal("33")


def test_due_periods_catch_up_once_each_and_stop_at_the_end():
    start = date(2026, 1, 20)
    assert due_periods("monthly", start, None, date(2026, 1, 19), None) == []
    assert due_periods("monthly", start, None, date(2026, 3, 2), None) == [
        (date(2026, 1, 20), date(2026, 1, 31)),
        (date(2026, 2, 1), date(2026, 2, 28)),
        (date(2026, 3, 1), date(2026, 3, 31)),
    ]
    assert due_periods("monthly", start, None, date(2026, 3, 2), date(2026, 2, 1)) == [
        (date(2026, 3, 1), date(2026, 3, 31))
    ]
    assert due_periods("monthly", start, date(2026, 2, 28), date(2026, 3, 2), None)[-1] == (
        date(2026, 2, 1),
        date(2026, 2, 28),
    )
    assert due_periods("one_time", start, None, date(2026, 5, 1), None) == [(start, None)]
    assert due_periods("one_time", start, None, date(2026, 5, 1), start) == []
    assert len(due_periods("daily", start, None, date(2026, 1, 22), None)) == 3


def test_unused_credit_counts_the_days_after_the_cancel_day():
    # 31.00 for January, cancelled on the 21st: 10 days (22nd..31st) of 31 come back.
    credit = unused_credit(
        Decimal("31"), date(2026, 1, 1), date(2026, 1, 31), date(2026, 1, 21), "USD"
    )
    assert credit == Decimal("10.00")
    assert (
        unused_credit(Decimal("31"), date(2026, 1, 1), date(2026, 1, 31), date(2026, 1, 31), "USD")
        == 0
    )
    assert unused_credit(Decimal("5"), date(2026, 1, 1), None, date(2026, 1, 1), "USD") == 0


# --- the billing run ---


def test_monthly_subscription_charged_once_per_month_pro_rated_with_setup_fee(app):
    account = subscriber("5000000001", account_type=AccountType.POSTPAID)
    product = make_product(price="30", setup="5", name="Fibre")
    subscription = subscribe(None, account, {"product_id": product.id, "start_date": "2026-01-10"})

    run_billing(now_utc=at("2026-01-10 12:00"))
    run_billing(now_utc=at("2026-01-20 12:00"))  # the same period: nothing more
    assert [(c.period_start, c.amount, c.setup_fee) for c in charges(subscription)] == [
        (date(2026, 1, 10), Decimal("21.29"), Decimal("5.00"))
    ]
    texts = [(e.description, e.amount) for e in entries(account)]
    assert texts == [
        ("Fibre, 2026-01-10 to 2026-01-31", Decimal("21.29")),
        ("Fibre: setup fee", Decimal("5.00")),
    ]

    # A run missed in February: March's run charges February and March once each.
    report = run_billing(now_utc=at("2026-03-03 12:00"))
    assert report.subscription_charges == 2
    run_billing(now_utc=at("2026-03-03 13:00"))
    assert [c.period_start for c in charges(subscription)] == [
        date(2026, 1, 10),
        date(2026, 2, 1),
        date(2026, 3, 1),
    ]
    db.session.refresh(account)
    assert account.balance == Decimal("21.29") + 5 + 30 + 30


def test_daily_subscription_charged_per_local_day_around_midnight(app):
    # 11:30 UTC on 2 June is 23:30 on the 2nd in Auckland (UTC+12) and 04:30 on the 2nd in
    # Los Angeles (UTC-7); 12:30 UTC is already the 3rd in Auckland, still the 2nd in LA.
    auckland = subscriber("5000000002", "Pacific/Auckland")
    los_angeles = subscriber("5000000003", "America/Los_Angeles")
    product = make_product(ProductPeriod.DAILY, price="1.5", name="Number rental")
    subscriptions = {
        account.id: subscribe(None, account, {"product_id": product.id, "start_date": "2026-06-02"})
        for account in (auckland, los_angeles)
    }
    run_billing(now_utc=at("2026-06-02 11:30"))
    run_billing(now_utc=at("2026-06-02 11:50"))
    assert [c.period_start for c in charges(subscriptions[auckland.id])] == [date(2026, 6, 2)]
    assert [c.period_start for c in charges(subscriptions[los_angeles.id])] == [date(2026, 6, 2)]
    run_billing(now_utc=at("2026-06-02 12:30"))
    assert [c.period_start for c in charges(subscriptions[auckland.id])] == [
        date(2026, 6, 2),
        date(2026, 6, 3),
    ]
    assert len(charges(subscriptions[los_angeles.id])) == 1
    run_billing(now_utc=at("2026-06-03 07:30"))  # 00:30 on the 3rd in Los Angeles
    assert len(charges(subscriptions[los_angeles.id])) == 2
    assert len(charges(subscriptions[auckland.id])) == 2
    db.session.refresh(auckland)
    assert auckland.balance == Decimal("-3.00")  # prepaid: funds go down


def test_monthly_period_follows_the_local_month(app):
    # 31 Jan 20:00 UTC is 1 Feb 09:00 in Auckland: February is due there, not in Los Angeles.
    auckland = subscriber("5000000004", "Pacific/Auckland")
    los_angeles = subscriber("5000000005", "America/Los_Angeles")
    product = make_product(price="28")
    subs = {
        a.id: subscribe(None, a, {"product_id": product.id, "start_date": "2026-01-01"})
        for a in (auckland, los_angeles)
    }
    run_billing(now_utc=at("2026-01-31 20:00"))
    assert [c.period_start for c in charges(subs[auckland.id])] == [
        date(2026, 1, 1),
        date(2026, 2, 1),
    ]
    assert [c.period_start for c in charges(subs[los_angeles.id])] == [date(2026, 1, 1)]


def test_one_time_product_charged_once(app):
    account = subscriber("5000000006")
    product = make_product(ProductPeriod.ONE_TIME, price="49.99", setup="0", name="Router")
    subscription = subscribe(None, account, {"product_id": product.id, "start_date": "2026-02-01"})
    for day in ("2026-02-01 10:00", "2026-03-01 10:00", "2027-01-01 10:00"):
        run_billing(now_utc=at(day))
    assert [(c.period_start, c.period_end, c.amount) for c in charges(subscription)] == [
        (date(2026, 2, 1), None, Decimal("49.99"))
    ]
    assert [e.description for e in entries(account)] == ["Router (one-time)"]


def test_postpaid_charge_lands_on_the_next_invoice_with_taxes(app, postpaid_customer):
    product = make_product(price="30", name="Office plan")
    subscribe(None, postpaid_customer, {"product_id": product.id, "start_date": "2026-01-01"})
    run_billing(now_utc=at("2026-01-01 09:00"))
    assert db.session.scalar(select(func.count()).select_from(Document)) == 0
    run_billing(now_utc=at("2026-01-05 09:00"))  # billing day 5: the invoice
    invoice = db.session.scalar(select(Document).where(Document.kind == DocumentKind.INVOICE))
    lines = [(line.description, line.amount, line.is_tax) for line in invoice.lines]
    # VAT 20 % + 0.10 on the 30.00 line.
    assert lines == [
        ("Office plan, 2026-01-01 to 2026-01-31", Decimal("30.00"), False),
        ("VAT (20% + 0.1)", Decimal("6.10"), True),
    ]
    assert invoice.total == Decimal("36.10")


def test_prepaid_charge_debited_at_once_with_taxes_and_on_the_statement(app, vat):
    account = subscriber(
        "5000000007",
        billing_schedule=BillingSchedule.MONTHLY,
        billing_day=5,
    )
    account.taxes.append(vat)
    db.session.commit()
    product = make_product(price="10", name="Voicemail")
    subscribe(None, account, {"product_id": product.id, "start_date": "2026-01-01"})
    run_billing(now_utc=at("2026-01-01 09:00"))
    db.session.refresh(account)
    # 10.00 and VAT 20 % + 0.10 = 2.10, both debited at once.
    assert account.balance == Decimal("-12.10")
    assert [(e.tax_line, e.amount) for e in entries(account, EntryKind.TAX)] == [
        ("VAT (20% + 0.1)", Decimal("-2.10"))
    ]
    run_billing(now_utc=at("2026-01-05 09:00"))
    statement = db.session.scalar(select(Document).where(Document.account_id == account.id))
    assert statement.kind == DocumentKind.RECEIPT
    lines = [(line.description, line.amount) for line in statement.lines]
    assert ("Voicemail, 2026-01-01 to 2026-01-31", Decimal("10.00")) in lines
    assert ("VAT (20% + 0.1)", Decimal("2.10")) in lines


def test_two_concurrent_runs_charge_once(app):
    from tests.conftest import in_threads

    account = subscriber("5000000008")
    product = make_product(price="9")
    subscription = subscribe(None, account, {"product_id": product.id, "start_date": "2026-01-01"})
    errors = in_threads(app, lambda _: run_billing(now_utc=at("2026-01-02 10:00")), [1, 2])
    assert errors == []
    assert len(charges(subscription)) == 1
    db.session.refresh(account)
    assert account.balance == Decimal("-9.00")


# --- cancelling ---


def test_cancel_at_period_end_keeps_the_month_and_no_credit(app):
    account = subscriber("5000000009")
    product = make_product(price="31")
    subscription = subscribe(None, account, {"product_id": product.id, "start_date": "2026-01-01"})
    run_billing(now_utc=at("2026-01-01 10:00"))
    assert cancel(None, account, subscription, "period_end", today=date(2026, 1, 21)) == 0
    assert subscription.end_date == date(2026, 1, 31)
    run_billing(now_utc=at("2026-02-01 10:00"))
    assert len(charges(subscription)) == 1
    with pytest.raises(ValidationFailed):
        cancel(None, account, subscription, "now", today=date(2026, 1, 22))


def test_cancel_now_credits_the_unused_days_pro_rata(app, postpaid_customer):
    product = make_product(price="31")
    subscription = subscribe(
        None, postpaid_customer, {"product_id": product.id, "start_date": "2026-01-01"}
    )
    run_billing(now_utc=at("2026-01-01 10:00"))
    credit = cancel(None, postpaid_customer, subscription, "now", today=date(2026, 1, 21))
    assert credit == Decimal("10.00")  # 22nd..31st: 10 of 31 days of 31.00
    assert subscription.end_date == date(2026, 1, 21)
    [entry] = entries(postpaid_customer, EntryKind.ADJUSTMENT)
    assert entry.amount == Decimal("-10.00")  # postpaid: owed goes down
    entry.created_at = at("2026-01-21 10:00")  # posted on the cancel day of this timeline
    db.session.commit()
    run_billing(now_utc=at("2026-02-05 10:00"))
    invoice = db.session.scalar(select(Document).where(Document.kind == DocumentKind.INVOICE))
    # The invoice taxes its lines: 31.00 - 10.00 = 21.00, VAT 20 % + 0.10 = 4.30.
    assert invoice.subtotal == Decimal("21.00")
    assert invoice.tax_total == Decimal("4.30")
    assert len(charges(subscription)) == 1  # never charged again


def test_cancel_now_on_prepaid_gives_back_the_percentage_taxes(app, vat):
    account = subscriber("5000000010")
    account.taxes.append(vat)
    db.session.commit()
    product = make_product(price="30")
    subscription = subscribe(None, account, {"product_id": product.id, "start_date": "2026-04-01"})
    run_billing(now_utc=at("2026-04-01 10:00"))
    db.session.refresh(account)
    assert account.balance == Decimal("-36.10")
    credit = cancel(None, account, subscription, "now", today=date(2026, 4, 10))
    assert credit == Decimal("20.00")  # 20 of 30 days of 30.00
    db.session.refresh(account)
    assert account.balance == Decimal("-36.10") + Decimal("20.00") + Decimal("4.00")
    audit = db.session.scalar(
        select(func.count()).select_from(AuditEntry).where(AuditEntry.action == "cancel")
    )
    assert audit == 1


# --- bad input ---


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"product_id": 999999}, "product_id"),
        ({"product_id": "x"}, "product_id"),
        ({"product_id": None}, "product_id"),
        ({"start_date": "2026-13-01"}, "start_date"),
        ({"start_date": "2001-01-01"}, "start_date"),
    ],
)
def test_subscribe_rejects_bad_input(app, data, field):
    account = subscriber("5000000011")
    product = make_product()
    with pytest.raises(ValidationFailed) as failed:
        subscribe(None, account, {"product_id": product.id, **data})
    assert field in failed.value.errors
    assert db.session.scalar(select(func.count()).select_from(Subscription)) == 0


def test_subscribe_refuses_other_currency_inactive_and_other_tenant(app, tenants):
    account = subscriber("5000000012")
    euro = make_product(currency="EUR", name="Euro plan")
    inactive = make_product(name="Old", status="inactive")
    theirs = make_product(name="Theirs", reseller_id=tenants["a"].id)
    for product, message in ((euro, "EUR"), (inactive, "list"), (theirs, "list")):
        with pytest.raises(ValidationFailed) as failed:
            subscribe(None, account, {"product_id": product.id})
        assert message in failed.value.errors["product_id"]
