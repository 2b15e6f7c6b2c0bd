"""Configuration -> Taxes: list, create, edit, (de)activate."""

from flask import flash, render_template, request, url_for
from flask_login import current_user

from portal.accounts.forms import plain_decimal
from portal.extensions import db
from portal.htmx import redirect_to
from portal.models import Tax
from portal.security import MANAGERS, get_tax_or_404, roles_required, visible_taxes
from portal.taxes import bp
from portal.taxes.forms import TaxForm
from portal.taxes.service import create_tax, set_tax_status, update_tax
from portal.web import posted_status, submit


@bp.route("/")
@roles_required(*MANAGERS)
def index():
    """List the taxes the caller may manage."""
    taxes = db.session.scalars(
        visible_taxes(current_user).order_by(Tax.status, Tax.priority, Tax.name)
    )
    return render_template("taxes/index.html", taxes=list(taxes))


@bp.route("/new", methods=["GET", "POST"])
@roles_required(*MANAGERS)
def new():
    """Create a tax."""
    form = TaxForm()
    tax = submit(form, lambda data: create_tax(current_user, data))
    if tax:
        flash(f'Tax "{tax.name}" created.', "success")
        return redirect_to(url_for("taxes.index"))
    status = 422 if request.method == "POST" else 200
    return render_template("taxes/form.html", form=form, tax=None), status


@bp.route("/<int:tax_id>/edit", methods=["GET", "POST"])
@roles_required(*MANAGERS)
def edit(tax_id: int):
    """Edit a tax."""
    tax = get_tax_or_404(current_user, tax_id)
    initial = {
        "name": tax.name,
        "rate": plain_decimal(tax.rate),
        "fixed_amount": plain_decimal(tax.fixed_amount),
        "priority": tax.priority,
        "status": tax.status.value,
    }
    form = TaxForm(data=None if request.method == "POST" else initial)
    if submit(form, lambda data: update_tax(current_user, tax, data)):
        flash(f'Tax "{tax.name}" saved.', "success")
        return redirect_to(url_for("taxes.index"))
    status = 422 if request.method == "POST" else 200
    return render_template("taxes/form.html", form=form, tax=tax), status


@bp.route("/<int:tax_id>/status", methods=["POST"])
@roles_required(*MANAGERS)
def change_status(tax_id: int):
    """Activate or deactivate a tax."""
    tax = get_tax_or_404(current_user, tax_id)
    status = posted_status()
    set_tax_status(current_user, tax, status)
    flash(f'Tax "{tax.name}" is now {status.value}.', "success")
    return redirect_to(url_for("taxes.index"))
