"""Configuration -> Products: list, create, edit, (de)activate, prefix CSV; subscriptions."""

from flask import abort, flash, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select

from portal.accounts.forms import choices
from portal.extensions import db
from portal.htmx import redirect_to
from portal.models import Product, ProductPrefix, Role, Subscription
from portal.products import bp
from portal.products.forms import CancelForm, PrefixImportForm, ProductForm, SubscribeForm
from portal.products.service import (
    create_product,
    import_prefixes,
    prefixes_text,
    set_product_status,
    update_product,
)
from portal.products.subscriptions import (
    account_today,
    cancel,
    offered_products,
    status_of,
    subscribe,
    subscriptions_of,
)
from portal.rules.currency import plain_amount
from portal.security import (
    MANAGERS,
    get_account_or_404,
    get_product_or_404,
    get_subscription_or_404,
    roles_required,
    visible_products,
)
from portal.tariffs.rate_csv import MAX_FILE_BYTES
from portal.web import posted_status, submit


@bp.route("/")
@roles_required(*MANAGERS)
def index():
    """List the products the caller may manage, with their prefix and subscription counts."""
    prefixes = (
        select(ProductPrefix.product_id, func.count().label("n"))
        .group_by(ProductPrefix.product_id)
        .subquery()
    )
    running = (
        select(Subscription.product_id, func.count().label("n"))
        .where(Subscription.cancelled_at.is_(None))
        .group_by(Subscription.product_id)
        .subquery()
    )
    rows = db.session.execute(
        visible_products(current_user)
        .add_columns(func.coalesce(prefixes.c.n, 0), func.coalesce(running.c.n, 0))
        .outerjoin(prefixes, prefixes.c.product_id == Product.id)
        .outerjoin(running, running.c.product_id == Product.id)
        .order_by(Product.status, Product.name, Product.id)
    ).all()
    return render_template("products/index.html", rows=rows)


@bp.route("/new", methods=["GET", "POST"])
@roles_required(*MANAGERS)
def new():
    """Create a product."""
    form = ProductForm()
    if request.method == "GET" and current_user.role == Role.RESELLER:
        form.currency.data = current_user.currency
    product = submit(form, lambda data: create_product(current_user, data))
    if product:
        flash(f'Product "{product.name}" created.', "success")
        return redirect_to(url_for("products.index"))
    status = 422 if request.method == "POST" else 200
    return render_template("products/form.html", form=form, product=None), status


def _render_form(form, product, status: int, import_form=None, report=None):
    """The edit page: the product's fields and its prefix CSV import."""
    return render_template(
        "products/form.html",
        form=form,
        product=product,
        import_form=import_form or PrefixImportForm(),
        report=report,
    ), status


@bp.route("/<int:product_id>/edit", methods=["GET", "POST"])
@roles_required(*MANAGERS)
def edit(product_id: int):
    """Edit a product."""
    product = get_product_or_404(current_user, product_id)
    initial = {
        "name": product.name,
        "description": product.description,
        "currency": product.currency,
        "period": product.period.value,
        "price": plain_amount(product.price, product.currency),
        "setup_fee": plain_amount(product.setup_fee, product.currency),
        "free_minutes": product.free_minutes,
        "prefixes": prefixes_text(product),
        "status": product.status.value,
    }
    form = ProductForm(data=None if request.method == "POST" else initial)
    if submit(form, lambda data: update_product(current_user, product, data)):
        flash(f'Product "{product.name}" saved.', "success")
        return redirect_to(url_for("products.index"))
    return _render_form(form, product, 422 if request.method == "POST" else 200)


@bp.route("/<int:product_id>/prefixes", methods=["POST"])
@roles_required(*MANAGERS)
def import_csv(product_id: int):
    """Replace the product's prefixes with a CSV file's: all rows are saved or none."""
    product = get_product_or_404(current_user, product_id)
    form = ProductForm(formdata=None, data={"prefixes": prefixes_text(product)})
    import_form = PrefixImportForm()
    if not import_form.validate_on_submit():
        return _render_form(form, product, 422, import_form)
    parsed = import_prefixes(current_user, product, import_form.file.data.read(MAX_FILE_BYTES + 1))
    if not parsed.ok:
        return _render_form(form, product, 422, import_form, parsed)
    flash(f"Imported {len(parsed.prefixes)} prefixes into “{product.name}”.", "success")
    return redirect_to(url_for("products.edit", product_id=product.id))


@bp.route("/<int:product_id>/status", methods=["POST"])
@roles_required(*MANAGERS)
def change_status(product_id: int):
    """Activate or deactivate a product."""
    product = get_product_or_404(current_user, product_id)
    status = posted_status()
    set_product_status(current_user, product, status)
    flash(f'Product "{product.name}" is now {status.value}.', "success")
    return redirect_to(url_for("products.index"))


@bp.app_template_global()
def subscription_panel(account, form=None) -> dict:
    """What the account page's Subscriptions panel shows: its subscriptions and the offer."""
    today = account_today(account)
    products = list(db.session.scalars(offered_products(account)))
    form = form or SubscribeForm(formdata=None)
    form.product_id.choices = choices((p.id, p.name) for p in products)
    return {
        "rows": own_subscriptions(account),
        "form": form,
        "cancel_form": CancelForm(formdata=None),
        "today": today,
        "can_manage": current_user.role in MANAGERS,
    }


@bp.app_template_global()
def own_subscriptions(account) -> list:
    """(subscription, status) of the account, newest first: its own read-only panel."""
    today = account_today(account)
    return [(s, status_of(s, today)) for s in subscriptions_of(account)]


@bp.route("/subscribe/<int:account_id>", methods=["POST"])
@roles_required(*MANAGERS)
def subscribe_account(account_id: int):
    """Subscribe an account (one the caller may manage) to a product of its owner."""
    account = get_account_or_404(current_user, account_id)
    if account.role not in (Role.CUSTOMER, Role.RESELLER):
        abort(404)
    form = SubscribeForm()
    subscription = submit(form, lambda data: subscribe(current_user, account, data))
    if subscription is None:
        errors = "; ".join(e for field in form for e in field.errors) or "Check the form."
        flash(f"Not subscribed: {errors}", "error")
    else:
        flash(f"Subscribed to “{subscription.product.name}”.", "success")
    return redirect_to(url_for("accounts.show", account_id=account.id))


@bp.route("/subscriptions/<int:account_id>/<int:subscription_id>/cancel", methods=["POST"])
@roles_required(*MANAGERS)
def cancel_subscription(account_id: int, subscription_id: int):
    """Cancel a subscription at its period's end or now with a credit."""
    account = get_account_or_404(current_user, account_id)
    subscription = get_subscription_or_404(current_user, account, subscription_id)
    form = CancelForm()
    credit = submit(form, lambda data: cancel(current_user, account, subscription, data["mode"]))
    if credit is None:
        errors = "; ".join(e for field in form for e in field.errors) or "Check the form."
        flash(f"Not cancelled: {errors}", "error")
    else:
        flash(f"Subscription to “{subscription.product.name}” cancelled.", "success")
    return redirect_to(url_for("accounts.show", account_id=account.id))
