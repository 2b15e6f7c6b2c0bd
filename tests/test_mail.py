"""E-mail through the outbox, delivered to a real SMTP server on loopback (aiosmtpd)."""

import os
import re
import signal
import subprocess
import threading
from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from portal import mail
from portal.billing.service import add_charge, add_payment
from portal.extensions import db
from portal.models import Account, AuditEntry, OutboxMessage, utcnow
from portal.settings.service import save_settings
from tests.conftest import ROOT, Browser
from tests.servers import BIN

MARCH_1 = datetime(2026, 3, 1, 12, 0)


def outbox(kind: str | None = None) -> list[OutboxMessage]:
    """The outbox rows, oldest first (freshly read)."""
    db.session.expire_all()
    query = select(OutboxMessage).order_by(OutboxMessage.id)
    if kind is not None:
        query = query.where(OutboxMessage.kind == kind)
    return list(db.session.scalars(query))


def post_money(user, account, kind: str, amount: str):
    """Submit the payment ("payments") or charge ("charges") form of the account page."""
    prefix = {"payments": "payment", "charges": "charge"}[kind]
    page = f"/accounts/{account.id}"
    return user.post(f"{page}/{kind}", {f"{prefix}-amount": amount}, token_from=page)


def words(message) -> str:
    """The message text with line breaks (CRLF on the wire) and runs of spaces as one space."""
    # A receipt's or invoice's mail is multipart (its PDF attached): the text is its plain part.
    return " ".join(message.get_body(("plain",)).get_content().split())


def subjects(inbox) -> list[str]:
    """Subjects of what the SMTP server received, in order."""
    return [message["Subject"] for message in inbox.messages()]


def test_receipt_mail_arrives_at_once(as_admin, customer, vat, smtp_server):
    customer.taxes.append(vat)
    db.session.commit()
    assert post_money(as_admin, customer, "payments", "50").status_code == 303
    assert post_money(as_admin, customer, "charges", "10").status_code == 303
    first, second = smtp_server.inbox.messages()
    assert first.envelope_to == ["customer@example.com"] and first["To"] == "customer@example.com"
    assert first["From"] == "billing@localhost"
    assert first["Subject"] == "Receipt R-000001 for account 1000000004"
    assert second["Subject"] == "Receipt R-000002 for account 1000000004"
    text = words(second)
    assert "Charge: USD 10.00" in text and "VAT (20% + 0.1): USD 2.10" in text
    assert "Total: USD 12.10" in text and "Available funds now: USD 37.90" in text
    assert all(row.sent_at is not None and row.attempts == 1 for row in outbox())


def test_invoice_mail_arrives_after_the_billing_run(app, admin, postpaid_customer, smtp_server):
    for entry in add_charge(admin, postpaid_customer, "40", "Line rental").entries:
        entry.created_at = MARCH_1
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["billing", "run", "--date", "2026-03-05"])
    assert result.exit_code == 0, result.output
    assert "1 mails sent, 0 left in the outbox" in result.output
    (message,) = smtp_server.inbox.messages()
    assert message.envelope_to == ["postpaid@example.com"]
    assert message["Subject"] == "Invoice INV-000001 for account 1000000006"
    text = words(message)
    assert "Hello Paula," in text and "invoice INV-000001 of 5 Mar 2026" in text
    assert "Line rental: USD 40.00" in text and "VAT (20% + 0.1): USD 8.10" in text
    assert "Total: USD 48.10" in text and "Due by 20 Mar 2026: USD 48.10" in text
    # Queued without text by the run, written when sent: the row keeps what was sent.
    (row,) = outbox("invoice")
    assert row.subject == message["Subject"] and "Line rental: USD\xa040.00" in row.body


def test_a_billing_runs_invoice_mail_waits_as_written_when_sent(
    app, as_admin, admin, postpaid_customer
):
    for entry in add_charge(admin, postpaid_customer, "40", "Line rental").entries:
        entry.created_at = MARCH_1
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["billing", "run", "--date", "2026-03-05"])
    assert "0 mails sent, 1 left in the outbox" in result.output  # no mail server
    (row,) = outbox("invoice")
    assert (row.subject, row.body) == ("", "")
    assert "Invoice (written when sent)" in outbox_page(as_admin)


