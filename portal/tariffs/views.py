"""Tariff -> Rate Groups: list, create, edit, status, rates, CSV import/export, number lookup."""

from flask import Response, abort, current_app, flash, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select
from werkzeug.exceptions import RequestEntityTooLarge

from portal.background import records
from portal.extensions import db
from portal.htmx import redirect_to, render_fragment, render_page_or_fragment
from portal.models import Rate, RateGroup
from portal.security import MANAGERS, get_rate_group_or_404, roles_required, visible_rate_groups
from portal.tariffs import bp
from portal.tariffs.forms import RateForm, RateGroupForm, RateImportForm
from portal.tariffs.rate_csv import MAX_FILE_BYTES, line_count, write_rates
from portal.tariffs.rate_files import (
    RateImportFailed,
    export_runs_inline,
    file_name,
    import_rate_file,
    import_runs_inline,
)
from portal.tariffs.service import (
    accounts_using,
    add_rate,
    count_rates,
    create_rate_group,
    delete_rate,
    exported_rates,
    lookup_rate,
    set_rate_group_status,
    update_rate,
    update_rate_group,
)
from portal.web import posted_status, submit

RATES_PER_PAGE = 50


def _rate_or_404(group: RateGroup, rate_id: int) -> Rate:
    """A rate of this (already visible) group, or 404."""
    rate = db.session.scalar(select(Rate).where(Rate.id == rate_id, Rate.rate_group_id == group.id))
    if rate is None:
        abort(404)
    return rate


@bp.route("/")
@roles_required(*MANAGERS)
def index():
    """List the rate groups the caller may manage, with their rate counts."""
    counts = (
        select(Rate.rate_group_id, func.count().label("rates"))
        .group_by(Rate.rate_group_id)
        .subquery()
    )
    rows = db.session.execute(
        visible_rate_groups(current_user)
        .add_columns(func.coalesce(counts.c.rates, 0))
        .outerjoin(counts, counts.c.rate_group_id == RateGroup.id)
        .order_by(RateGroup.status, RateGroup.name)
    ).all()
    return render_template("tariffs/index.html", rows=rows)


@bp.route("/new", methods=["GET", "POST"])
@roles_required(*MANAGERS)
def new():
    """Create a rate group."""
    form = RateGroupForm()
    group = submit(form, lambda data: create_rate_group(current_user, data))
    if group:
        flash(f'Rate group "{group.name}" created. Add its rates below.', "success")
        return redirect_to(url_for("tariffs.show", group_id=group.id))
    status = 422 if request.method == "POST" else 200
    return render_template("tariffs/form.html", form=form, group=None), status


@bp.route("/<int:group_id>/edit", methods=["GET", "POST"])
@roles_required(*MANAGERS)
def edit(group_id: int):
    """Rename, re-price or (de)activate a rate group."""
    group = get_rate_group_or_404(current_user, group_id)
    form = RateGroupForm(obj=None if request.method == "POST" else group)
    if request.method == "GET":
        form.status.data = group.status.value
    if submit(form, lambda data: update_rate_group(current_user, group, data)):
        flash("Rate group saved.", "success")
        return redirect_to(url_for("tariffs.show", group_id=group.id))
    status = 422 if request.method == "POST" else 200
    return render_template("tariffs/form.html", form=form, group=group), status


@bp.route("/<int:group_id>/status", methods=["POST"])
@roles_required(*MANAGERS)
def change_status(group_id: int):
    """Activate or deactivate a rate group."""
    group = get_rate_group_or_404(current_user, group_id)
    status = posted_status()
    set_rate_group_status(current_user, group, status)
    flash(f'Rate group "{group.name}" is now {status.value}.', "success")
    return redirect_to(url_for("tariffs.show", group_id=group.id))


def _rates_page(group: RateGroup, query: str, after: str | None):
    """One page of a group's rates ordered by prefix, optionally those starting with `query`."""
    statement = select(Rate).where(Rate.rate_group_id == group.id)
    if query:
        statement = statement.where(Rate.prefix.startswith(query, autoescape=True))
    if after is not None:
        statement = statement.where(Rate.prefix > after)
    rates = list(db.session.scalars(statement.order_by(Rate.prefix).limit(RATES_PER_PAGE + 1)))
    next_after = rates[RATES_PER_PAGE - 1].prefix if len(rates) > RATES_PER_PAGE else None
    return rates[:RATES_PER_PAGE], next_after


def _render_show(group, rate_form=None, import_form=None, report=None, status=200):
    """The rate group page (or, for htmx, its rates table)."""
    query = "".join(ch for ch in request.args.get("q", "") if ch.isdigit())[:32]
    after = request.args.get("after")
    rates, next_after = _rates_page(group, query, after)
    total = count_rates(group)
    response = render_page_or_fragment(
        "tariffs/show.html",
        "tariffs/_rates.html",
        group=group,
        rates=rates,
        next_after=next_after,
        query=query,
        after=after,
        total=total,
        in_use=accounts_using(group),
        rate_form=rate_form or RateForm(formdata=None),
        import_form=import_form or RateImportForm(formdata=None),
        report=report,
        max_mb=MAX_FILE_BYTES // (1024 * 1024),
    )
    response.status_code = status
    return response


