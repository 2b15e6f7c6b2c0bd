"""What the consumer runs: the jobs people start, and the periodic work (no cron needed)."""

import io
import json
import logging
import time
from datetime import date
from decimal import Decimal

from huey import crontab
from sqlalchemy import func, select

from portal import mail
from portal.accounts.bulk import count_exported, export_accounts, import_accounts, mass_create
from portal.api.idempotency import purge
from portal.auth.sessions import purge_idle_sessions
from portal.auth.throttle import purge_ended_windows
from portal.background import records
from portal.background.engine import app_context, huey, lock
from portal.billing import chunk
from portal.billing.drafts import ChunkResult
from portal.billing.run import RunReport, plan, run_billing
from portal.calls.export import export_calls
from portal.calls.report import CallFilter, totals
from portal.calls.service import reap
from portal.extensions import db
from portal.models import Account, Job, JobStatus
from portal.tariffs.rate_csv import write_rates
from portal.tariffs.rate_files import file_name, import_rate_file, rate_group_for
from portal.tariffs.service import count_rates, exported_rates

log = logging.getLogger(__name__)
FILENAME = "credentials.csv"


def _import_customers(job: Job, actor: Account, progress) -> dict:
    """A customer CSV import: all lines or none; the credentials kept for one reading."""
    result = import_accounts(actor, records.input_file(job), progress=progress)
    records.attach(job, records.CREDENTIALS, FILENAME, result.to_json(), records.SECRET_SECONDS)
    return {"created": len(result.account_ids)}


def _mass_create(job: Job, actor: Account, progress) -> dict:
    """A mass create: all accounts or none; the credentials kept for one reading."""
    result = mass_create(actor, job.arguments, progress=progress)
    records.attach(job, records.CREDENTIALS, FILENAME, result.to_json(), records.SECRET_SECONDS)
    return {"created": len(result.account_ids)}


def _attach_export(job: Job, filename: str, chunks, progress) -> dict:
    """Keep the CSV an export wrote as the job's download; its rows are what progress counted."""
    content = "".join(chunks).encode("utf-8")
    records.attach(job, records.OUTPUT, filename, content, records.OUTPUT_SECONDS)
    return {"rows": progress.done}


def _export_customers(job: Job, actor: Account, progress) -> dict:
    """A customer export: what the actor sees now (its tenant, the list's search), as CSV."""
    query = job.arguments.get("query", "")
    progress(0, count_exported(actor, query))
    chunks = export_accounts(actor, query, progress=progress)
    return _attach_export(job, "customers.csv", chunks, progress)


def _export_rates(job: Job, actor: Account, progress) -> dict:
    """A rate group's export, if the actor still manages the group."""
    group = rate_group_for(actor, job.arguments["group_id"])
    progress(0, count_rates(group))
    chunks = write_rates(exported_rates(group, progress=progress))
    return _attach_export(job, f"rates-{file_name(group)}.csv", chunks, progress)


def _export_calls(job: Job, actor: Account, progress) -> dict:
    """A Calls page export: the filtered calls the actor sees now, as CSV in its timezone."""
    wanted = CallFilter.from_json(job.arguments["filter"])
    progress(0, totals(actor, wanted).calls)
    # Encoded chunk by chunk into one buffer: the file is held once (JobFile keeps it in the
    # database), not as a list of texts, their join and its encoding side by side.
    content = io.BytesIO()
    for text in export_calls(actor, wanted, progress):
        content.write(text.encode("utf-8"))
    records.attach(job, records.OUTPUT, "calls.csv", content.getvalue(), records.OUTPUT_SECONDS)
    return {"rows": progress.done}


def _import_rates(job: Job, actor: Account, progress) -> dict:
    """A large rate file: every line checked, then all rates saved or none."""
    group = rate_group_for(actor, job.arguments["group_id"])
    data = records.input_file(job)
    imported = import_rate_file(actor, group, data, job.arguments["replace"], progress)
    return {"imported": imported, "rate_group": group.name, "rate_group_id": group.id}


# How often a billing run looks whether the chunks other consumers took have ended.
CHUNK_POLL_SECONDS = 0.5


def _billing_summary(report: RunReport) -> dict:
    """What a billing run's job page shows; its mail goes to the consumer's delivery."""
    for number, error in report.failed:
        log.error("Billing of account %s failed: %s", number, error)
    if report.mail_ids:
        mail.send_pending(report.mail_ids)
    return report.summary()


def _ended(ids: list[int]) -> int:
    """How many of the chunk jobs of `ids` ended (done or failed)."""
    if not ids:
        return 0
    return db.session.scalar(
        select(func.count()).where(
            Job.id.in_(ids), Job.status.in_((JobStatus.DONE, JobStatus.FAILED))
        )
    )


