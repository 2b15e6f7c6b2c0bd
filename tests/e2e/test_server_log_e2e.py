"""The e2e fixture's reading of the server logs: what makes a test fail."""

from tests.servers import log_problems

ACCESS_LOG = (
    '127.0.0.1 - - [01/Dec/2026:00:10:00 +0000] "GET /accounts/ HTTP/1.1" 200 5120 "-" "Chrome"\n'
    '127.0.0.1 - - [01/Dec/2026:00:10:01 +0000] "GET /accounts/export.csv HTTP/1.1" 500 265 "-"'
    ' "Chrome"\n'
    '127.0.0.1 - - [01/Dec/2026:00:10:02 +0000] "POST /login HTTP/1.1" 302 189 "-" "Chrome"\n'
)
SERVER_LOG = """[2026-12-01 00:10:01 +0000] [42] [INFO] Booting worker with pid: 42
[2026-12-01 00:10:01,5] ERROR in app: Exception on /accounts/export.csv [GET]
Traceback (most recent call last):
  File "portal/accounts/bulk.py", line 285, in <genexpr>
sqlalchemy.exc.InvalidRequestError: identity map is no longer valid
"""


def test_a_5xx_in_the_access_log_is_a_problem_and_other_answers_are_not():
    assert log_problems("web-access.log", ACCESS_LOG) == [
        "web-access.log: HTTP 500 for GET /accounts/export.csv HTTP/1.1"
    ]


def test_a_traceback_in_a_process_log_is_a_problem_with_its_text():
    (problem,) = log_problems("web.log", SERVER_LOG)
    assert problem.startswith("web.log: traceback in the server log:\nTraceback")
    assert "identity map is no longer valid" in problem
    assert log_problems("web.log", "[INFO] Booting worker with pid: 42\n") == []
