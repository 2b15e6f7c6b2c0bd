"""Rate group list and create form."""

from flask import flash, render_template, request, url_for
from flask_login import current_user

from portal.extensions import db
from portal.htmx import redirect_to
from portal.models import RateGroup, Status
from portal.security import MANAGERS, owned_rate_groups, roles_required
from portal.tariffs import bp
from portal.tariffs.forms import RateGroupForm
from portal.tariffs.service import DuplicateName, create_rate_group


@bp.route("/")
@roles_required(*MANAGERS)
def index():
    """List the caller's rate groups."""
    groups = db.session.scalars(owned_rate_groups(current_user).order_by(RateGroup.name))
    return render_template("tariffs/index.html", groups=list(groups))


@bp.route("/new", methods=["GET", "POST"])
@roles_required(*MANAGERS)
def new():
    """Create a rate group."""
    form = RateGroupForm()
    if form.validate_on_submit():
        try:
            group = create_rate_group(current_user, form.name.data, Status(form.status.data))
        except DuplicateName as error:
            form.name.errors = [str(error)]
        else:
            flash(f'Rate group "{group.name}" created.', "success")
            return redirect_to(url_for("tariffs.index"))
    status = 422 if request.method == "POST" else 200
    return render_template("tariffs/form.html", form=form), status
