"""API routes declared once with their schemas: models validate requests and make the OpenAPI."""

import functools
import re
from dataclasses import dataclass, field
from typing import TypeVar

from flask import request
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema

from portal.api import bp
from portal.api.errors import ApiError, check_json_depth
from portal.api.schemas import ErrorOut

MAX_BODY_BYTES = 256 * 1024
M = TypeVar("M", bound=BaseModel)
PUBLIC_ENDPOINTS = {"api.openapi_document"}
ERRORS = {
    400: "Malformed request: not JSON, or not a JSON object.",
    401: "Missing, unknown or revoked API key.",
    403: "The key may not be used from this address.",
    404: "Not found, or not visible to this key's owner.",
    409: "Another request with this Idempotency-Key is still running.",
    413: "The body is larger than the API accepts.",
    422: "Invalid fields: `fields` names each one with its reason.",
    503: "Busy: retry the request.",
}


@dataclass
class Operation:
    """One documented API operation."""

    rule: str
    method: str
    endpoint: str
    summary: str
    tag: str
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    responses: dict[int, type[BaseModel] | None] = field(default_factory=dict)
    idempotent: bool = False
    errors: tuple[int, ...] = ()
    # The call API's own conventions: invalid fields are a 400, what a 409 means, a form body
    # and an XML answer (mod_xml_curl), a key also taken as Basic auth's password.
    invalid_status: int = 422
    notes: dict[int, str] = field(default_factory=dict)
    form: bool = False
    answer_type: str = "application/json"
    basic_auth: bool = False


OPERATIONS: list[Operation] = []


def operation(
    rule: str, method: str, *, summary: str, tag: str, responses: dict, blueprint=bp, **options
):
    """Register a view as an API operation: a route plus its documentation."""

    def decorator(view):
        endpoint = view.__name__
        declare(rule, method, f"{blueprint.name}.{endpoint}", summary, tag, responses, **options)
        return blueprint.route(rule, methods=[method], endpoint=endpoint)(view)

    return decorator


def declare(
    rule: str, method: str, endpoint: str, summary: str, tag: str, responses: dict, **options
) -> None:
    """Document an operation answered outside Flask's routes (the softswitch's WSGI lane)."""
    OPERATIONS.append(
        Operation(rule, method, endpoint, summary, tag, responses=responses, **options)
    )


def _field_errors(error: ValidationError) -> dict[str, str]:
    """Pydantic's errors as {field: reason}, the shape the forms' errors have."""
    fields: dict[str, str] = {}
    for item in error.errors(include_url=False):
        location = ".".join(str(part) for part in item["loc"]) or "body"
        if item["type"] == "extra_forbidden":
            message = "Unknown field."
        elif item["type"] == "missing":
            message = "Required."
        else:
            message = item["msg"].removeprefix("Value error, ")
        fields.setdefault(location, message)
    return fields


def parse_body(model: type[M]) -> M:
    """The request's JSON body as `model`, or a 400/413/422 ApiError."""
    # Checked before reading: a chunked body without Content-Length is cut off at the limit too.
    request.max_content_length = MAX_BODY_BYTES
    raw = request.get_data(cache=True)  # 413 (as JSON) when larger
    if request.mimetype != "application/json":
        raise ApiError(400, "Send a JSON object with Content-Type: application/json.")
    check_json_depth(raw)
    try:
        return model.model_validate_json(raw or b"null")
    except ValidationError as error:
        if any(item["type"] == "json_invalid" for item in error.errors()):
            raise ApiError(400, "The body is not valid JSON.") from error
        if any(item["type"] == "model_type" and not item["loc"] for item in error.errors()):
            raise ApiError(400, "Send a JSON object.") from error
        raise ApiError(422, "Invalid fields.", _field_errors(error)) from error


def parse_query(model: type[M]) -> M:
    """The query string as `model`, or a 422 ApiError."""
    try:
        return model.model_validate(request.args.to_dict())
    except ValidationError as error:
        raise ApiError(422, "Invalid query parameters.", _field_errors(error)) from error