def test_low_balance_mail_once_per_crossing(app, admin, customer, smtp_server):
    customer.email_alerts = True
    customer.low_balance_alert = Decimal(5)
    db.session.commit()

    def step(operation, amount):
        posted = operation(admin, customer, amount)
        mail.deliver_now(posted.mail)

    step(add_payment, "20")  # 20: above the alert level
    step(add_charge, "15")  # 5: at the level -> the one alert
    step(add_charge, "1")  # 4: still low, no second alert
    step(add_charge, "1")  # 3
    assert subjects(smtp_server.inbox).count("Low balance on account 1000000004") == 1
    step(add_payment, "1")  # 4: up, but not above the level: not re-armed
    step(add_charge, "1")
    assert len(outbox("low_balance")) == 1
    step(add_payment, "10")  # 13: above -> re-armed
    step(add_charge, "9")  # 4: crossing again -> a second alert
    alerts = [m for m in smtp_server.inbox.messages() if m["Subject"].startswith("Low balance")]
    assert len(alerts) == 2
    assert alerts[0].envelope_to == ["customer@example.com"]
    assert "are down to USD 5.00, at or below your alert level of USD 5.00" in words(alerts[0])
    assert "are down to USD 4.00" in words(alerts[1])


def test_low_balance_needs_alerts_on_and_an_email(app, admin, customer, smtp_server):
    customer.low_balance_alert = Decimal(5)  # alerts off
    db.session.commit()
    add_payment(admin, customer, "10")
    add_charge(admin, customer, "8")
    assert outbox("low_balance") == []
    silent = db.session.get(Account, customer.id)
    silent.email_alerts, silent.email = True, None  # on, but nowhere to send
    db.session.commit()
    add_charge(admin, customer, "1")
    assert outbox("low_balance") == []


def test_postpaid_low_balance_counts_the_credit_limit(admin, postpaid_customer, smtp_server):
    postpaid_customer.email_alerts = True
    postpaid_customer.low_balance_alert = Decimal(10)
    db.session.commit()
    add_charge(admin, postpaid_customer, "85")  # available 100 - 85 = 15
    assert outbox("low_balance") == []
    posted = add_charge(admin, postpaid_customer, "5")  # available 10: at the level
    mail.deliver_now(posted.mail)
    (alert,) = smtp_server.inbox.messages()
    assert alert.envelope_to == ["postpaid@example.com"]
    assert "are down to USD 10.00" in words(alert)


def test_server_down_keeps_mail_until_mail_send_delivers_each_once(
    app, as_admin, admin, customer, postpaid_customer, smtp_down
):
    assert post_money(as_admin, customer, "payments", "10").status_code == 303  # no error page
    for entry in add_charge(admin, postpaid_customer, "40").entries:
        entry.created_at = MARCH_1
    db.session.commit()
    runner = app.test_cli_runner()
    result = runner.invoke(args=["billing", "run", "--date", "2026-03-05"])
    assert result.exit_code == 0 and "0 mails sent, 1 left in the outbox" in result.output
    pending = outbox()
    assert [row.kind for row in pending] == ["receipt", "invoice"]
    for row in pending:
        assert row.sent_at is None and row.attempts == 1 and row.failed_at is None
        assert "ConnectionRefusedError" in row.last_error
        assert row.next_attempt_at > utcnow()  # backoff: a minute after the failed try

    # Before this change a second run retried at once; now the messages wait for their time.
    again = runner.invoke(args=["mail", "send"])
    assert again.output.strip() == "Sent 0 messages; 2 waiting for a retry; 0 failed."
    assert [row.attempts for row in outbox()] == [1, 1]

    smtp_down.start()
    retry_time = max(row.next_attempt_at for row in outbox())
    assert mail.send_pending(now=retry_time) == (2, 0, 0)
    assert Counter(m["Message-ID"] for m in smtp_down.inbox.messages()) == Counter(
        {f"<outbox-{row.id}@portal.local>": 1 for row in pending}
    )
    assert sorted(subjects(smtp_down.inbox)) == [
        "Invoice INV-000001 for account 1000000006",
        "Receipt R-000001 for account 1000000004",
    ]
    for row in outbox():
        assert row.sent_at == retry_time and row.attempts == 2 and row.last_error == ""
        assert row.next_attempt_at is None and row.claimed_until is None
    last = runner.invoke(args=["mail", "send"])
    assert last.output.strip() == "Sent 0 messages; 0 waiting for a retry; 0 failed."
    assert len(smtp_down.inbox.messages()) == 2


