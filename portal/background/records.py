"""The jobs table: start a job, run it with progress and a heartbeat, finish it or fail it."""

import json
import logging
import os
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from flask import abort
from sqlalchemy import Select, delete, false, select, update
from sqlalchemy.exc import SQLAlchemyError

from portal.background.engine import app_context, huey
from portal.extensions import db
from portal.models import Account, Job, JobFile, JobStatus, Role, utcnow
from portal.security import STAFF, owner_id_for
from portal.transactions import ValidationFailed, operation

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 1.0
# A running job whose heartbeat is older than this is dead (its worker was killed or lost).
STALE_SECONDS = int(os.environ.get("JOBS_STALE_SECONDS", "60"))
MAX_ATTEMPTS = 3
# The credentials of a mass create or import wait this long for their one reading.
SECRET_SECONDS = 3600
OUTPUT_SECONDS = 24 * 3600
INPUT = "input"
OUTPUT = "output"
CREDENTIALS = "credentials"
LOST = (
    "The worker running this job stopped (it was restarted or killed) before the job "
    "finished; nothing was saved. Start it again."
)

Handler = Callable[[Job, Account | None, "Progress"], dict]
_handlers: dict[str, Handler] = {}
# Kinds whose work may simply run again after a crash (it never does anything twice).
_resumable: set[str] = set()
# Kinds whose work commits as it goes (a billing run: account by account), not all or nothing.
_incremental: set[str] = set()


class JobLost(Exception):
    """The job was given up (its heartbeat stopped) while this worker still ran it."""


def register(kind: str, handler: Handler, resumable: bool = False, atomic: bool = True) -> None:
    """Say which function runs jobs of `kind` (portal.jobs.tasks registers them at start-up)."""
    _handlers[kind] = handler
    if resumable:
        _resumable.add(kind)
    if not atomic:
        _incremental.add(kind)


def create(
    actor: Account | None,
    kind: str,
    label: str,
    params: dict | None = None,
    total: int = 0,
    files: dict[str, tuple[str, bytes]] | None = None,
) -> Job:
    """Add a queued job (with its input files) to the caller's transaction; enqueue() it after."""
    job = Job(
        kind=kind,
        label=label[:200],
        started_by_id=actor.id if actor else None,
        owner_id=owner_id_for(actor) if actor else None,
        params=json.dumps(params or {}, default=str),
        total=total,
    )
    db.session.add(job)
    db.session.flush()
    for name, (filename, content) in (files or {}).items():
        db.session.add(JobFile(job_id=job.id, name=name, filename=filename, content=content))
    return job


def enqueue(job: Job) -> None:
    """Hand a committed job to the engine (a second delivery is harmless: it runs once)."""
    run_job(job.id)
    db.session.expire(job)  # in immediate mode it has run meanwhile


def start(actor: Account | None, kind: str, label: str, **details) -> Job:
    """Save a queued job (details: create()'s params, total, files) and hand it to the engine."""
    job = create(actor, kind, label, **details)
    db.session.commit()
    enqueue(job)
    return job


def record_finished(kind: str, label: str, result: dict, started_at: datetime) -> Job:
    """A done job of the scheduler's (the operator's tenant), for the Jobs page's history."""
    now = utcnow()
    job = Job(
        kind=kind,
        label=label[:200],
        status=JobStatus.DONE,
        result=json.dumps(result, default=str),
        started_at=started_at,
        finished_at=now,
        heartbeat_at=now,
    )
    db.session.add(job)
    db.session.commit()
    return job


@huey.task()
def run_job(job_id: int) -> None:
    """The one task of every job a person starts: run it inside the app."""
    with app_context():
        execute(job_id)


