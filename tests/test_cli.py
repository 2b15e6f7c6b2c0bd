"""First start (init), create-admin, and the generated SECRET_KEY."""

import re
import stat

import pytest
from sqlalchemy import func, select

from portal.config import load_config
from portal.extensions import db
from portal.models import Account, RateGroup, Role


def admins() -> list[Account]:
    """Every administrator."""
    return list(db.session.scalars(select(Account).where(Account.role == Role.ADMIN)))


def test_init_uses_the_environment_admin(app, user, monkeypatch):
    monkeypatch.setenv("PORTAL_ADMIN_EMAIL", "Boss@Example.com")
    monkeypatch.setenv("PORTAL_ADMIN_PASSWORD", "Env-passw0rd")
    result = app.test_cli_runner().invoke(args=["init"])
    assert result.exit_code == 0, result.output
    assert "password:" not in result.output  # nothing to print: the operator chose it
    assert 'Created rate group "Default"' in result.output
    (admin,) = admins()
    assert admin.email == "boss@example.com"
    assert user.login("boss@example.com", "Env-passw0rd").status_code == 303


def test_init_generates_a_password_once_and_is_idempotent(app, user, monkeypatch):
    monkeypatch.delenv("PORTAL_ADMIN_EMAIL", raising=False)
    monkeypatch.delenv("PORTAL_ADMIN_PASSWORD", raising=False)
    runner = app.test_cli_runner()
    first = runner.invoke(args=["init"])
    number = re.search(r"account number (\d+)", first.output).group(1)
    password = re.search(r"password: (\S+)", first.output).group(1)
    assert user.login(number, password).status_code == 303
    second = runner.invoke(args=["init"])
    assert second.exit_code == 0 and second.output == ""
    assert len(admins()) == 1
    assert db.session.scalar(select(func.count()).select_from(RateGroup)) == 1


def test_create_admin_command(app, user):
    runner = app.test_cli_runner()
    args = ["create-admin", "--email", "ops@example.com", "--password", "Ops-passw0rd"]
    result = runner.invoke(args=args)
    assert result.exit_code == 0, result.output
    assert user.login("ops@example.com", "Ops-passw0rd").status_code == 303
    again = runner.invoke(args=args)
    assert again.exit_code != 0 and "already uses this e-mail" in again.output
    weak = runner.invoke(args=["create-admin", "--email", "x@example.com", "--password", "weak"])
    assert weak.exit_code != 0 and "at least 8" in weak.output
    bad = runner.invoke(args=["create-admin", "--email", "nope", "--password", "Ops-passw0rd"])
    assert bad.exit_code != 0 and "email" in bad.output
    assert len(admins()) == 1


def test_secret_key_is_generated_once_into_the_instance_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    first = load_config(str(tmp_path))["SECRET_KEY"]
    assert len(first) >= 64
    assert load_config(str(tmp_path))["SECRET_KEY"] == first
    mode = (tmp_path / "secret_key").stat().st_mode
    assert stat.S_IMODE(mode) == 0o600


def test_secret_key_and_database_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "from-env")
    monkeypatch.setenv("DATABASE_URL", "postgres://u@db.example/portal")
    config = load_config(str(tmp_path))
    assert config["SECRET_KEY"] == "from-env"
    assert config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u@db.example/portal"
    assert not (tmp_path / "secret_key").exists()


@pytest.mark.parametrize(
    "url",
    ["mysql://u:p@db.example/portal", "mariadb://u:p@db.example/portal"],
)
def test_a_mariadb_url_is_served_by_pymysql(tmp_path, monkeypatch, url):
    monkeypatch.setenv("DATABASE_URL", url)
    config = load_config(str(tmp_path))
    assert config["SQLALCHEMY_DATABASE_URI"] == "mysql+pymysql://u:p@db.example/portal"


def test_default_database_is_sqlite_in_the_instance_folder(tmp_path, monkeypatch):
    monkeypatch.delenv("DATABASE_URL", raising=False)
    config = load_config(str(tmp_path))
    assert config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path}/portal.sqlite3"