def test_a_refused_recipient_stays_queued_and_the_others_go(
    admin, customer, other_customer, smtp_server
):
    smtp_server.inbox.refuse.add("other@example.com")
    add_payment(admin, customer, "1")
    add_payment(admin, other_customer, "1")
    add_payment(admin, customer, "2")
    now = utcnow()
    assert mail.send_pending(now=now) == (2, 1, 0)
    assert [m.envelope_to for m in smtp_server.inbox.messages()] == [["customer@example.com"]] * 2
    refused = outbox()[1]
    assert refused.recipient == "other@example.com" and refused.sent_at is None
    assert refused.attempts == 1 and "550" in refused.last_error
    # A 550 may come from a relay that is misconfigured for a while: retried like any failure.
    assert refused.next_attempt_at == now + timedelta(minutes=1) and refused.failed_at is None
    smtp_server.inbox.refuse.clear()
    assert mail.send_pending(now=now + timedelta(seconds=59)) == (0, 1, 0)  # not due yet
    assert mail.send_pending(now=now + timedelta(minutes=1)) == (1, 0, 0)
    assert len(smtp_server.inbox.messages()) == 3


def test_a_server_closing_mid_run_leaves_the_rest_for_a_retry(
    admin, customer, other_customer, smtp_server
):
    smtp_server.inbox.shut_down_at.add("other@example.com")
    add_payment(admin, customer, "1")  # sent
    add_payment(admin, other_customer, "1")  # 421: the client closes the connection
    add_payment(admin, customer, "2")  # its send finds the connection closed
    add_payment(admin, customer, "3")  # not tried, but counted as a try of this run
    now = utcnow()
    assert mail.send_pending(now=now) == (1, 3, 0)
    sent, closing, cut_off, untried = outbox()
    assert sent.sent_at == now and "421" in closing.last_error
    assert "SMTPServerDisconnected" in cut_off.last_error
    assert untried.last_error == cut_off.last_error
    for row in (closing, cut_off, untried):
        assert row.attempts == 1 and row.next_attempt_at == now + timedelta(minutes=1)
        assert row.sent_at is None and row.claimed_until is None
    smtp_server.inbox.shut_down_at.clear()
    assert mail.send_pending(now=now + timedelta(minutes=1)) == (3, 0, 0)
    assert len(smtp_server.inbox.messages()) == 4


def test_concurrent_senders_deliver_each_message_once(app, admin, customer, smtp_server):
    for amount in range(1, 13):
        add_payment(admin, customer, str(amount))
    db.session.commit()
    results, errors = [], []

    def sender():
        try:
            with app.app_context():
                results.append(mail.send_pending())
        except BaseException as error:  # reported to the test, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=sender) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    delivered = Counter(m["Message-ID"] for m in smtp_server.inbox.messages())
    assert len(delivered) == 12 and set(delivered.values()) == {1}
    assert sum(result.sent for result in results) == 12
    assert all(row.sent_at is not None and row.attempts == 1 for row in outbox())


