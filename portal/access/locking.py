"""The lock that keeps IP trunk ranges apart while one is checked and added."""

from contextlib import contextmanager

from sqlalchemy import text

from portal.calls.writers import one_writer
from portal.extensions import db

# MariaDB: how long an add waits for another one's lock before it fails, in seconds.
NAMED_LOCK_TIMEOUT = 30


@contextmanager
def trunk_ranges_locked():
    """Hold the right to add a trunk range until the enclosed transaction commits."""
    # Two concurrent adds of overlapping ranges would each find no overlap, and the UNIQUE
    # start only stops equal starts. SQLite: one writer per file, taken before the check.
    # PostgreSQL: SHARE ROW EXCLUSIVE conflicts with itself and with writes, not with reads,
    # so authorizations keep reading trunks; it is released by the transaction's end.
    with one_writer() as writer:
        writer.acquire()
        dialect = db.session.get_bind().dialect.name
        if dialect == "postgresql":
            db.session.execute(text("LOCK TABLE ip_trunks IN SHARE ROW EXCLUSIVE MODE"))
        if dialect not in ("mysql", "mariadb"):
            yield
            return
        # MariaDB: LOCK TABLES would commit the transaction, so a named lock instead, held by
        # a connection of its own: released after the enclosed transaction's commit.
        with db.engine.connect() as holder:
            taken = holder.scalar(
                text("SELECT GET_LOCK('portal.ip_trunks', :timeout)"),
                {"timeout": NAMED_LOCK_TIMEOUT},
            )
            if taken != 1:
                raise TimeoutError("Another IP trunk is being added; try again.")
            try:
                yield
            finally:
                holder.execute(text("SELECT RELEASE_LOCK('portal.ip_trunks')"))
