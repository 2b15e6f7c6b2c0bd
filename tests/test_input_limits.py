"""No 5xx from input: every route with 20-digit, negative, NUL and over-long parameters."""

import re
import traceback
from pathlib import Path
from urllib.parse import quote

import pytest
from flask_wtf import FlaskForm
from pydantic import BaseModel
from werkzeug.routing import AnyConverter, IntegerConverter
from wtforms.fields.core import UnboundField

from portal.api import schemas
from portal.ids import MAX_INT, at_most_pattern
from portal.softswitch import schemas as call_schemas
from tests.conftest import PASSWORD, ROOT, csrf_from

HOSTILE = {
    "20 digits": "9" * 20,
    "past the range": "2147483648",
    "negative": "-1",
    "NUL": "1\x002",
    "over-long": "7" * 10_000,
}
BEYOND = ("20 digits", "past the range")
# Routes that would end the walker's own session.
SKIPPED_ENDPOINTS = re.compile(r"logout|static")


def _query_args() -> set[str]:
    """The query arguments the views read (request.args.get("name") in the sources)."""
    names = set()
    for path in Path(ROOT, "portal").rglob("*.py"):
        names |= set(re.findall(r"request\.args\.get\(\s*[\"'](\w+)[\"']", path.read_text()))
    return names


def _subclasses(cls) -> set:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub, *_subclasses(sub)}
    return found


def _field_names() -> set[str]:
    """Every field name of every form (partials read forms from the query string too)."""
    names = set()
    for form in _subclasses(FlaskForm):
        names |= {name for name in dir(form) if isinstance(getattr(form, name), UnboundField)}
    return names


def _api_fields() -> set[str]:
    """Every field name of the API's request and answer models."""
    names = set()
    for module in (schemas, call_schemas):
        for value in vars(module).values():
            if isinstance(value, type) and issubclass(value, BaseModel) and value is not BaseModel:
                names |= set(value.model_fields)
    return names


def _path(rule, value: str) -> str | None:
    """The rule's URL with every argument set to `value` (None if the converter refuses it)."""
    path = rule.rule
    for name, converter in rule._converters.items():
        if isinstance(converter, IntegerConverter) and not value.isdigit():
            return None  # not routed at all: the 404 of the URL map
        if isinstance(converter, AnyConverter):
            part = next(iter(converter.items)) if hasattr(converter, "items") else "x"
        else:
            part = quote(value, safe="")
        path = re.sub(r"<(?:[^:<>]+:)?" + name + r"(?:\([^)]*\))?>", part, path)
    return path


def _has_id(rule) -> bool:
    """Whether the rule has an <int:...> part."""
    return any(isinstance(c, IntegerConverter) for c in rule._converters.values())


def _walk(app, user, api_key) -> list[str]:
    """Send every hostile value to every route; the answers of 500 and above."""
    query_names = sorted(_query_args() | _field_names())
    form_names = sorted(_field_names())
    api_names = sorted(_api_fields() | _query_args())
    token = csrf_from(user.get("/accounts/new/customer").get_data(as_text=True))
    failures = []
    # The login form's failed attempts end the session: the auth routes come last.
    rules = sorted(app.url_map.iter_rules(), key=lambda rule: rule.endpoint.startswith("auth."))
    for rule in rules:
        if SKIPPED_ENDPOINTS.search(rule.endpoint):
            continue
        on_api = rule.rule.startswith("/api/")
        headers = {"Authorization": f"Bearer {api_key}"} if on_api else {}
        for label, value in HOSTILE.items():
            path = _path(rule, value)
            if path is None:
                continue
            query = dict.fromkeys(api_names if on_api else query_names, value)
            for method in sorted(rule.methods & {"GET", "POST", "PATCH", "PUT", "DELETE"}):
                kwargs = {"headers": headers}
                if method == "GET":
                    kwargs["query_string"] = query
                elif on_api:
                    kwargs["json"] = dict.fromkeys(api_names, value)
                else:
                    kwargs["data"] = {**dict.fromkeys(form_names, value), "csrf_token": token}
                try:
                    response = user.client.open(path, method=method, **kwargs)
                except Exception as error:  # raised by the view (TESTING propagates it)
                    where = traceback.extract_tb(error.__traceback__)
                    inside = [f"{f.filename}:{f.lineno}" for f in where if "/portal/" in f.filename]
                    failures.append(f"{method} {rule.rule} {label}: {error!r:.300} at {inside}")
                    continue
                if response.status_code >= 500:
                    failures.append(f"{method} {rule.rule} {label}: {response.status_code}")
                elif label in BEYOND and _has_id(rule) and response.status_code != 404:
                    # An id beyond the database's range finds nothing, whatever the method.
                    failures.append(f"{method} {rule.rule} {label}: {response.status_code}")
        if not rule.endpoint.startswith("auth.") and user.get("/dashboard/").status_code != 200:
            failures.append(f"{rule.rule} ended the walker's session: the rest is untested")
            break
    return failures