def test_long_id_lists_and_big_queues_go_in_batches(admin, customer, smtp_server):
    ids = [add_payment(admin, customer, str(amount)).mail[0].id for amount in range(1, 6)]
    # A billing run of 100,000 accounts hands over more ids than one IN (...) may hold.
    unknown = list(range(1_000_000, 1_070_000))
    assert mail.send_pending(unknown + ids[:3]) == (3, 0, 0)
    assert mail.send_pending(batch_size=1) == (2, 0, 0)  # every batch, not just the first
    assert len(smtp_server.inbox.messages()) == 5


def test_invoice_taxes_that_cross_the_alert_level_send_the_alert(
    app, admin, postpaid_customer, smtp_server
):
    postpaid_customer.email_alerts = True
    postpaid_customer.low_balance_alert = Decimal(10)
    db.session.commit()
    for entry in add_charge(admin, postpaid_customer, "85").entries:
        entry.created_at = MARCH_1  # available 15: above the level
    db.session.commit()
    assert outbox("low_balance") == []
    result = app.test_cli_runner().invoke(args=["billing", "run", "--date", "2026-03-05"])
    assert result.exit_code == 0, result.output
    # The invoice adds VAT 17.10: available 100 - 102.10 = -2.10.
    alerts = [m for m in smtp_server.inbox.messages() if m["Subject"].startswith("Low balance")]
    assert len(alerts) == 1 and "are down to -USD 2.10" in words(alerts[0])
    assert subjects(smtp_server.inbox)[0] == "Invoice INV-000001 for account 1000000006"


def test_mail_is_signed_by_whoever_issues_the_documents(admin, customer, tenants):
    save_settings({"company_name": "Acme Voice Ltd"})
    add_payment(admin, customer, "5")
    add_payment(admin, tenants["a_customer"], "5")
    own, resold = outbox("receipt")
    assert own.body.rstrip().endswith("--\nAcme Voice Ltd")
    assert resold.body.rstrip().endswith("--\nReseller A")  # not the platform's name
    assert "Acme" not in resold.body


def test_login_link_without_a_request(app):
    assert mail.login_url() == "/login"  # a command-line run knows no host
    app.config["PORTAL_URL"] = "https://portal.example.com"
    assert mail.login_url() == "https://portal.example.com/login"


def test_an_address_the_server_cannot_take_does_not_block_the_others(
    admin, customer, other_customer, smtp_down
):
    # An internationalised address passes validation; this server does not offer SMTPUTF8.
    smtp_down.start(enable_SMTPUTF8=False)
    customer.email = "jörg@example.com"
    db.session.commit()
    add_payment(admin, customer, "1")
    add_payment(admin, other_customer, "1")
    assert mail.send_pending() == (1, 1, 0)
    assert [m.envelope_to for m in smtp_down.inbox.messages()] == [["other@example.com"]]
    stuck = outbox()[0]
    assert stuck.sent_at is None and "SMTPNotSupportedError" in stuck.last_error
    assert stuck.failed_at is None  # another server (or this one, reconfigured) may take it


def test_an_unexpected_mail_error_does_not_fail_the_committed_payment(
    as_admin, customer, smtp_server, monkeypatch
):
    def broken():
        raise RuntimeError("TLS library missing")

    monkeypatch.setattr(mail, "_connect", broken)
    page = f"/accounts/{customer.id}"
    response = as_admin.post(f"{page}/payments", {"payment-amount": "10"}, token_from=page)
    assert response.status_code == 303  # not an error page that invites a second payment
    assert db.session.get(Account, customer.id).balance == Decimal(10)
    (receipt,) = outbox()
    assert receipt.sent_at is None  # `mail send` delivers it later
    # A set-up error counts as a failed try, so it shows on the outbox page if it lasts.
    assert receipt.last_error == "RuntimeError: TLS library missing"
    monkeypatch.undo()
    assert mail.send_pending(now=receipt.next_attempt_at) == (1, 0, 0)


