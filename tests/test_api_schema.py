"""schemathesis against the OpenAPI document: no 500, and every answer matches the document."""

import jsonschema_rs
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.parameters import ParameterLocation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from portal.api.openapi import document
from portal.models import Role
from tests.conftest import make_account, make_test_app

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


def _document() -> dict:
    """The document the app serves (it needs no database to be made)."""
    with make_test_app("sqlite://").app_context():
        return document()


schema = schemathesis.openapi.from_dict(_document())


@pytest.fixture
def seeded(app, admin, default_rate_group, vat):
    """Accounts for the generated ids to find now and then."""
    for number in ("6000000001", "6000000002"):
        make_account(Role.CUSTOMER, number, rate_group_id=default_rate_group.id, pin="1234")


def one_context_per_request(app):
    """The app as WSGI, each request in its own app context and session, as under gunicorn."""

    def wsgi(environ, start_response):
        with app.app_context():
            return app(environ, start_response)

    return wsgi


@schema.parametrize()
# derandomize: the same examples on every run, so CI is repeatable (a failure reproduces).
@settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
def test_api_matches_its_document(case, app, api_key, seeded):
    # schemathesis asks for gzip but reads a WSGI answer without decoding it; compression has
    # its own tests (tests/test_serving.py).
    plain = {"Accept-Encoding": "identity"}
    headers = {**plain, "Authorization": f"Bearer {api_key}"}
    if _headers_made_invalid(case):
        headers = plain  # the case drops or breaks the key on purpose: send it as generated
    case.call_and_validate(app=one_context_per_request(app), headers=headers, checks=CHECKS)


def _headers_made_invalid(case) -> bool:
    """True when schemathesis generated the case's headers to break the schema (no key)."""
    component = case.meta.components.get(ParameterLocation.HEADER) if case.meta else None
    return component is not None and component.mode == GenerationMode.NEGATIVE


def _request_schema(path: str) -> jsonschema_rs.Draft202012Validator:
    """A validator of the documented JSON body of POST `path`."""
    document = _document()
    body = document["paths"][path]["post"]["requestBody"]["content"]["application/json"]
    return jsonschema_rs.Draft202012Validator(
        {**body["schema"], "components": document["components"]}
    )


AUTHORIZATIONS = [
    {"call_id": "c1", "destination": "442079460958", "account": "6000000001"},
    {"call_id": "c2", "destination": "+44#*1", "sip_username": "ann"},
    {"call_id": "c3", "destination": "44", "account": None, "sip_username": "ann"},
    {"call_id": "c4", "destination": "44", "account": "6000000001", "sip_username": "ann"},
    {"call_id": "c5", "destination": "44"},
    {"call_id": "c6", "destination": "44", "account": "6000000001", "extra": 1},
    {"call_id": "c7", "destination": " 44", "account": "6000000001"},
    {"call_id": "c8", "destination": "44\n", "account": "6000000001"},
    {"call_id": "c9", "destination": "4" * 33, "account": "6000000001"},
    {"call_id": "x" * 129, "destination": "44", "account": "6000000001"},
    {"call_id": "", "destination": "44", "account": "6000000001"},
    {"call_id": "c\x00", "destination": "44", "account": "6000000001"},
    {"call_id": 7, "destination": "44", "account": "6000000001"},
    {"call_id": "c10", "destination": 44, "account": "6000000001"},
    {"call_id": "c11", "destination": "44", "account": "1" * 21},
    {"call_id": "c12", "destination": "44", "sip_username": ""},
    {"destination": "44", "account": "6000000001"},
]
ENDS = [
    {"duration_seconds": 10},
    {"duration_seconds": 0, "hangup_cause": "NORMAL_CLEARING"},
    {"duration_seconds": 86401},
    {"duration_seconds": -1},
    {"duration_seconds": True},
    {"duration_seconds": 1.5},
    {"duration_seconds": "10"},
    {"duration_seconds": 10, "hangup_cause": None},
    {"duration_seconds": 10, "hangup_cause": "X" * 41},
    {"duration_seconds": 10, "hangup_cause": "N\x00"},
    {"duration_seconds": 10, "billsec": 10},
    {},
]


def test_the_call_api_accepts_only_what_its_document_allows(app, client, api_key, seeded):
    # The call API checks its requests by hand (for speed); its schemas only document them.
    # Whatever it accepts must be valid in the document, and what the document refuses must be
    # a 400, so a client built from the document never sends what gets refused by surprise.
    headers = {"Authorization": f"Bearer {api_key}"}
    outcomes = []
    cases = [("/api/v1/calls/authorize", body) for body in AUTHORIZATIONS]
    client.post("/api/v1/calls/authorize", json=AUTHORIZATIONS[0], headers=headers)  # c1 live
    cases += [("/api/v1/calls/c1/end", body) for body in ENDS]
    for url, body in cases:
        schema = "/api/v1/calls/{call_id}/end" if url.endswith("/end") else url
        valid = _request_schema(schema).is_valid(body)
        status = client.post(url, json=body, headers=headers).status_code
        if status == 200:
            assert valid, f"accepted but not valid in the document: {body!r}"
        if not valid:
            assert status == 400, f"invalid in the document but not refused: {body!r}"
        outcomes.append((status, valid))
    assert {(200, True), (400, False)} <= set(outcomes)  # both kinds were tried
