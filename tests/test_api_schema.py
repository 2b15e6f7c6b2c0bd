"""schemathesis against the OpenAPI document: no 500, and every answer matches the document."""

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
    headers = {"Authorization": f"Bearer {api_key}"}
    if _headers_made_invalid(case):
        headers = {}  # the case drops or breaks the key on purpose: send it as generated
    case.call_and_validate(app=one_context_per_request(app), headers=headers, checks=CHECKS)


def _headers_made_invalid(case) -> bool:
    """True when schemathesis generated the case's headers to break the schema (no key)."""
    component = case.meta.components.get(ParameterLocation.HEADER) if case.meta else None
    return component is not None and component.mode == GenerationMode.NEGATIVE