def test_a_receipt_mail_dates_the_receipt_in_the_recipients_timezone(app, customer):
    customer.timezone = "Asia/Kolkata"
    receipt = SimpleNamespace(
        display_number="RCPT-000001",
        issued_at=datetime(2026, 3, 28, 19, 0),  # UTC: already the 29th in Kolkata
        lines=[],
        total=Decimal("1.00"),
        currency="USD",
    )
    with app.test_request_context():  # a staff member's request: still the recipient's zone
        message = mail.queue("receipt", customer.email, "receipt", customer, document=receipt)
    assert "receipt RCPT-000001 of 29 Mar 2026." in message.body
    db.session.rollback()


# --- Retries with backoff, giving up, the outbox page, a sender killed mid-send (issue 14) ---


def test_retries_wait_1_2_4_minutes_and_then_every_hour():
    delays = [mail.retry_delay(attempts) for attempts in range(1, 10)]
    assert delays == [timedelta(minutes=m) for m in (1, 2, 4, 8, 16, 32, 60, 60, 60)]
    assert mail.retry_delay(10_000) == timedelta(hours=1)


def test_four_hours_of_outage_then_every_message_arrives_once(
    admin, customer, other_customer, smtp_down
):
    for account, amount in ((customer, "1"), (other_customer, "2"), (customer, "3")):
        add_payment(admin, account, amount)
    start = now = utcnow()
    tries = []
    while now < start + timedelta(hours=4):  # the periodic sender, at each due time
        assert mail.send_pending(now=now, batch_size=2) == (0, 3, 0)  # both batches count a try
        rows = outbox()
        assert {(row.sent_at, row.failed_at, row.claimed_until) for row in rows} == {
            (None, None, None)
        }
        assert all("ConnectionRefusedError" in row.last_error for row in rows)
        tries.append(round((now - start).total_seconds() / 60))
        now = min(row.next_attempt_at for row in rows)
        # A run before the next due time tries nothing (no connection, no attempt counted).
        assert mail.send_pending(now=now - timedelta(seconds=1)) == (0, 3, 0)
    assert tries == [0, 1, 3, 7, 15, 31, 63, 123, 183]
    assert [row.attempts for row in outbox()] == [9, 9, 9]

    smtp_down.start()
    assert mail.send_pending(now=now - timedelta(seconds=1)) == (0, 3, 0)  # still waiting
    assert smtp_down.inbox.messages() == []
    assert mail.send_pending(now=now) == (3, 0, 0)
    rows = outbox()
    assert Counter(m["Message-ID"] for m in smtp_down.inbox.messages()) == Counter(
        {f"<outbox-{row.id}@portal.local>": 1 for row in rows}
    )
    for row in rows:
        assert row.sent_at == now and row.failed_at is None and row.attempts == 10
    assert mail.send_pending(now=now + timedelta(days=1)) == (0, 0, 0)
    assert len(smtp_down.inbox.messages()) == 3


def test_a_message_is_given_up_only_once_older_than_the_give_up_age(
    app, admin, customer, smtp_down
):
    (message,) = add_payment(admin, customer, "1").mail
    now = utcnow()
    message.created_at = now - timedelta(hours=71)
    db.session.commit()
    assert mail.send_pending(now=now) == (0, 1, 0)  # 71 hours old: retried
    assert mail.send_pending(now=now + timedelta(hours=1)) == (0, 0, 1)  # 72 hours: given up
    (failed,) = outbox()
    assert failed.failed_at == now + timedelta(hours=1) and failed.sent_at is None
    assert failed.attempts == 2 and "ConnectionRefusedError" in failed.last_error
    smtp_down.start()
    assert mail.send_pending(now=now + timedelta(days=1)) == (0, 0, 1)  # never tried again
    assert smtp_down.inbox.messages() == [] and outbox()[0].attempts == 2

    app.config["MAIL_GIVE_UP_HOURS"] = 100  # the operator's own limit
    (message,) = add_payment(admin, customer, "2").mail
    message.created_at = now - timedelta(hours=99)
    db.session.commit()
    assert mail.send_pending(now=now) == (1, 0, 1)  # the server is up now