def _path(rule: str) -> tuple[str, list[dict]]:
    """A Flask rule as an OpenAPI path, with its path parameters."""
    parameters = []

    def replace(match: re.Match) -> str:
        converter, name = match.group(1), match.group(2)
        schema = (
            {"type": "integer", "minimum": 1, "maximum": 2**31 - 1}
            if converter == "int"
            else {"type": "string", "maxLength": 128}
        )
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
        return "{" + name + "}"

    path = re.sub(r"<(?:(\w+):)?(\w+)>", replace, rule)
    return bp.url_prefix + path, parameters


def _not_null(schema: dict) -> dict:
    """A query parameter's schema without its null alternative (a query string has no null)."""
    schema.pop("default", None) if schema.get("default") is None else None
    options = [s for s in schema.pop("anyOf", []) if s.get("type") != "null"]
    if len(options) == 1:
        schema.update(options[0])
    elif options:
        schema["anyOf"] = options
    return schema


def _query_parameters(model: type[BaseModel], schema: dict) -> list[dict]:
    """Query parameters from a model's JSON schema."""
    properties = {name: _not_null(value) for name, value in schema["properties"].items()}
    return [
        {
            "name": name,
            "in": "query",
            "required": False,
            "description": properties[name].pop("description", ""),
            "schema": properties[name],
        }
        for name in model.model_fields
    ]


@functools.cache
def document() -> dict:
    """The OpenAPI 3.1 document of every registered operation (made once; do not modify)."""
    models = {ErrorOut}
    for op in OPERATIONS:
        models.update(m for m in (op.body, *op.responses.values()) if m is not None)
    pairs = [(m, "validation") for m in models] + [(m, "serialization") for m in models]
    refs, definitions = models_json_schema(pairs, ref_template="#/components/schemas/{model}")
    schemas = definitions.get("$defs", {})
    error_ref = refs[(ErrorOut, "serialization")]
    paths: dict[str, dict] = {}
    for op in OPERATIONS:
        path, parameters = _path(op.rule)
        if op.query is not None:
            query_schema = op.query.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(query_schema.pop("$defs", {}))
            parameters += _query_parameters(op.query, query_schema)
        if op.idempotent:
            parameters.append(
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "description": "A retried request with the same key and body creates "
                    "nothing twice; it gets the first answer (without one-time secrets).",
                    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                }
            )
        responses = {}
        for code, model in op.responses.items():
            entry = {"description": "OK" if code < 300 else ERRORS.get(code, "")}
            if model is not None:
                entry["content"] = {"application/json": {"schema": refs[(model, "serialization")]}}
            elif op.answer_type != "application/json":
                entry["content"] = {op.answer_type: {"schema": {"type": "string"}}}
            responses[str(code)] = entry
        codes = {400, 401, 403, 413} | set(op.errors)
        if op.body is not None or op.query is not None:
            codes.add(op.invalid_status)
        if op.idempotent:
            codes |= {409, 422}
        for code in sorted(codes):
            responses[str(code)] = {
                "description": op.notes.get(code, ERRORS[code]),
                "content": {"application/json": {"schema": error_ref}},
            }
        item = {
            "operationId": op.endpoint.partition(".")[2],
            "summary": op.summary,
            "tags": [op.tag],
            "parameters": parameters,
            "responses": responses,
        }
        if op.endpoint in PUBLIC_ENDPOINTS:
            item["security"] = []
        elif op.basic_auth:
            item["security"] = [{"bearerAuth": []}, {"basicAuth": []}]
        if op.body is not None:
            media = "application/x-www-form-urlencoded" if op.form else "application/json"
            item["requestBody"] = {
                "required": not op.form,  # mod_xml_curl's form: none asks for nobody (not found)
                "content": {media: {"schema": refs[(op.body, "validation")]}},
            }
        paths.setdefault(path, {})[op.method.lower()] = item
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "VoIP billing portal API",
            "version": "1",
            "description": "Accounts, rate groups, taxes and money for machines, and call "
            "authorization for softswitches. Every request goes through the same rules as the "
            "portal's forms. Authenticate with an API key: "
            "`Authorization: Bearer <key>`; a key acts with the role and tenant of the account "
            "that created it.",
        },
        "servers": [{"url": "/"}],
        "security": [{"bearerAuth": []}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer"},
                "basicAuth": {
                    "type": "http",
                    "scheme": "basic",
                    "description": "Any user name; the API key as the password (mod_xml_curl).",
                },
            },
        },
    }
