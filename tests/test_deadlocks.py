"""A transaction rolled back to break a deadlock is known as such on every driver."""

import pymysql
import pytest
from sqlalchemy.exc import OperationalError

from portal.transactions import lost_to_a_deadlock


@pytest.mark.parametrize(
    ("original", "lost"),
    [
        # PyMySQL gives MariaDB's error number, not the SQLSTATE (40001 for a deadlock).
        (pymysql.err.OperationalError(1213, "Deadlock found when trying to get lock"), True),
        (pymysql.err.OperationalError(1205, "Lock wait timeout exceeded"), False),
        (pymysql.err.IntegrityError(1062, "Duplicate entry '5' for key 'PRIMARY'"), False),
    ],
)
def test_a_mariadb_deadlock_is_known_by_its_error_number(original, lost):
    error = OperationalError("UPDATE accounts SET ...", {}, original)
    assert lost_to_a_deadlock(error) is lost
