"""Tax list and create form."""

from flask import flash, render_template, request, url_for
from flask_login import current_user

from portal.extensions import db
from portal.htmx import redirect_to
from portal.models import Status, Tax
from portal.security import MANAGERS, owned_taxes, roles_required
from portal.taxes import bp
from portal.taxes.forms import TaxForm
from portal.taxes.service import create_tax


@bp.route("/")
@roles_required(*MANAGERS)
def index():
    """List the caller's taxes."""
    taxes = db.session.scalars(owned_taxes(current_user).order_by(Tax.priority, Tax.name))
    return render_template("taxes/index.html", taxes=list(taxes))


@bp.route("/new", methods=["GET", "POST"])
@roles_required(*MANAGERS)
def new():
    """Create a tax."""
    form = TaxForm()
    if form.validate_on_submit():
        try:
            tax = create_tax(
                current_user,
                form.name.data,
                form.rate.data,
                form.fixed_amount.data,
                form.priority.data,
                Status(form.status.data),
            )
        except ValueError as error:
            field, _, message = str(error).partition(": ")
            form[field].errors = [message]
        else:
            flash(f'Tax "{tax.name}" created.', "success")
            return redirect_to(url_for("taxes.index"))
    status = 422 if request.method == "POST" else 200
    return render_template("taxes/form.html", form=form), status
