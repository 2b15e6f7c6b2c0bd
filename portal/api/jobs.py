"""Background jobs over the API: a large mass create answers 202 with a job to poll."""

from flask import jsonify

from portal.accounts.bulk import BulkResult
from portal.api import schemas
from portal.api.caller import key_account as _actor
from portal.api.caller import utc as _utc
from portal.api.errors import ApiError
from portal.api.openapi import operation
from portal.background import records
from portal.extensions import db
from portal.models import Account, Job


def job_json(job: Job, actor: Account) -> dict:
    """A job as schemas.JobOut."""
    waiting = job.started_by_id == actor.id and records.file_info(job, records.CREDENTIALS)
    return schemas.JobOut(
        id=job.id,
        kind=job.kind,
        label=job.label,
        status=job.status.value,
        done=job.done,
        total=job.total,
        error=job.error,
        result=job.outcome,
        created_at=_utc(job.created_at),
        finished_at=_utc(job.finished_at),
        credentials_available=bool(waiting),
    ).model_dump(mode="json")


def _job_or_404(job_id: int) -> Job:
    """A job of the key's tenant, or a 404."""
    job = db.session.scalar(records.visible_jobs(_actor()).where(Job.id == job_id))
    if job is None:
        raise ApiError(404, "There is no such job, or it is not yours to see.")
    return job


@operation(
    "/jobs/<int:job_id>",
    "GET",
    summary="A background job: its status, progress and result.",
    tag="Jobs",
    responses={200: schemas.JobOut},
    errors=(404,),
)
def get_job(job_id: int):
    """A job of the key's tenant (staff: the operator's; a reseller: its own)."""
    return jsonify(job_json(_job_or_404(job_id), _actor()))


@operation(
    "/jobs/<int:job_id>/credentials",
    "POST",
    summary="The secrets of a mass create job, once, for the key's account; then they are gone.",
    tag="Jobs",
    responses={200: schemas.JobCredentials},
    errors=(404,),
)
def take_job_credentials(job_id: int):
    """Read and delete the new accounts' passwords (kept one hour at most)."""
    job = _job_or_404(job_id)
    content = records.take_secret(job, _actor())
    if content is None:
        raise ApiError(404, "These credentials were read already, expired, or are not yours.")
    credentials = [c.__dict__ for c in BulkResult.from_json(content).credentials]
    response = jsonify({"credentials": credentials})
    response.headers["Cache-Control"] = "no-store"
    return response
