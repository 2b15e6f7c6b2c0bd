"""Application factory for the VoIP billing portal."""

from pathlib import Path

from flask import Flask, abort, jsonify, render_template, request
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFError
from sqlalchemy import event
from sqlalchemy.engine import make_url
from werkzeug.exceptions import SecurityError
from werkzeug.middleware.proxy_fix import ProxyFix

from portal.assets import register_static_caching
from portal.auth.sessions import load_session
from portal.calls.engine import bind_pool, listen_pragmas
from portal.config import load_config
from portal.extensions import compress, csrf, db, login_manager, migrate, sqlite_pragmas
from portal.headers import register_security_headers
from portal.ids import IdConverter
from portal.mariadb import check_failure_as_integrity_error, is_mariadb
from portal.mariadb import engine_options as mariadb_engine_options
from portal.private import private_file
from portal.softswitch.authorize import AuthorizeLane
from portal.templating import register_template_filters
from portal.transactions import commit_started, track_commits
from portal.web import HTTP_ERRORS, has_nul

MIGRATIONS_DIR = str(Path(__file__).parent / "migrations")
# A 500 before any commit of the request began: the transaction was rolled back.
NOTHING_SAVED = "Something went wrong on our side; nothing was saved."


def create_app(test_config: dict | None = None) -> Flask:
    """Create and configure the app; test_config overrides the environment."""
    root = Path(__file__).resolve().parent.parent
    app = Flask(
        __name__,
        instance_path=str(root / "instance"),
        template_folder=str(root / "templates"),
        static_folder=str(root / "static"),
    )
    app.config.update(load_config(app.instance_path))
    if test_config:
        app.config.update(test_config)
    # A server connection can die under the pool (a database restart): test it before use.
    # A SQLite file cannot, so its requests skip that extra statement.
    engine_options = app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {})
    uri = app.config["SQLALCHEMY_DATABASE_URI"]
    server = not uri.startswith("sqlite")
    sqlite_file = None if server else make_url(uri).database
    if sqlite_file and sqlite_file != ":memory:" and not sqlite_file.startswith("file:"):
        private_file(Path(app.instance_path, sqlite_file))  # 0600 before SQLite creates it
    engine_options.setdefault("pool_pre_ping", server)
    if is_mariadb(make_url(uri)):
        for name, value in mariadb_engine_options().items():
            engine_options.setdefault(name, value)
    bind_pool(app, engine_options)

    # The softswitch's call authorizations skip Flask's request cycle (see the class); inside
    # ProxyFix, so they see the client's address too.
    app.wsgi_app = AuthorizeLane(app, app.wsgi_app)
    if app.config["PROXY_COUNT"]:
        # Behind nginx: the client address (login throttling per IP) and scheme come from the
        # X-Forwarded-* headers the given number of trusted proxies set.
        count = app.config["PROXY_COUNT"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=count)
    # Every <int:...> of every route: an id beyond the INTEGER range is a 404, not a driver error.
    app.url_map.converters["int"] = IdConverter
    app.url_value_preprocessor(_no_nul_in_query)
    app.session_interface = PagesOnlySessionInterface()
    register_extensions(app)
    register_blueprints(app)
    register_errors(app)
    track_commits()
    register_template_filters(app)
    register_cli(app)
    bind_jobs(app)
    return app


class PagesOnlySessionInterface(SecureCookieSessionInterface):
    """The signed-cookie session of the pages; API requests get none (an empty, read-only one)."""

    def open_session(self, app: Flask, request):
        """No session for /api/: a machine sends a key, not a cookie, so none is read or set."""
        # Opening the signed cookie costs each request a serializer; the call API answers a
        # softswitch many times a second and never needs one.
        if request.path.startswith("/api/"):
            return self.make_null_session(app)
        return super().open_session(app, request)


def _no_nul_in_query(_endpoint, _values) -> None:
    """A NUL character in the query string is a 400, not a driver error (searches, filters)."""
    # No database column holds one, and PostgreSQL refuses a statement that carries one. Form
    # fields get a message of their own (portal.web.PortalForm); the call API checks its own.
    if any(has_nul(key) or has_nul(values) for key, values in request.args.lists()):
        abort(400)


