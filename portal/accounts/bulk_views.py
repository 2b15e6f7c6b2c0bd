"""Bulk account pages: mass create, CSV import (credentials shown once) and CSV export."""

import base64

from flask import Response, current_app, render_template, request, url_for
from flask_login import current_user
from werkzeug.exceptions import RequestEntityTooLarge

from portal.accounts import account_csv, bp
from portal.accounts.account_csv import COLUMNS, MAX_FILE_BYTES, MAX_ROWS
from portal.accounts.bulk import (
    MAX_COUNT,
    BulkResult,
    ImportFailed,
    check_mass_create,
    chosen_passwords,
    count_exported,
    export_accounts,
    export_runs_inline,
    import_accounts,
    mass_create,
    runs_inline,
)
from portal.accounts.forms import AccountImportForm, MassCreateForm
from portal.accounts.views import _apply_defaults, _chosen_owner_id
from portal.background import records
from portal.htmx import redirect_to
from portal.models import utcnow
from portal.security import MANAGERS, roles_required
from portal.transactions import ValidationFailed
from portal.web import apply_errors


def credentials_page(result: BulkResult, title: str):
    """The one answer that shows the new secrets: a table and the CSV, inside this page only."""
    # The CSV rides in a data: link of this POST answer, so it is never stored on the server,
    # in the session or behind a GET address that could be fetched again.
    encoded = base64.b64encode(result.credentials_csv().encode("utf-8")).decode("ascii")
    filename = f"credentials-{utcnow():%Y%m%d-%H%M%S}.csv"
    response = current_app.make_response(
        render_template(
            "accounts/credentials.html",
            title=title,
            credentials=result.credentials,
            csv_href=f"data:text/csv;charset=utf-8;base64,{encoded}",
            filename=filename,
        )
    )
    response.headers["Cache-Control"] = "no-store"
    # htmx puts the list in the address bar: a reload shows it instead of posting again.
    response.headers["HX-Push-Url"] = url_for("accounts.index")
    return response


@bp.route("/mass-create", methods=["GET", "POST"])
@roles_required(*MANAGERS)
def mass_create_page():
    """Create many customers at once with generated numbers, passwords and PINs."""
    form = MassCreateForm()
    form.load_choices(current_user, _chosen_owner_id(request.form.get("reseller_id")))
    if request.method == "GET":
        _apply_defaults(form)
        return render_template("accounts/mass_create.html", form=form, max_count=MAX_COUNT)
    if form.validate():
        data = form.service_data()
        try:
            if runs_inline(data["count"], 0):
                result = mass_create(current_user, data)
                return credentials_page(result, f"{len(result.account_ids)} customers created")
            check_mass_create(current_user, data)  # the form's errors at once, not on a job page
        except ValidationFailed as failed:
            apply_errors(form, failed.errors)
        else:
            job = records.start(
                current_user,
                "mass_create",
                f"Mass create of {data['count']:,} customers",
                params=data,
                total=data["count"],
            )
            return redirect_to(url_for("jobs.show", job_id=job.id))
    return render_template("accounts/mass_create.html", form=form, max_count=MAX_COUNT), 422


def _render_import(form, report: ImportFailed | None = None, status: int = 200):
    """The import page, with the per-line report of a refused file."""
    page = render_template(
        "accounts/import.html",
        form=form,
        report=report,
        columns=COLUMNS,
        max_rows=MAX_ROWS,
        max_mb=MAX_FILE_BYTES // 2**20,
    )
    return page, status


@bp.route("/import", methods=["GET", "POST"])
@roles_required(*MANAGERS)
def import_csv():
    """Import customers from CSV: every line is checked first, then all are created or none."""
    form = AccountImportForm()
    if request.method == "GET":
        return _render_import(form)
    if not form.validate_on_submit():
        return _render_import(form, status=422)
    upload = form.file.data
    data = account_csv.read_source(upload)
    lines, chosen = chosen_passwords(data)
    if not runs_inline(lines, chosen):
        # Chosen passwords get the slow hash: that work goes to a job consumer, not this worker.
        filename = (upload.filename or "customers.csv")[:100]
        job = records.start(
            current_user,
            "customer_import",
            f"Import of {filename} ({lines:,} lines)",
            total=lines,
            files={records.INPUT: (filename, data)},
        )
        return redirect_to(url_for("jobs.show", job_id=job.id))
    try:
        result = import_accounts(current_user, data)
    except ImportFailed as failed:
        form.file.errors = list(failed.errors.values())
        return _render_import(form, failed, 422)
    except ValidationFailed as failed:
        form.file.errors = list(failed.errors.values())
        return _render_import(form, status=422)
    return credentials_page(result, f"{len(result.account_ids)} customers imported")


def _search(values) -> str:
    """The customer list's search, as the list reads it."""
    return values.get("q", "").strip()[:100]


@bp.route("/export", methods=["POST"])
@roles_required(*MANAGERS)
def start_export():
    """Export the customer list (with its search): streamed at once when small, else a job."""
    query = _search(request.form)
    rows = count_exported(current_user, query)
    if export_runs_inline(rows):
        return redirect_to(url_for("accounts.export_csv", q=query or None))
    matching = f" matching “{query}”" if query else ""
    job = records.start(
        current_user,
        "customer_export",
        f"Export of {rows:,} customers{matching}",
        params={"query": query},
        total=rows,
    )
    return redirect_to(url_for("jobs.show", job_id=job.id))


@bp.route("/export.csv")
@roles_required(*MANAGERS)
def export_csv():
    """The customer list (with its search) as a CSV in the import format."""
    query = _search(request.args)
    # Streamed after this request's session has closed: export_accounts reads on its own.
    return Response(
        export_accounts(current_user, query),
        mimetype="text/csv",
        headers={"Content-Disposition": 'attachment; filename="customers.csv"'},
    )


@bp.errorhandler(RequestEntityTooLarge)
def too_large(error):
    """An upload over the request limit: a clear message, not a bare error."""
    return render_template(
        "errors/error.html",
        code=413,
        title="File too large",
        message=f"Account files may be at most {MAX_FILE_BYTES // 2**20} MB and "
        f"{MAX_ROWS:,} accounts. Split the file and import it in parts.",
    ), 413