@pytest.mark.usefixtures("customer", "tenants", "vat")
def test_no_route_answers_5xx_to_hostile_values(app, as_admin, api_key):
    """20-digit, negative, NUL and 10,000-character values in URLs, queries, forms and JSON."""
    failures = _walk(app, as_admin, api_key)
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("depth", [33, 100_000])
def test_deeply_nested_json_is_a_400(api, rest, depth):
    """The call endpoints and the REST API refuse JSON nested deeper than 32 with a message."""
    body = '{"call_id": ' + "[" * depth + "]" * depth + "}"
    headers = {"Content-Type": "application/json"}
    answers = [
        api.post("/api/v1/calls/authorize", data=body, headers=headers),
        api.post("/api/v1/calls/c1/end", data=body, headers=headers),
        rest.post("/accounts", data=body, headers=headers),
    ]
    for answer in answers:
        assert answer.status_code == 400, answer.get_data(as_text=True)
        assert "nested deeper than 32" in answer.get_json()["error"]


def test_json_nested_32_deep_is_read(api):
    """32 levels are still parsed (and refused for what they say, with the field named)."""
    body = '{"call_id": "c1", "destination": "44", "account": ' + "[" * 31 + "]" * 31 + "}"
    answer = api.post(
        "/api/v1/calls/authorize", data=body, headers={"Content-Type": "application/json"}
    )
    assert answer.status_code == 400
    assert "account" in answer.get_json()["fields"]


@pytest.mark.parametrize(
    "target",
    ["/accounts/\r\nSet-Cookie: a=b", "/\\evil.example/", "/\\\\evil.example", "/\t/evil.example"],
)
def test_login_refuses_a_next_with_control_characters_or_backslashes(user, admin, target):
    """CR/LF (header splitting) and backslashes (read as //host) send the user home instead."""
    url = "/login?next=" + quote(target, safe="")
    token = csrf_from(user.client.get(url).get_data(as_text=True))
    response = user.client.post(
        url, data={"identifier": admin.account_number, "password": "x" * 8, "csrf_token": token}
    )
    assert response.status_code < 500
    response = user.client.post(
        url,
        data={"identifier": admin.account_number, "password": PASSWORD, "csrf_token": token},
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/"


def test_the_id_pattern_matches_exactly_the_numbers_up_to_its_limit():
    """The int converter's pattern: every number up to the limit, none above, for any limit."""
    for limit in (0, 5, 10, 90, 209, 1000, 1999):
        pattern = re.compile(at_most_pattern(limit) + r"\Z")
        assert [n for n in range(3000) if pattern.match(str(n))] == list(range(limit + 1))
    pattern = re.compile(at_most_pattern(MAX_INT) + r"\Z")
    for number in (1, 999_999_999, 1_999_999_999, 2_147_483_639, MAX_INT):
        assert pattern.match(str(number)), number
    for number in (MAX_INT + 1, 2_147_483_650, 2_999_999_999, 9_999_999_999, 10**19):
        assert not pattern.match(str(number)), number
