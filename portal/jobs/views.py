"""Jobs: the list, one job's page with a progress bar htmx refreshes, its files."""

from datetime import timedelta

from flask import Response, abort, render_template, url_for
from flask_login import current_user

from portal.accounts.bulk import BulkResult
from portal.accounts.bulk_views import credentials_page
from portal.background import records
from portal.extensions import db
from portal.htmx import redirect_to, render_fragment, render_page_or_fragment
from portal.jobs import bp
from portal.models import Job, JobStatus, Role, utcnow
from portal.security import MANAGERS, roles_required
from portal.web import query_id

PER_PAGE = 25
WAITING_WARNING_SECONDS = 30


@bp.route("/")
@roles_required(*MANAGERS)
def index():
    """The tenant's jobs, newest first, keyset-paginated (?before=<id>)."""
    before = query_id("before")
    # A billing run's chunks show on the run's page, not one by one here.
    query = records.visible_jobs(current_user).where(Job.kind != "billing_chunk")
    if before:
        query = query.where(Job.id < before)
    jobs = list(db.session.scalars(query.order_by(Job.id.desc()).limit(PER_PAGE + 1)))
    next_before = jobs[PER_PAGE - 1].id if len(jobs) > PER_PAGE else None
    return render_page_or_fragment(
        "jobs/index.html", "jobs/_list.html", jobs=jobs[:PER_PAGE], next_before=next_before
    )


def _context(job: Job) -> dict:
    """What the job's page and its progress fragment show."""
    waiting = utcnow() - job.created_at if job.status == JobStatus.QUEUED else timedelta(0)
    return {
        "job": job,
        # Queued for long: no consumer runs (`make dev` starts none), or all are busy.
        "no_worker": waiting > timedelta(seconds=WAITING_WARNING_SECONDS),
        "output": records.file_info(job, records.OUTPUT),
        "credentials": job.started_by_id == current_user.id
        and records.file_info(job, records.CREDENTIALS),
    }


@bp.route("/<int:job_id>")
@roles_required(*MANAGERS)
def show(job_id: int):
    """One job: status, progress and, once it ended, its result."""
    job = records.get_job_or_404(current_user, job_id)
    return render_template("jobs/show.html", **_context(job))


@bp.route("/<int:job_id>/progress")
@roles_required(*MANAGERS)
def progress(job_id: int):
    """The progress fragment htmx polls while the job runs (it stops once the job ended)."""
    job = records.get_job_or_404(current_user, job_id)
    response = render_fragment("jobs/_progress.html", **_context(job))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.route("/<int:job_id>/credentials", methods=["POST"])
@roles_required(*MANAGERS)
def credentials(job_id: int):
    """The new accounts' secrets, once, for the person who started the job; then they are gone."""
    job = records.get_job_or_404(current_user, job_id)
    content = records.take_secret(job, current_user)
    if content is None:
        abort(404)
    result = BulkResult.from_json(content)
    return credentials_page(result, job.label)


@bp.route("/<int:job_id>/download")
@roles_required(*MANAGERS)
def download(job_id: int):
    """The file the job made (an export), while it is kept."""
    job = records.get_job_or_404(current_user, job_id)
    found = records.file_info(job, records.OUTPUT)
    if found is None:
        abort(404)
    filename = found.filename.replace('"', "")
    return Response(
        found.content,
        mimetype="text/csv" if filename.endswith(".csv") else "application/octet-stream",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "private, no-store",
        },
    )


@bp.route("/billing-run", methods=["POST"])
@roles_required(Role.ADMIN)
def billing_run():
    """Start a billing run now (the consumer also runs one every hour by itself)."""
    job = records.start(current_user, "billing_run", "Billing run")
    return redirect_to(url_for("jobs.show", job_id=job.id))


@bp.route("/billing-dry-run", methods=["POST"])
@roles_required(Role.ADMIN)
def billing_dry_run():
    """Show what a billing run would invoice now (count, totals per currency); writes nothing."""
    job = records.start(current_user, "billing_dry_run", "Billing dry run")
    return redirect_to(url_for("jobs.show", job_id=job.id))
