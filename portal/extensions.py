"""Unbound extension instances, bound to the app in create_app."""

from flask_compress import Compress
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

from portal import mariadb  # noqa: F401  (MariaDB's DDL for the shared migrations)

# Named constraints so Alembic migrations can alter them on every backend (SQLite batch mode).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with the naming convention."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
compress = Compress()


def sqlite_pragmas(dbapi_connection, _record, synchronous="FULL") -> None:
    """SQLite: enforce foreign keys, and let readers and a writer work side by side (WAL)."""
    # synchronous=NORMAL (the call API's connections, CALLS_ASYNC_COMMIT): commits skip the
    # disk sync. In WAL mode the database stays consistent through any crash; a power loss
    # may undo the last such commits, and any later synchronous commit syncs them too.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.execute(f"PRAGMA synchronous={synchronous}")
    cursor.close()
