"""Honest 500s: "nothing was saved" only when no commit began; else "check before retrying"."""

import pytest
from sqlalchemy import func, select, text

from portal.billing.service import add_payment
from portal.extensions import csrf, db
from portal.models import Account, LedgerEntry

UNKNOWN = "some changes may have been saved: check before retrying"
NOTHING = "nothing was saved"


def _drop_the_connection() -> None:
    """The database connection dies under the request; its next statement fails (real driver)."""
    connection = db.session.connection()
    connection.connection.dbapi_connection.close()
    connection.execute(text("SELECT 1"))


@pytest.fixture
def failing_routes(app, customer):
    """Routes that pay and then lose the connection, or lose it before paying."""
    app.config["PROPAGATE_EXCEPTIONS"] = False  # as in production: the 500 page is rendered
    customer_id = customer.id

    def pay_then_drop():
        add_payment(None, db.session.get(Account, customer_id), "5")  # committed
        _drop_the_connection()

    def drop_then_pay():
        _drop_the_connection()
        add_payment(None, db.session.get(Account, customer_id), "5")

    for path, view in (("pay-then-drop", pay_then_drop), ("drop-then-pay", drop_then_pay)):
        csrf.exempt(view)  # a test route: the form pages' token is not the point here
        app.add_url_rule(f"/test/{path}", path, view, methods=["POST"])
        app.add_url_rule(f"/api/v1/test/{path}", f"api-{path}", view, methods=["POST"])
    return customer


def _payments() -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(LedgerEntry))


def test_a_500_after_the_payment_committed_does_not_say_nothing_was_saved(client, failing_routes):
    """The payment is saved; the page says so may be, and to check before paying again."""
    response = client.post("/test/pay-then-drop")
    page = response.get_data(as_text=True)
    assert response.status_code == 500
    assert UNKNOWN in page and NOTHING not in page
    assert _payments() == 1  # it was saved: "nothing was saved" would invite a second payment

    answer = client.post("/api/v1/test/pay-then-drop")
    assert answer.status_code == 500
    assert UNKNOWN in answer.get_json()["error"] and NOTHING not in answer.get_json()["error"]
    assert _payments() == 2


def test_a_500_before_any_commit_says_nothing_was_saved(client, failing_routes):
    """An error before any commit rolls back: that page may say so."""
    response = client.post("/test/drop-then-pay")
    page = response.get_data(as_text=True)
    assert response.status_code == 500
    assert NOTHING in page and UNKNOWN not in page
    answer = client.post("/api/v1/test/drop-then-pay")
    assert answer.status_code == 500 and NOTHING in answer.get_json()["error"]
    assert _payments() == 0
