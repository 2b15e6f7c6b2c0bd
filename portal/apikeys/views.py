"""Create, list and revoke API keys; a new key is shown once."""

from flask import Blueprint, abort, flash, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from wtforms import StringField

from portal.api.openapi import document
from portal.apikeys.service import create_key, revoke_key
from portal.extensions import db
from portal.htmx import redirect_to
from portal.models import ApiKey, Role
from portal.security import MANAGERS, roles_required
from portal.web import ServiceForm, submit

bp = Blueprint("apikeys", __name__, url_prefix="/api-keys")


class ApiKeyForm(ServiceForm):
    """A key's name and the addresses it may be used from."""

    name = StringField("Name", description="Where the key is used, e.g. FreeSWITCH fs1.")
    allowed_ips = StringField(
        "Allowed addresses",
        description="Comma-separated IPs or networks (10.0.0.0/24); empty: any address.",
    )


def _own_keys():
    """The keys the current user manages: admins every key, others the keys they made."""
    query = select(ApiKey)
    if current_user.role != Role.ADMIN:
        query = query.where(ApiKey.owner_id == current_user.id)
    return query


@bp.route("/", methods=["GET", "POST"])
@roles_required(*MANAGERS)
def index():
    """The keys, and a form for a new one (its secret is shown in this answer only)."""
    form = ApiKeyForm()
    created = submit(form, lambda data: create_key(current_user, data["name"], data["allowed_ips"]))
    keys = list(db.session.scalars(_own_keys().order_by(ApiKey.id.desc())))
    status = 422 if request.method == "POST" and not created else 200
    return render_template(
        "apikeys/index.html", form=form, keys=keys, new_key=created[1] if created else None
    ), status


@bp.route("/<int:key_id>/revoke", methods=["POST"])
@roles_required(*MANAGERS)
def revoke(key_id: int):
    """Revoke a key at once."""
    row = db.session.scalar(_own_keys().where(ApiKey.id == key_id))
    if row is None:
        abort(404)
    revoke_key(current_user, row)
    flash(f'API key "{row.name}" revoked.', "success")
    return redirect_to(url_for("apikeys.index"))


@bp.route("/reference")
@roles_required(*MANAGERS)
def reference():
    """The REST API's reference, rendered from its OpenAPI document."""
    api = document()
    schemas = api["components"]["schemas"]
    return render_template(
        "apikeys/reference.html",
        api=api,
        operations=[
            (path, method.upper(), item)
            for path, methods in api["paths"].items()
            for method, item in methods.items()
        ],
        schemas={name: _fields(schema) for name, schema in sorted(schemas.items())},
        describe=_type_text,
    )


def _type_text(schema: dict) -> str:
    """A JSON schema as a short text: "string (at most 80)", "Status or null", ..."""
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[-1]
    if "anyOf" in schema:
        return " or ".join(_type_text(option) for option in schema["anyOf"])
    if "enum" in schema:
        return " | ".join(f'"{value}"' for value in schema["enum"])
    if schema.get("type") == "array":
        return f"list of {_type_text(schema.get('items', {}))}"
    text = str(schema.get("type", "any"))
    limits = []
    if "maxLength" in schema:
        limits.append(f"at most {schema['maxLength']} characters")
    if "pattern" in schema:
        limits.append(f"matching {schema['pattern']}")
    if "minimum" in schema or "maximum" in schema:
        limits.append(f"{schema.get('minimum', '…')} to {schema.get('maximum', '…')}")
    return text + (f" ({', '.join(limits)})" if limits else "")


def _fields(schema: dict) -> dict:
    """A schema's fields as (name, type text, required, description) rows, or its enum."""
    required = set(schema.get("required", []))
    rows = [
        (name, _type_text(field), name in required, field.get("description", ""))
        for name, field in schema.get("properties", {}).items()
    ]
    return {"description": schema.get("description", ""), "rows": rows, "type": _type_text(schema)}
