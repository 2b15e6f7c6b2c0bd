"""Many rows in one statement (arrays on PostgreSQL, executemany elsewhere): the same rows."""

from decimal import Decimal

from sqlalchemy import select

from portal.bulkrows import insert_rows, update_rows
from portal.extensions import db
from portal.models import Account, OutboxMessage, utcnow


def test_inserted_rows_get_their_python_side_defaults(app, customer):
    now = utcnow()
    rows = [
        {
            "kind": "invoice",
            "recipient": f"r{n}@example.com",
            "subject": "",
            "body": f"b{n}",
            "account_id": customer.id,
            "created_at": now,
        }
        for n in range(3)
    ]
    insert_rows(db.session.connection(), OutboxMessage.__table__, rows)
    db.session.commit()
    stored = db.session.execute(
        select(
            OutboxMessage.recipient,
            OutboxMessage.body,
            OutboxMessage.attempts,
            OutboxMessage.last_error,
        ).order_by(OutboxMessage.id)
    ).all()
    assert [tuple(row) for row in stored[-3:]] == [
        (f"r{n}@example.com", f"b{n}", 0, "") for n in range(3)
    ]


def test_updated_rows_set_or_add_by_key_and_leave_the_others(app, customer, admin):
    before = {a.id: a.balance for a in (customer, admin)}
    connection = db.session.connection()
    rows = [{"id": customer.id, "balance": Decimal("2.50")}]
    update_rows(connection, Account.__table__, "id", rows, added=frozenset({"balance"}))
    update_rows(connection, Account.__table__, "id", [{"id": customer.id, "max_channels": 7}])
    update_rows(connection, Account.__table__, "id", [])  # nothing to do is no statement
    db.session.commit()
    db.session.expire_all()
    assert db.session.get(Account, customer.id).balance == before[customer.id] + Decimal("2.50")
    assert db.session.get(Account, customer.id).max_channels == 7
    assert db.session.get(Account, admin.id).balance == before[admin.id]


def test_inserted_rows_can_return_columns_of_each_new_row(app, customer, admin):
    now = utcnow()
    rows = [
        {
            "kind": "invoice",
            "recipient": "a@example.com",
            "subject": "",
            "body": "",
            "account_id": account_id,
            "created_at": now,
        }
        for account_id in (customer.id, admin.id)
    ]
    returned = insert_rows(
        db.session.connection(), OutboxMessage.__table__, rows, returning=("account_id", "id")
    )
    stored = db.session.execute(
        select(OutboxMessage.account_id, OutboxMessage.id).where(OutboxMessage.created_at == now)
    ).all()
    assert sorted(map(tuple, returned)) == sorted(map(tuple, stored)) and len(stored) == 2