def register_extensions(app: Flask) -> None:
    """Bind the extension instances to the app."""
    from portal import models  # noqa: F401  (register the tables with the metadata)
    from portal.models.account import compare_type

    db.init_app(app)
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        with app.app_context():
            event.listen(db.engine, "connect", sqlite_pragmas)
            listen_pragmas(app)
    if is_mariadb(make_url(app.config["SQLALCHEMY_DATABASE_URI"])):
        with app.app_context():
            for engine in db.engines.values():
                event.listen(engine, "handle_error", check_failure_as_integrity_error)
    migrate.init_app(
        app, db, directory=MIGRATIONS_DIR, render_as_batch=True, compare_type=compare_type
    )
    csrf.init_app(app)
    # gzip for pages, fragments, CSS/JS, JSON and CSV downloads (streamed ones chunk by chunk);
    # the call API's lane answers before Flask and is never compressed.
    compress.init_app(app)
    register_static_caching(app)
    register_security_headers(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message = "Please log in to open that page."
    login_manager.login_message_category = "info"
    login_manager.session_protection = "strong"

    # Each request's session is checked against its login session row (portal.auth.sessions).
    login_manager.user_loader(load_session)


def register_blueprints(app: Flask) -> None:
    """Register one blueprint per resource."""
    from portal.access import bp as access_bp
    from portal.accounts import bp as accounts_bp
    from portal.api import bp as api_bp
    from portal.apikeys.views import bp as apikeys_bp
    from portal.auditlog import bp as auditlog_bp
    from portal.auth import bp as auth_bp
    from portal.billing import bp as billing_bp
    from portal.calls.views import bp as calls_bp
    from portal.dashboard import bp as dashboard_bp
    from portal.jobs import bp as jobs_bp
    from portal.me import bp as me_bp
    from portal.money import bp as money_bp
    from portal.outbox import bp as outbox_bp
    from portal.products import bp as products_bp
    from portal.settings import bp as settings_bp
    from portal.softswitch import bp as softswitch_bp
    from portal.tariffs import bp as tariffs_bp
    from portal.taxes import bp as taxes_bp

    for blueprint in (
        auth_bp,
        dashboard_bp,
        accounts_bp,
        access_bp,
        tariffs_bp,
        taxes_bp,
        products_bp,
        settings_bp,
        auditlog_bp,
        outbox_bp,
        billing_bp,
        me_bp,
        money_bp,
        apikeys_bp,
        calls_bp,
        jobs_bp,
        api_bp,
        softswitch_bp,
    ):
        app.register_blueprint(blueprint)
    csrf.exempt(softswitch_bp)
    csrf.exempt(api_bp)  # machines authenticate with a bearer key, not a browser session


def register_errors(app: Flask) -> None:
    """Friendly pages for the HTTP errors a user can meet."""

    def handler(code: int, title: str, message: str):
        def render(error):
            text = message
            if code == 500 and not commit_started():
                text = NOTHING_SAVED  # known: no commit began, the transaction rolls back
            if request.path.startswith("/api/"):  # machines get JSON, even for unknown routes
                return jsonify({"error": text}), code
            if isinstance(request.routing_exception, SecurityError):
                # A Host outside TRUSTED_HOSTS: no URL can be built for it, so no page either.
                return text, code, {"Content-Type": "text/plain; charset=utf-8"}
            return render_template("errors/error.html", code=code, title=title, message=text), code

        return render

    for code, (title, message) in HTTP_ERRORS.items():
        app.register_error_handler(code, handler(code, title, message))

    @app.errorhandler(CSRFError)
    def csrf_error(error):
        return render_template(
            "errors/error.html",
            code=400,
            title="Session expired",
            message="The form's security token was missing or expired. Reload and try again.",
        ), 400


def bind_jobs(app: Flask) -> None:
    """Register the job handlers and periodic tasks, and run tasks inside this app."""
    from portal.background.engine import bind
    from portal.jobs import tasks  # noqa: F401  (the handlers and periodic tasks register)

    bind(app)


def register_cli(app: Flask) -> None:
    """Register the flask commands."""
    from portal.cli import register

    register(app)