def _claim(job_id: int) -> bool:
    """Mark a queued job running, committed first: a second delivery of the task skips it."""
    now = utcnow()
    claimed = db.session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == JobStatus.QUEUED)
        .values(
            status=JobStatus.RUNNING, started_at=now, heartbeat_at=now, attempts=Job.attempts + 1
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.commit()
    return claimed == 1


def execute(job_id: int) -> None:
    """Run one job: its work and its final status in one transaction, or a failure and nothing."""
    if not _claim(job_id):
        return
    job = db.session.get(Job, job_id)
    handler = _handlers.get(job.kind)
    actor = db.session.get(Account, job.started_by_id) if job.started_by_id else None
    progress = Progress(job_id, job.total)
    progress.start()
    try:
        if handler is None:
            raise RuntimeError(f"no handler for jobs of kind {job.kind!r}")
        if job.started_by_id and (actor is None or not actor.is_active or actor.is_deleted):
            raise ValidationFailed({"job": "The account that started this job is not active."})
        if job.kind in _incremental:
            result = handler(job, actor, progress)
            progress.stop()
            with operation():
                _finish(job, result, progress)
        else:
            with operation():
                result = handler(job, actor, progress)
                progress.stop()
                _finish(job, result, progress)
    except ValidationFailed as failed:
        progress.stop()
        _fail(job_id, str(next(iter(failed.errors.values()))), _failure_details(failed))
    except JobLost:
        progress.stop()
    except Exception:
        progress.stop()
        log.exception("Job %s (%s) failed", job_id, job.kind)
        _fail(job_id, "The job failed with an internal error; nothing was saved.")


def _failure_details(failed: ValidationFailed) -> dict:
    """What the job page shows of a refusal: the field errors and, for a file, its lines."""
    details: dict = {"errors": failed.errors}
    line_errors = getattr(failed, "line_errors", None)
    if line_errors is not None:
        details["line_errors"] = [
            {"line": error.line, "field": error.field, "message": error.message}
            for error in line_errors
        ]
        details["error_count"] = getattr(failed, "error_count", len(line_errors))
    return details


def _finish(job: Job, result: dict, progress: "Progress") -> None:
    """Mark the job done in the transaction of its work (both commit, or neither)."""
    now = utcnow()
    finished = db.session.execute(
        update(Job)
        .where(Job.id == job.id, Job.status == JobStatus.RUNNING)
        .values(
            status=JobStatus.DONE,
            result=json.dumps(result, default=str),
            done=max(progress.done, progress.total),
            total=max(progress.done, progress.total),
            finished_at=now,
            heartbeat_at=now,
        )
        .execution_options(synchronize_session=False)
    ).rowcount
    if finished != 1:
        raise JobLost  # declared dead meanwhile: its work rolls back, as its page says
    db.session.execute(delete(JobFile).where(JobFile.job_id == job.id, JobFile.name == INPUT))


def _fail(job_id: int, error: str, details: dict | None = None) -> None:
    """Mark a job failed with why (its input is dropped: it may hold chosen passwords)."""
    db.session.rollback()
    db.session.execute(
        update(Job)
        .where(Job.id == job_id)
        .values(
            status=JobStatus.FAILED,
            error=error[:500],
            result=json.dumps(details or {}, default=str),
            finished_at=utcnow(),
        )
        .execution_options(synchronize_session=False)
    )
    db.session.execute(delete(JobFile).where(JobFile.job_id == job_id, JobFile.name == INPUT))
    db.session.commit()


class Progress:
    """How far a job got; a thread writes it and the heartbeat to the jobs row every second."""

    def __init__(self, job_id: int, total: int = 0):
        self.job_id = job_id
        self.total = total
        self.done = 0
        self._engine = db.engine
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def __call__(self, done: int, total: int | None = None) -> None:
        """Report `done` of `total` (the handler's loop calls this; it writes nothing itself)."""
        self.done = done
        if total is not None:
            self.total = total

    def start(self) -> None:
        """Begin the heartbeat."""
        self._thread = threading.Thread(target=self._beat, name=f"job-{self.job_id}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """End the heartbeat (before the job's final write)."""
        # Not joined: on SQLite a beat in flight may be waiting for the write lock the job's
        # own transaction holds, and waiting for it would hold every writer of the database
        # (call authorizations too) until busy_timeout. A late beat changes nothing: it writes
        # only a running job, and the job's final write ends that.
        self._stop.set()

    def _beat(self) -> None:
        """Write progress and the heartbeat on a connection of its own, until stopped."""
        while not self._stop.wait(HEARTBEAT_SECONDS):
            try:
                with self._engine.begin() as connection:
                    connection.execute(
                        update(Job)
                        .where(Job.id == self.job_id, Job.status == JobStatus.RUNNING)
                        .values(done=self.done, total=self.total, heartbeat_at=utcnow())
                    )
            except SQLAlchemyError:
                # SQLite: the job's own write transaction holds the file; the next beat writes.
                continue


def recover_stale(now: datetime | None = None) -> tuple[int, int]:
    """Jobs whose worker died: resumable ones queued again, others failed: (requeued, failed)."""
    cutoff = (now or utcnow()) - timedelta(seconds=STALE_SECONDS)
    stale = db.session.scalars(
        select(Job).where(Job.status == JobStatus.RUNNING, Job.heartbeat_at < cutoff)
    ).all()
    requeued, failed = [], 0
    for job in stale:
        retry = job.kind in _resumable and job.attempts < MAX_ATTEMPTS
        values = (
            {"status": JobStatus.QUEUED}
            if retry
            else {
                "status": JobStatus.FAILED,
                "error": LOST,
                "finished_at": utcnow(),
            }
        )
        changed = db.session.execute(
            update(Job)
            .where(Job.id == job.id, Job.status == JobStatus.RUNNING, Job.heartbeat_at < cutoff)
            .values(**values)
            .execution_options(synchronize_session=False)
        ).rowcount
        if changed and retry:
            requeued.append(job.id)
        elif changed:
            failed += 1
            db.session.execute(
                delete(JobFile).where(JobFile.job_id == job.id, JobFile.name == INPUT)
            )
    db.session.commit()
    for job_id in requeued:
        run_job(job_id)
    return len(requeued), failed


def purge_files(now: datetime | None = None) -> int:
    """Delete result files past their expiry (credentials after an hour, exports after a day)."""
    deleted = db.session.execute(
        delete(JobFile).where(JobFile.expires_at < (now or utcnow()))
    ).rowcount
    db.session.commit()
    return deleted


def attach(job: Job, name: str, filename: str, content: bytes, seconds: int) -> None:
    """Add a result file to the job, in the transaction of its work."""
    db.session.add(
        JobFile(
            job_id=job.id,
            name=name,
            filename=filename,
            content=content,
            expires_at=utcnow() + timedelta(seconds=seconds),
        )
    )


def input_file(job: Job) -> bytes:
    """The file the job was started with."""
    content = db.session.scalar(
        select(JobFile.content).where(JobFile.job_id == job.id, JobFile.name == INPUT)
    )
    if content is None:
        raise ValidationFailed({"file": "The uploaded file is no longer there; upload it again."})
    return content


def visible_jobs(user: Account) -> Select:
    """Jobs `user` may see: staff every job (as every account), a reseller its own only."""
    if user.role in STAFF:
        return select(Job)
    if user.role == Role.RESELLER:
        return select(Job).where(Job.owner_id == user.id)
    return select(Job).where(false())


def get_job_or_404(user: Account, job_id: int) -> Job:
    """Load a job `user` may see, or 404."""
    job = db.session.scalar(visible_jobs(user).where(Job.id == job_id))
    if job is None:
        abort(404)
    return job


def file_info(job: Job, name: str) -> JobFile | None:
    """A result file of the job that has not expired (its content is loaded only when read)."""
    return db.session.scalar(
        select(JobFile).where(
            JobFile.job_id == job.id,
            JobFile.name == name,
            (JobFile.expires_at.is_(None)) | (JobFile.expires_at >= utcnow()),
        )
    )


def take_secret(job: Job, user: Account) -> bytes | None:
    """The credentials file, for the person who started the job only, deleted as it is read."""
    if job.started_by_id != user.id:
        return None
    found = file_info(job, CREDENTIALS)
    if found is None:
        return None
    content = found.content
    # Deleted by a conditional statement: two clicks at once cannot both read it.
    taken = db.session.execute(delete(JobFile).where(JobFile.id == found.id)).rowcount
    db.session.commit()
    return content if taken == 1 else None