def outbox_page(browser: Browser, query: str = "") -> str:
    """The Mail outbox page's HTML (asserting it opened)."""
    response = browser.get("/outbox/" + query)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def dashboard(browser: Browser) -> str:
    """The dashboard's HTML."""
    response = browser.get("/dashboard/")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def retries_audited() -> list[tuple]:
    """The audit log's entries of retried mail: (action, account id, status from, to)."""
    entries = db.session.scalars(
        select(AuditEntry).where(AuditEntry.entity_type == "outbox_message").order_by(AuditEntry.id)
    )
    return [(e.action, e.account_id, *e.changes["status"]) for e in entries]


def test_a_failed_message_is_shown_to_staff_and_retry_now_sends_it(
    app, as_admin, admin, subadmin, customer, other_customer, tenants, smtp_down
):
    old = add_payment(admin, customer, "1").mail[0]
    fresh = add_payment(admin, other_customer, "1").mail[0]
    old.created_at = utcnow() - timedelta(hours=73)
    old.body += "\nYour password: Secret-Passw0rd\n"  # as a welcome mail may hold one
    db.session.commit()
    result = app.test_cli_runner().invoke(args=["mail", "send"])
    assert result.output.strip() == "Sent 0 messages; 1 waiting for a retry; 1 failed."
    failed, waiting = outbox()
    assert failed.failed_at is not None and failed.sent_at is None
    assert waiting.failed_at is None and waiting.next_attempt_at is not None

    page = outbox_page(as_admin)
    assert page.index(f'data-message="{fresh.id}"') < page.index(f'data-message="{old.id}"')
    assert "customer@example.com" in page and "Receipt R-000001 for account 1000000004" in page
    assert "Failed" in page and "ConnectionRefusedError" in page and "Retry now" in page
    assert page.count("Retry now") == 1  # only the failed one
    assert "Secret-Passw0rd" not in page and "Available funds" not in page  # never the text
    only_failed = outbox_page(as_admin, "?state=failed")
    assert "customer@example.com" in only_failed and "other@example.com" not in only_failed
    assert "1 e-mail could not be delivered" in dashboard(as_admin)
    assert 'href="/outbox/?state=failed"' in dashboard(as_admin)

    sub = Browser(app.test_client())
    sub.login(subadmin.account_number)
    assert "1 e-mail could not be delivered" in dashboard(sub)
    assert "Secret-Passw0rd" not in outbox_page(sub)
    reseller = Browser(app.test_client())
    reseller.login(tenants["a"].account_number)
    assert "could not be delivered" not in dashboard(reseller)
    assert "Mail outbox" not in dashboard(reseller) and "Mail outbox" in dashboard(as_admin)

    # Retry now while the server is still down: one more try, failed again with its error.
    retry = f"/outbox/{old.id}/retry"
    response = as_admin.post(retry, {}, token_from="/outbox/")
    assert response.status_code == 303
    assert "refused again: ConnectionRefusedError" in outbox_page(as_admin)
    assert outbox()[0].failed_at is not None and outbox()[0].attempts == 2

    smtp_down.start()
    assert as_admin.post(retry, {}, token_from="/outbox/").status_code == 303
    assert "was sent" in outbox_page(as_admin)
    (arrived,) = smtp_down.inbox.messages()
    assert arrived["Message-ID"] == f"<outbox-{old.id}@portal.local>"
    sent = outbox()[0]
    assert sent.sent_at is not None and sent.failed_at is None and sent.attempts == 3
    assert "could not be delivered" not in dashboard(as_admin)
    assert f'data-message="{old.id}"' not in outbox_page(as_admin, "?state=failed")
    # Sent: listed under Sent, with no Retry now, and still never its text.
    sent_page = outbox_page(as_admin, "?state=sent")
    assert f'data-message="{old.id}"' in sent_page and "Retry now" not in sent_page
    assert "Secret-Passw0rd" not in sent_page and "Sent (1)" in sent_page
    assert retries_audited() == [("update", customer.id, "failed", "waiting")] * 2
    # Sent: nothing left to retry (gone from the outbox page).
    assert as_admin.post(retry, {}, token_from="/outbox/").status_code == 404
    # Without a CSRF token nothing happens.
    assert as_admin.client.post(f"/outbox/{fresh.id}/retry").status_code == 400


