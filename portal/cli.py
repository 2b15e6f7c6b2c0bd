"""Flask commands: init (first start), create-admin, and the groups registered below."""

import logging
import os
import time

import click
from flask import Flask

from portal.accounts.service import create_admin, first_admin_exists
from portal.calls import rollups
from portal.demo import seed
from portal.rules.identifiers import generate_password
from portal.settings.service import get_setting
from portal.tariffs.service import ensure_default_rate_group


def register(app: Flask) -> None:
    """Attach the commands to the app."""
    register_money(app)
    register_jobs(app)
    register_reports(app)
    register_demo(app)

    @app.cli.command("init")
    def init_command():
        """Ensure an administrator and a "Default" rate group exist (run after db upgrade)."""
        if not first_admin_exists():
            email = os.environ.get("PORTAL_ADMIN_EMAIL")
            password = os.environ.get("PORTAL_ADMIN_PASSWORD")
            generated = not (email and password)
            if generated:
                password = generate_password()
            admin = create_admin(email=email or None, password=password)
            click.echo(
                f"Created administrator: account number {admin.account_number}",
                err=False,
            )
            if admin.email:
                click.echo(f"  e-mail: {admin.email}")
            if generated:
                click.echo(f"  password: {password}   (shown once: write it down now)")
        if ensure_default_rate_group(get_setting("default_currency")):
            click.echo('Created rate group "Default".')

    @app.cli.command("create-admin")
    @click.option("--email", required=True, help="E-mail address to log in with.")
    @click.option("--password", required=True, help="Password (8+ chars, letters and digits).")
    def create_admin_command(email: str, password: str):
        """Create an administrator account."""
        from portal.accounts.service import ServiceError

        try:
            admin = create_admin(email=email, password=password)
        except ServiceError as error:
            raise click.ClickException(f"{error.field}: {error.message}") from error
        click.echo(f"Created administrator {admin.email}: account number {admin.account_number}")


def register_money(app: Flask) -> None:
    """`flask billing run` and `flask mail send`."""
    from flask.cli import AppGroup

    from portal import mail
    from portal.billing.run import run_billing

    billing = AppGroup("billing", help="Invoices of postpaid accounts, statements of prepaid ones.")
    mail_group = AppGroup("mail", help="The e-mail outbox.")

    @billing.command("run")
    @click.option(
        "--date",
        "day",
        type=click.DateTime(formats=["%Y-%m-%d"]),
        help="Bill as if it were this date in every account's timezone (default: today, locally).",
    )
    @click.option("--dry-run", is_flag=True, help="Show what would be invoiced; write nothing.")
    @click.option("--threads", default=1, show_default=True, help="Chunks billed at the same time.")
    def billing_run(day, dry_run: bool, threads: int):
        """Invoice every postpaid account due today; safe to run again (nothing is billed twice)."""
        report = run_billing(day=day.date() if day else None, threads=threads, dry_run=dry_run)
        if dry_run:
            click.echo(
                f"Dry run: examined {report.examined} accounts: {report.invoiced} "
                f"would be invoiced, {report.statements} would get a statement, "
                f"{len(report.failed)} would fail; nothing was written."
            )
            for currency, total in sorted(report.totals.items()):
                click.echo(f"  {currency} {total:f}")
        else:
            delivery = (
                mail.send_pending(report.mail_ids) if report.mail_ids else mail.Delivery(0, 0, 0)
            )
            left = delivery.waiting + delivery.failed
            click.echo(
                f"Examined {report.examined} accounts: {report.invoiced} invoiced, "
                f"{report.statements} statements, {report.skipped} not due, "
                f"{len(report.failed)} failed; "
                f"{report.subscription_charges} subscription periods charged; "
                f"{delivery.sent} mails sent, {left} left in the outbox."
            )
        for number, error in report.failed:
            click.echo(f"  account {number}: {error}", err=True)
        if report.failed:
            raise SystemExit(1)

    @mail_group.command("send")
    def mail_send():
        """Send the outbox's due mail (every minute); failed tries are retried for days."""
        sent, waiting, failed = mail.send_pending()
        click.echo(f"Sent {sent} messages; {waiting} waiting for a retry; {failed} failed.")

    calls = AppGroup("calls", help="Live calls.")

    @calls.command("reap")
    def calls_reap():
        """Close calls never ended, once past their max duration plus the grace (billed in full)."""
        from portal.calls.service import reap

        click.echo(f"Reaped {reap()} calls.")

    api = AppGroup("api", help="The REST API.")

    @api.command("purge")
    def api_purge():
        """Forget Idempotency-Key answers older than 24 hours (run it daily from cron)."""
        from portal.api.idempotency import purge

        click.echo(f"Purged {purge()} idempotency records.")

    app.cli.add_command(api)
    app.cli.add_command(calls)
    app.cli.add_command(billing)
    app.cli.add_command(mail_group)


def register_jobs(app: Flask) -> None:
    """`flask jobs worker`: the consumer that runs background jobs and the periodic work."""
    from flask.cli import AppGroup

    jobs = AppGroup("jobs", help="Background jobs and periodic work.")

    @jobs.command("worker")
    @click.option("--workers", default=2, show_default=True, help="Jobs run at the same time.")
    def worker(workers: int):
        """Run jobs as they are queued, and the periodic tasks (billing, mail, reaper, purge)."""
        from portal.background.engine import huey, shared

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        # One machine's SQLite queue: a lock left by a killed consumer is cleared at start.
        # On Redis the locks expire instead (another server's consumer may hold one now).
        consumer = huey.create_consumer(
            workers=workers, worker_type="thread", periodic=True, flush_locks=not shared()
        )
        consumer.run()

    app.cli.add_command(jobs)


def register_reports(app: Flask) -> None:
    """`flask reports rebuild-rollups`: the dashboards' daily figures recounted from the calls."""
    from flask.cli import AppGroup

    reports = AppGroup("reports", help="The dashboards' figures.")

    @reports.command("rebuild-rollups")
    def rebuild_rollups():
        """Recount every day's call rollups from the ended calls (after an upgrade or a repair)."""
        click.echo(f"Wrote {rollups.rebuild()} rollup rows.")

    app.cli.add_command(reports)


def register_demo(app: Flask) -> None:
    """`flask demo seed`: the demo business (make demo), on an empty database only."""
    from flask.cli import AppGroup

    demo = AppGroup("demo", help="A demo business to click through.")

    @demo.command("seed")
    def demo_seed():
        """Fill an empty database with 60 days of a demo business; refuses a database in use."""
        started = time.perf_counter()
        try:
            summary = seed.seed(echo=click.echo)
        except seed.DemoRefused as refused:
            raise click.ClickException(str(refused)) from refused
        click.echo(
            f"Demo ready in {time.perf_counter() - started:.0f} s: {summary.accounts} accounts, "
            f"{summary.calls} call attempts ({summary.refused} refused), "
            f"{summary.payments} payments, {summary.subscriptions} subscriptions, "
            f"{summary.billing_runs} nightly billing runs."
        )
        _echo_logins(summary.logins)

    @demo.command("logins")
    def demo_logins():
        """Print the demo's logins, one per role (their passwords are the demo's, public)."""
        _echo_logins(seed.logins())

    app.cli.add_command(demo)


def _echo_logins(logins) -> None:
    """The demo's logins as a small table."""
    click.echo("Log in with:")
    for login in logins:
        click.echo(f"  {login.role:<13} {login.identifier:<28} {login.password:<20} {login.name}")