@bp.route("/<int:group_id>")
@roles_required(*MANAGERS)
def show(group_id: int):
    """A rate group with its rates, the add-rate and import forms."""
    return _render_show(get_rate_group_or_404(current_user, group_id))


@bp.route("/<int:group_id>/rates", methods=["POST"])
@roles_required(*MANAGERS)
def add(group_id: int):
    """Add one rate."""
    group = get_rate_group_or_404(current_user, group_id)
    form = RateForm()
    rate = submit(form, lambda data: add_rate(current_user, group, data))
    if rate:
        flash(f'Rate for prefix "{rate.prefix or "any"}" added.', "success")
        return redirect_to(url_for("tariffs.show", group_id=group.id))
    return _render_show(group, rate_form=form, status=422)


@bp.route("/<int:group_id>/rates/<int:rate_id>/edit", methods=["GET", "POST"])
@roles_required(*MANAGERS)
def edit_rate(group_id: int, rate_id: int):
    """Change one rate."""
    group = get_rate_group_or_404(current_user, group_id)
    rate = _rate_or_404(group, rate_id)
    form = RateForm(obj=None if request.method == "POST" else rate)
    if submit(form, lambda data: update_rate(current_user, rate, data)):
        flash("Rate saved.", "success")
        return redirect_to(url_for("tariffs.show", group_id=group.id))
    status = 422 if request.method == "POST" else 200
    return render_template("tariffs/rate_form.html", form=form, group=group, rate=rate), status


@bp.route("/<int:group_id>/rates/<int:rate_id>/delete", methods=["POST"])
@roles_required(*MANAGERS)
def remove_rate(group_id: int, rate_id: int):
    """Delete one rate."""
    group = get_rate_group_or_404(current_user, group_id)
    delete_rate(current_user, _rate_or_404(group, rate_id))
    flash("Rate deleted.", "success")
    return redirect_to(url_for("tariffs.show", group_id=group.id))


@bp.route("/<int:group_id>/import", methods=["POST"])
@roles_required(*MANAGERS)
def import_csv(group_id: int):
    """Import a CSV of rates: the whole file is validated first; all rows are saved or none."""
    group = get_rate_group_or_404(current_user, group_id)
    form = RateImportForm()
    if not form.validate_on_submit():
        return _render_show(group, import_form=form, status=422)
    upload = form.file.data
    data = upload.read(MAX_FILE_BYTES + 1)
    replace = form.mode.data == "replace"  # the form checked the box that confirms it
    if not import_runs_inline(data):
        filename = (upload.filename or "rates.csv")[:100]
        lines = line_count(data)
        job = records.start(
            current_user,
            "rate_import",
            f"Import of {filename} into “{group.name}” ({lines:,} lines)",
            params={"group_id": group.id, "replace": replace},
            total=lines,
            files={records.INPUT: (filename, data)},
        )
        return redirect_to(url_for("jobs.show", job_id=job.id))
    try:
        count = import_rate_file(current_user, group, data, replace)
    except RateImportFailed as failed:
        return _render_show(group, import_form=form, report=failed.parsed, status=422)
    flash(f"Imported {count} rates into “{group.name}”.", "success")
    return redirect_to(url_for("tariffs.show", group_id=group.id))


@bp.route("/<int:group_id>/export", methods=["POST"])
@roles_required(*MANAGERS)
def start_export(group_id: int):
    """Export the group's rates: streamed at once when few, else made by a job."""
    group = get_rate_group_or_404(current_user, group_id)
    rows = count_rates(group)
    if export_runs_inline(rows):
        return redirect_to(url_for("tariffs.export_csv", group_id=group.id))
    job = records.start(
        current_user,
        "rate_export",
        f"Export of {rows:,} rates of “{group.name}”",
        params={"group_id": group.id},
        total=rows,
    )
    return redirect_to(url_for("jobs.show", job_id=job.id))


@bp.route("/<int:group_id>/export.csv")
@roles_required(*MANAGERS)
def export_csv(group_id: int):
    """Download the group's rates in the import format."""
    group = get_rate_group_or_404(current_user, group_id)
    return Response(
        write_rates(exported_rates(group)),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{file_name(group)}.csv"'},
    )


@bp.route("/<int:group_id>/lookup")
@roles_required(*MANAGERS)
def lookup(group_id: int):
    """Which rate a dialled number gets (longest prefix), for the "Test a number" box."""
    group = get_rate_group_or_404(current_user, group_id)
    number = request.args.get("number", "")[:64]
    rate = lookup_rate(group.id, number) if number.strip() else None
    return render_fragment("tariffs/_lookup.html", group=group, number=number, rate=rate)


@bp.errorhandler(RequestEntityTooLarge)
def too_large(error):
    """An upload over the request limit: a clear message, not a bare error."""
    limit = current_app.config["MAX_CONTENT_LENGTH"] // (1024 * 1024)
    return render_template(
        "errors/error.html",
        code=413,
        title="File too large",
        message=f"Rate files may be at most {MAX_FILE_BYTES // (1024 * 1024)} MB "
        f"(requests at most {limit} MB). Split the file and import it in parts with "
        "“Add, and overwrite same prefixes”.",
    ), 413