def test_retry_now_of_a_message_that_has_not_failed_changes_nothing(as_admin, admin, customer):
    (message,) = add_payment(admin, customer, "1").mail  # no mail server: just waiting
    response = as_admin.post(f"/outbox/{message.id}/retry", {}, token_from="/outbox/")
    assert response.status_code == 303
    assert "has not failed" in outbox_page(as_admin)
    assert outbox()[0].attempts == 0 and retries_audited() == []


def next_link(page: str, rel: str = "next") -> str:
    """The query string of a page's Next (or Previous) link."""
    href = re.search(rf'href="([^"]*)" rel="{rel}"', page).group(1)
    return "?" + href.split("?", 1)[1].replace("&amp;", "&")


def test_the_outbox_page_goes_both_ways_in_pages(as_admin, admin, customer, monkeypatch):
    monkeypatch.setattr("portal.listing.PAGE_SIZES", (2, 50))
    ids = [add_payment(admin, customer, str(amount)).mail[0].id for amount in (1, 2, 3)]
    first = outbox_page(as_admin, "?per_page=2")
    assert f'data-message="{ids[2]}"' in first and f'data-message="{ids[1]}"' in first
    assert f'data-message="{ids[0]}"' not in first and "3 messages" in first
    second = outbox_page(as_admin, next_link(first))
    assert f'data-message="{ids[0]}"' in second and f'data-message="{ids[1]}"' not in second
    back = outbox_page(as_admin, next_link(second, "prev"))
    assert f'data-message="{ids[2]}"' in back and f'data-message="{ids[0]}"' not in back


def test_the_outbox_lists_sent_waiting_and_failed_mail_sorted(
    app, as_admin, admin, customer, other_customer, smtp_down
):
    sent = add_payment(admin, customer, "1").mail[0]
    smtp_down.start()
    assert mail.send_pending()[0] == 1
    smtp_down.stop()
    failed = add_payment(admin, other_customer, "1").mail[0]
    waiting = add_payment(admin, customer, "2").mail[0]
    failed.created_at = utcnow() - timedelta(hours=99)
    failed.last_error = "550 mailbox unavailable"
    failed.failed_at = utcnow()
    db.session.commit()
    everything = outbox_page(as_admin)
    assert all(f'data-message="{m.id}"' in everything for m in (sent, failed, waiting))
    assert "3 messages" in everything
    assert "Waiting (1)" in everything and "Failed (1)" in everything and "Sent (1)" in everything
    for state, shown in (("sent", sent), ("failed", failed), ("waiting", waiting)):
        page = outbox_page(as_admin, f"?state={state}")
        assert page.count("data-message=") == 1 and f'data-message="{shown.id}"' in page
    assert "550 mailbox unavailable" in outbox_page(as_admin, "?state=failed")
    assert "Retry now" in outbox_page(as_admin, "?state=failed")
    oldest_first = outbox_page(as_admin, "?sort=created")
    assert oldest_first.index(f'data-message="{failed.id}"') < oldest_first.index(
        f'data-message="{sent.id}"'
    )
    by_recipient = outbox_page(as_admin, "?sort=recipient")
    assert by_recipient.index("customer@example.com") < by_recipient.index("other@example.com")
    # Never a body, whatever the state; odd query strings fall back or are not found.
    assert "Available funds" not in everything
    assert outbox_page(as_admin, "?state=nope&sort=body&per_page=99999").count("data-message=") == 3
    assert as_admin.get("/outbox/?state=%00").status_code == 400
    assert as_admin.get("/outbox/?after=" + "x" * 10_000).status_code == 404


