"""Flask commands: init (first start) and create-admin."""

import os

import click
from flask import Flask

from portal.accounts.service import create_admin, first_admin_exists
from portal.rules.identifiers import generate_password
from portal.settings.service import get_setting
from portal.tariffs.service import ensure_default_rate_group


def register(app: Flask) -> None:
    """Attach the commands to the app."""

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