def _billing_run(job: Job, actor: Account | None, progress) -> dict:
    """A billing run: one job per chunk for any consumer; this one bills those nobody took."""
    planned = plan()
    chunk_jobs = [
        records.create(
            actor,
            "billing_chunk",
            f"{job.label}: chunk {index} of {len(planned.chunks)}",
            params={"due": [[account_id, day.isoformat()] for account_id, day in due]},
            total=len(due),
        )
        for index, due in enumerate(planned.chunks, start=1)
    ]
    db.session.commit()
    ids = [chunk_job.id for chunk_job in chunk_jobs]
    for chunk_job in chunk_jobs:
        records.enqueue(chunk_job)
    progress(0, len(ids))
    for chunk_id in ids:
        records.execute(chunk_id)  # claimed first: a chunk another consumer runs is skipped
        progress(_ended(ids), len(ids))
    while (ended := _ended(ids)) < len(ids):
        progress(ended, len(ids))
        db.session.rollback()  # see the other consumers' commits
        time.sleep(CHUNK_POLL_SECONDS)
    report = planned.report()
    rows = db.session.execute(
        select(Job.status, Job.result, Job.error).where(Job.id.in_(ids)).order_by(Job.id)
    ).all()
    for index, row in enumerate(rows, start=1):
        if row.status == JobStatus.DONE:
            report.add(_chunk_result(json.loads(row.result)))
        else:
            report.chunks += 1
            report.chunks_failed += 1
            report.failed.append((f"chunk {index}", row.error))
    return _billing_summary(report.close())


def _chunk_result(outcome: dict) -> ChunkResult:
    """A chunk job's result as the run counts it."""
    return ChunkResult(
        examined=outcome["examined"],
        invoiced=outcome["invoiced"],
        statements=outcome.get("statements", 0),  # chunks of a run started before statements
        failed=[tuple(failure) for failure in outcome["failed"]],
        mail_ids=outcome["mail_ids"],
        totals={currency: Decimal(total) for currency, total in outcome["totals"].items()},
    )


def _bill_chunk(job: Job, actor: Account | None, progress) -> dict:
    """One chunk of a billing run: its invoices and this job's end commit together."""
    due = [(account_id, date.fromisoformat(day)) for account_id, day in job.arguments["due"]]
    result = chunk.bill(due)
    progress(len(due), len(due))
    return {
        "examined": result.examined,
        "invoiced": result.invoiced,
        "statements": result.statements,
        "failed": result.failed,
        "mail_ids": result.mail_ids,
        "totals": {currency: f"{total:f}" for currency, total in result.totals.items()},
    }


def _billing_dry_run(job: Job, actor: Account | None, progress) -> dict:
    """What a billing run would invoice now: count and totals per currency; writes nothing."""
    report = run_billing(progress=progress, dry_run=True)
    return {
        "examined": report.examined,
        "would_invoice": report.invoiced,
        "would_state": report.statements,
        "would_fail": len(report.failed),
        "totals": {currency: f"{total:f}" for currency, total in sorted(report.totals.items())},
    }


records.register("customer_import", _import_customers)
records.register("mass_create", _mass_create)
# An export may simply run again after a crash: it writes nothing but its own file.
records.register("customer_export", _export_customers, resumable=True)
records.register("rate_export", _export_rates, resumable=True)
records.register("call_export", _export_calls, resumable=True)
records.register("rate_import", _import_rates)
records.register("billing_run", _billing_run, resumable=True, atomic=False)
# A chunk's invoices commit with its job's end: a chunk whose worker died runs again whole.
records.register("billing_chunk", _bill_chunk, resumable=True)
records.register("billing_dry_run", _billing_dry_run, resumable=True, atomic=False)


# Periodic work. Each task takes a lock of the engine, so with N consumers on N servers each
# runs once at a time; the work itself is safe to repeat (nothing is billed or sent twice).
@huey.periodic_task(crontab(minute="0"))
@lock("billing-run", ttl_seconds=3600)
def hourly_billing() -> None:
    """Start a billing run when accounts are due (billing day reached, in their zone)."""
    with app_context():
        planned = plan()
        if planned.chunks or planned.failed:  # an hour with nothing due leaves no row
            # Run here, under the lock, while its chunks go to every consumer.
            job = records.create(None, "billing_run", "Hourly billing run")
            db.session.commit()
            records.execute(job.id)


@huey.periodic_task(crontab(minute="*"))
@lock("mail-outbox", ttl_seconds=900)
def deliver_mail() -> None:
    """Send what waits in the outbox and is due (failures are retried with a backoff)."""
    with app_context():
        mail.send_pending()


@huey.periodic_task(crontab(minute="*"))
@lock("call-reaper", ttl_seconds=300)
def reap_calls() -> None:
    """Close calls the softswitch never ended, once past their maximum duration."""
    with app_context():
        reaped = reap()
        if reaped:
            log.info("Reaped %s calls", reaped)


@huey.periodic_task(crontab(minute="*"))
@lock("job-recovery", ttl_seconds=300)
def recover_jobs() -> None:
    """Jobs whose worker died: resumable ones again, the others failed; expired files deleted."""
    with app_context():
        requeued, failed = records.recover_stale()
        if requeued or failed:
            log.warning("Jobs of a dead worker: %s queued again, %s failed", requeued, failed)
        records.purge_files()


@huey.periodic_task(crontab(minute="17", hour="3"))
@lock("idempotency-purge", ttl_seconds=3600)
def purge_idempotency() -> None:
    """Forget Idempotency-Key answers older than 24 hours."""
    with app_context():
        purge()


@huey.periodic_task(crontab(minute="27", hour="3"))
@lock("login-purge", ttl_seconds=3600)
def purge_logins() -> None:
    """Forget ended failed-login windows, and sessions idle past the remember-me lifetime."""
    with app_context():
        purge_ended_windows()
        purge_idle_sessions()
