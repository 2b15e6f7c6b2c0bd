"""The call API's own pool of the database, and authorizations run on one of its connections."""

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from portal.calls.service import authorize
from portal.extensions import db, sqlite_pragmas

CALLS_BIND = "calls"


def bind_pool(app: Flask, engine_options: dict) -> None:
    """Declare the call API's pool (a Flask-SQLAlchemy bind) beside the app's own."""
    # Without the test query per checkout (a dead connection's statement is retried once
    # instead, authorize_call); on PostgreSQL in autocommit (each write of an authorization is
    # one statement); on SQLite with connections that commit without a disk sync
    # (CALLS_ASYNC_COMMIT). An in-memory SQLite database has one connection: no pool of its own.
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    if uri.startswith("sqlite") and make_url(uri).database in (None, "", ":memory:"):
        return
    calls = {**engine_options, "url": uri, "pool_pre_ping": False}
    if uri.startswith("postgresql"):
        calls["isolation_level"] = "AUTOCOMMIT"
    app.config.setdefault("SQLALCHEMY_BINDS", {}).setdefault(CALLS_BIND, calls)


def listen_pragmas(app: Flask) -> None:
    """On SQLite, the pool's connections sync on commit only without CALLS_ASYNC_COMMIT."""
    if CALLS_BIND not in db.engines:
        return

    def calls_pragmas(dbapi_connection, record) -> None:
        relaxed = app.config["CALLS_ASYNC_COMMIT"]
        sqlite_pragmas(dbapi_connection, record, "NORMAL" if relaxed else "FULL")

    event.listen(db.engines[CALLS_BIND], "connect", calls_pragmas)


def authorize_call(*args, **kwargs):
    """authorize() on a pooled connection of its own, without a Session around it."""
    # A Session costs more than the few statements an authorization runs. A connection the
    # server dropped (a restart) fails its statement, and the authorization runs once more on
    # a new one. Safe even if the write had committed: the call id then replays its answer.
    engine = db.engines.get(CALLS_BIND, db.engine)

    def once():
        with engine.connect() as connection:
            return authorize(*args, connection=connection, **kwargs)

    try:
        return once()
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise
    return once()
