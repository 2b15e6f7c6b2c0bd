"""What the consumer runs: the jobs people start, and the periodic work (no cron needed)."""

import logging

from huey import crontab

from portal import mail
from portal.accounts.bulk import import_accounts, mass_create
from portal.api.idempotency import purge
from portal.background import records
from portal.background.engine import app_context, huey, lock
from portal.billing.run import run_billing
from portal.calls.service import reap
from portal.models import Account, Job

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


def _billing_run(job: Job, actor: Account | None, progress) -> dict:
    """A billing run someone started: account by account, safe to run again after a crash."""
    report = run_billing(progress=progress)
    for number, error in report.failed:
        log.error("Billing of account %s failed: %s", number, error)
    if report.mail_ids:
        mail.send_pending(report.mail_ids)
    return {
        "examined": report.examined,
        "invoiced": report.invoiced,
        "skipped": report.skipped,
        "failed": len(report.failed),
        "failures": report.failed[:100],
    }


records.register("customer_import", _import_customers)
records.register("mass_create", _mass_create)
records.register("billing_run", _billing_run, resumable=True, atomic=False)


# Periodic work. Each task takes a lock of the engine, so with N consumers on N servers each
# runs once at a time; the work itself is safe to repeat (nothing is billed or sent twice).
@huey.periodic_task(crontab(minute="0"))
@lock("billing-run", ttl_seconds=3600)
def hourly_billing() -> None:
    """Invoice the postpaid accounts whose billing day has come (in their own timezone)."""
    with app_context():
        report = run_billing()
        if report.invoiced or report.failed:
            log.info("Billing run: %s invoiced, %s failed", report.invoiced, len(report.failed))
        for number, error in report.failed:
            log.error("Billing of account %s failed: %s", number, error)
        if report.mail_ids:
            mail.send_pending(report.mail_ids)


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
