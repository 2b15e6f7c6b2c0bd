"""One operation, one transaction; rule failures as field errors."""

from collections.abc import Iterable
from contextlib import contextmanager

from flask import g, has_app_context
from sqlalchemy import Engine, event
from sqlalchemy.exc import DBAPIError, IntegrityError

from portal.extensions import db


class ValidationFailed(Exception):
    """The input breaks one or more rules; `errors` maps each field name to its message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = errors


_ENCLOSED = "enclosed_by_operation"


@contextmanager
def operation():
    """One transaction around service calls and more rows (their transaction() only flushes)."""
    # The API stores an Idempotency-Key's answer in the same commit as the account or payment
    # it made: a crash between the two can never leave one without the other.
    db.session.info[_ENCLOSED] = True
    try:
        yield
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    finally:
        db.session.info.pop(_ENCLOSED, None)


@contextmanager
def transaction(unique_fields: Iterable[tuple[str, str, str]] = ()):
    """Commit at the end, roll everything back on any failure."""
    # unique_fields: (text in the violated index's name, field, message). A UNIQUE violation
    # (a value taken by a concurrent request after validation) becomes that field's error.
    try:
        yield
        if db.session.info.get(_ENCLOSED):
            db.session.flush()  # the enclosing operation() commits, with its own rows
        else:
            db.session.commit()
    except IntegrityError as error:
        db.session.rollback()
        text = str(error.orig).lower()
        for marker, field, message in unique_fields:
            if marker in text:
                raise ValidationFailed({field: message}) from error
        raise
    except BaseException:
        db.session.rollback()
        raise


def track_commits() -> None:
    """Note in each request (flask.g) when a commit starts on any engine (once per process)."""
    if not event.contains(Engine, "commit", _commit_started):
        event.listen(Engine, "commit", _commit_started)


def _commit_started(_connection) -> None:
    """A COMMIT is about to be sent: from now on what the request saved is not known."""
    # Sent is not known to be applied: a connection that drops during (or right after) the
    # COMMIT leaves the outcome open, so an error page must not say "nothing was saved".
    if has_app_context():
        g.commit_started = True


def commit_started() -> bool:
    """Whether this request (or command) began a commit: until then an error saved nothing."""
    return has_app_context() and g.get("commit_started", False)


# MariaDB's error number for a transaction rolled back to break a deadlock (ER_LOCK_DEADLOCK,
# SQLSTATE 40001): PyMySQL gives the number only, where psycopg gives the SQLSTATE.
ER_LOCK_DEADLOCK = 1213


def lost_to_a_deadlock(error: DBAPIError) -> bool:
    """Whether the database rolled the transaction back to break a deadlock (SQLSTATE 40...)."""
    # MariaDB's foreign key checks take shared locks on the parent rows (PostgreSQL's take
    # key-share locks, which updates do not wait for), and its multi-table UPDATE locks the
    # rows it reads: two transactions then wait on each other, and InnoDB rolls one back.
    original = error.orig
    if (getattr(original, "sqlstate", None) or "").startswith("40"):
        return True
    arguments = getattr(original, "args", ())
    return bool(arguments) and arguments[0] == ER_LOCK_DEADLOCK
