"""Create, list and revoke API keys; a new key is shown once."""

from flask import abort, flash, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from wtforms import StringField

from portal.api.keys import create_key, revoke_key
from portal.apikeys import bp
from portal.extensions import db
from portal.htmx import redirect_to
from portal.models import ApiKey, Role
from portal.security import roles_required
from portal.web import ServiceForm, submit


class ApiKeyForm(ServiceForm):
    """A key's name and the addresses it may be used from."""

    name = StringField("Name", description="Where the key is used, e.g. FreeSWITCH fs1.")
    allowed_ips = StringField(
        "Allowed addresses",
        description="Comma-separated IPs or networks (10.0.0.0/24); empty: any address.",
    )


@bp.route("/", methods=["GET", "POST"])
@roles_required(Role.ADMIN)
def index():
    """The keys, and a form for a new one (its secret is shown in this answer only)."""
    form = ApiKeyForm()
    created = submit(form, lambda data: create_key(current_user, data["name"], data["allowed_ips"]))
    keys = list(db.session.scalars(select(ApiKey).order_by(ApiKey.id.desc())))
    status = 422 if request.method == "POST" and not created else 200
    return render_template(
        "apikeys/index.html", form=form, keys=keys, new_key=created[1] if created else None
    ), status


@bp.route("/<int:key_id>/revoke", methods=["POST"])
@roles_required(Role.ADMIN)
def revoke(key_id: int):
    """Revoke a key at once."""
    row = db.session.get(ApiKey, key_id)
    if row is None:
        abort(404)
    revoke_key(current_user, row)
    flash(f'API key "{row.name}" revoked.', "success")
    return redirect_to(url_for("apikeys.index"))
