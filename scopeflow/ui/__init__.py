"""The Scopeflow web UI: a Flask app over the engine's public API.

``create_app`` wires accounts (Flask-Login), CSRF (Flask-WTF), security headers and one blueprint
per area: auth, submit, instances, tasks (inbox), trace (auditor), models (designer) and the JSON
API under ``/api/v1``.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, render_template, request
from flask_login import LoginManager
from flask_wtf.csrf import CSRFError, CSRFProtect
from werkzeug.exceptions import HTTPException

from scopeflow.config import Settings, load_settings
from scopeflow.engine import accounts
from scopeflow.ui import security

csrf = CSRFProtect()

MAX_UPLOAD_BYTES = 2_000_000  # a scope is at most 1 MB; a BPMN file rarely more


def create_app(settings: Settings | None = None, engine: Any = None) -> Flask:
    """The web app for ``settings`` (default: from the environment) over ``engine`` (default: a new one)."""
    if engine is None:
        from scopeflow.engine.service import Engine

        engine = Engine(settings or load_settings())
    settings = engine.settings
    app = Flask(__name__)
    # MAX_FORM_MEMORY_SIZE: Werkzeug refuses a form field over 500 KB by default, which turned a
    # legal scope of 0.5-1 MB typed into the page into a 413; a scope's own limit is 1 MB.
    app.config.update(SECRET_KEY=security.secret_key(settings.home, settings.secret_key),
                      MAX_CONTENT_LENGTH=MAX_UPLOAD_BYTES, MAX_FORM_MEMORY_SIZE=MAX_UPLOAD_BYTES,
                      WTF_CSRF_TIME_LIMIT=None)
    security.cookie_settings(app, settings.secure_cookies)
    app.extensions["scopeflow.engine"] = engine
    csrf.init_app(app)
    _login_manager(engine).init_app(app)
    _register_blueprints(app)
    app.after_request(security.add_security_headers)
    _error_handlers(app)
    from scopeflow.ui.filters import register_filters

    register_filters(app)
    return app


def _login_manager(engine: Any) -> LoginManager:
    manager = LoginManager()
    manager.login_view = "auth.login"
    manager.session_protection = "strong"

    @manager.user_loader
    def load(session_id: str):
        # A request that sends a bearer token is that token's alone: the cookie is ignored, so an
        # invalid token is a 401, never a cookie session that skipped the API's CSRF check.
        if bearer_token() is not None:
            return None
        return accounts.account_by_session(engine.sessions, session_id)

    @manager.request_loader
    def from_token(_req):
        token = bearer_token()
        return accounts.account_by_token(engine.sessions, token) if token is not None else None

    return manager


def bearer_token() -> str | None:
    """The token of an ``Authorization: Bearer`` header ('' when empty), or None without one."""
    header = request.headers.get("Authorization", "")
    return header[len("Bearer "):].strip() if header.startswith("Bearer ") else None


def _register_blueprints(app: Flask) -> None:
    from scopeflow.ui import api, auth, designer, instances, submit, tasks, trace

    for module in (auth, submit, instances, tasks, trace, designer):
        app.register_blueprint(module.bp)
    csrf.exempt(api.bp)  # the API checks CSRF itself unless a bearer token (and only it) authenticates
    app.register_blueprint(api.bp)


def _error_handlers(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_failed(exc: CSRFError):
        return _error(400, f"CSRF check failed: {exc.description}")

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        specific = exc.description if exc.description != type(exc).description else ""
        return _error(exc.code or 500, specific or exc.description or exc.name, specific=bool(specific))

    @app.errorhandler(413)
    def too_large(exc: HTTPException):
        return _error(413, f"the request is larger than {MAX_UPLOAD_BYTES // 1_000_000} MB (a scope may have at "
                           "most 1 MB); nothing was stored — go back to keep your text")


_MESSAGES = {401: "sign in first", 403: "your roles do not allow this", 404: "not found"}


def _error(code: int, description: str, specific: bool = False):
    """The error page or JSON; a 401/403 says the generic words unless the view gave a reason."""
    message = _MESSAGES.get(code, description) if code in (401, 403) and not specific else description
    if security.wants_json():
        return security.error_response(code, message)
    return render_template("error.html", code=code, message=message, path=request.path), code