@pytest.mark.parametrize("role", ["reseller", "customer"])
def test_only_staff_open_the_outbox(app, role, reseller, customer, admin):
    (message,) = add_payment(admin, customer, "1").mail
    browser = Browser(app.test_client())
    browser.login({"reseller": reseller, "customer": customer}[role].account_number)
    assert browser.get("/outbox/").status_code == 403
    response = browser.post(f"/outbox/{message.id}/retry", {}, token_from="/no-such-page")
    assert response.status_code == 403


def test_a_sender_killed_mid_send_leaves_the_message_to_be_retried(
    app, database_url, admin, customer, smtp_server, smtp_holding, tmp_path
):
    (message,) = add_payment(admin, customer, "1").mail
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": "test-secret",
        "MAIL_SERVER": "127.0.0.1",
        "MAIL_PORT": str(smtp_holding.port),
        "MAIL_TIMEOUT": "600",  # it waits for the server's answer until it is killed
    }
    log = tmp_path / "sender.log"
    with open(log, "w") as output:
        sender = subprocess.Popen(  # noqa: S603 (our own command)
            [str(BIN / "flask"), "--app", "app", "mail", "send"],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        while not smtp_holding.inbox.arrived.wait(0.2):  # the text is on the server
            assert sender.poll() is None, log.read_text()
        claimed = outbox()[0]
        assert claimed.sent_at is None and claimed.attempts == 1
        assert claimed.claimed_until > utcnow()
        # Another sender meanwhile (the periodic job, a page): the lease keeps it off.
        assert mail.send_pending() == (0, 1, 0)
        assert smtp_server.inbox.messages() == []
        os.kill(sender.pid, signal.SIGKILL)
        assert sender.wait() == -signal.SIGKILL
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.wait()
    left = outbox()[0]
    assert left.sent_at is None and left.failed_at is None
    assert left.claimed_until == claimed.claimed_until  # nobody released it
    assert mail.send_pending(now=left.claimed_until) == (1, 0, 0)  # once the lease is over
    (arrived,) = smtp_server.inbox.messages()
    assert arrived.envelope_to == ["customer@example.com"]
    (half_sent,) = smtp_holding.inbox.messages()
    # The first try's text reached a server: a duplicate would carry the same Message-ID.
    assert arrived["Message-ID"] == half_sent["Message-ID"] == f"<outbox-{message.id}@portal.local>"
    done = outbox()[0]
    assert done.sent_at is not None and done.attempts == 2 and done.claimed_until is None


def test_a_welcome_mail_keeps_its_password_only_until_sent(
    as_admin, admin, default_rate_group, smtp_server
):
    """Once the server took it, the outbox row holds a note instead of the password."""
    from portal.accounts.service import create_account
    from portal.models import Role

    data = {
        "account_number": "4444444444",
        "password": "Welcome-Secret-9",
        "pin": "123456",
        "email": "new@example.com",
        "country": "US",
        "timezone": "UTC",
        "status": "active",
        "max_channels": 0,
        "valid_days": 30,
        "rate_group_id": default_rate_group.id,
        "billing_schedule": "monthly",
        "billing_day": 1,
        "currency": "USD",
        "account_type": "prepaid",
        "send_welcome": True,
        "send_password": True,
    }
    created = create_account(admin, Role.CUSTOMER, data)
    (message,) = created.mail
    assert "Welcome-Secret-9" in message.body and message.holds_secret  # waiting: still needed
    assert mail.send_pending() == (1, 0, 0)
    (arrived,) = smtp_server.inbox.messages()
    assert "Welcome-Secret-9" in words(arrived)
    db.session.expire_all()
    stored = db.session.get(OutboxMessage, message.id)
    assert "Welcome-Secret-9" not in stored.body and stored.body == mail.PURGED_BODY
    assert stored.sent_at is not None
    # A mail without a password keeps its text (the outbox page never shows either).
    add_payment(admin, created.account, "1")
    mail.send_pending()
    receipt = outbox("receipt")[0]
    assert receipt.sent_at is not None and "Receipt" in receipt.subject and receipt.body
    assert receipt.body != mail.PURGED_BODY
    assert "Welcome-Secret-9" not in outbox_page(as_admin)
