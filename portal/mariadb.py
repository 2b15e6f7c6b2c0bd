"""MariaDB (and MySQL): the connection's settings and the DDL the shared migrations need there."""

from sqlalchemy import DateTime, LargeBinary, Text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.schema import CreateTable

# Set on every connection the app opens, so a server's defaults cannot change what it stores:
# strict mode refuses (not truncates) an over-long string or out-of-range number, no zero
# dates, and times are read and written as UTC, as the portal's naive datetimes are.
SQL_MODE = ",".join(
    (
        "STRICT_ALL_TABLES",
        "NO_ZERO_IN_DATE",
        "NO_ZERO_DATE",
        "ERROR_FOR_DIVISION_BY_ZERO",
        "NO_ENGINE_SUBSTITUTION",
    )
)
INIT_COMMAND = f"SET SESSION sql_mode='{SQL_MODE}', time_zone='+00:00'"

# The tables' character set and collation: all of Unicode, compared byte for byte as
# PostgreSQL and SQLite compare text (an e-mail, a username or a prefix differing in case,
# accent or a trailing space is another one, for UNIQUE constraints and lookups alike; the
# plain utf8mb4_bin pads with spaces, so "a" and "a " would be one key).
TABLE_OPTIONS = "ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_nopad_bin"


def is_mariadb(url) -> bool:
    """True for a mysql:// or mariadb:// database URL."""
    return url.get_backend_name() in ("mysql", "mariadb")


def engine_options() -> dict:
    """What create_engine takes for MariaDB: the session settings, PostgreSQL's isolation."""
    # READ COMMITTED, PostgreSQL's default, instead of REPEATABLE READ: a row read after
    # waiting on a lock is the committed one, and fewer gap locks means fewer deadlocks.
    return {
        "connect_args": {"charset": "utf8mb4", "init_command": INIT_COMMAND},
        "isolation_level": "READ COMMITTED",
    }


# MariaDB's "CONSTRAINT ... failed" (a CHECK constraint), which PyMySQL raises as an
# OperationalError.
CHECK_FAILED = 4025


def check_failure_as_integrity_error(context):
    """Engine handle_error: a failed CHECK is an IntegrityError, as on PostgreSQL and SQLite."""
    original = context.original_exception
    if getattr(original, "args", None) and original.args[0] == CHECK_FAILED:
        return IntegrityError(context.statement, context.parameters, original)
    return None


@compiles(DateTime, "mysql")
@compiles(DateTime, "mariadb")
def _datetime_microseconds(type_, compiler, **kw):
    """DATETIME(6): microseconds kept, as PostgreSQL's TIMESTAMP and SQLite's text keep them."""
    return "DATETIME(6)"


@compiles(Text, "mysql")
@compiles(Text, "mariadb")
def _text_unbounded(type_, compiler, **kw):
    """LONGTEXT for a Text of no length: MariaDB's TEXT stops at 64 kB, PostgreSQL's never."""
    if type_.length is not None:
        return compiler.visit_text(type_, **kw)
    return "LONGTEXT"


@compiles(LargeBinary, "mysql")
@compiles(LargeBinary, "mariadb")
def _binary_unbounded(type_, compiler, **kw):
    """LONGBLOB for a LargeBinary of no length (a job's file), as BLOB stops at 64 kB."""
    if type_.length is not None:
        return compiler.visit_large_binary(type_, **kw)
    return "LONGBLOB"


@compiles(CreateTable, "mysql")
@compiles(CreateTable, "mariadb")
def _create_table_options(create, compiler, **kw):
    """CREATE TABLE with InnoDB, utf8mb4 and the binary collation, whatever the server's default."""
    return compiler.visit_create_table(create, **kw).rstrip() + " " + TABLE_OPTIONS
