"""The lock that keeps IP trunk ranges apart while one is checked and added."""

from contextlib import contextmanager

from sqlalchemy import text

from portal.calls.writers import one_writer
from portal.extensions import db


@contextmanager
def trunk_ranges_locked():
    """Hold the right to add a trunk range until the enclosed transaction commits."""
    # Two concurrent adds of overlapping ranges would each find no overlap, and the UNIQUE
    # start only stops equal starts. SQLite: one writer per file, taken before the check.
    # PostgreSQL: SHARE ROW EXCLUSIVE conflicts with itself and with writes, not with reads,
    # so authorizations keep reading trunks; it is released by the transaction's end.
    with one_writer() as writer:
        writer.acquire()
        if db.session.get_bind().dialect.name == "postgresql":
            db.session.execute(text("LOCK TABLE ip_trunks IN SHARE ROW EXCLUSIVE MODE"))
        yield
