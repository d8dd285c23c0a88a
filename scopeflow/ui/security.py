"""Who may do what, and the headers every response carries.

Roles come from the user account (admin passes every check). Pages redirect an anonymous visitor to
the login form; API routes answer 401 JSON instead. The Content-Security-Policy allows scripts and
styles from our own origin only: all JS lives in static files, and scripts style elements through
the DOM (``element.style``), which CSP permits; bpmn-js draws under this policy without violations
(checked in headless Chromium by the browser tests).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, abort, current_app, jsonify, redirect, request, url_for
from flask_login import current_user

from scopeflow.engine.db import private_dir

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'")


def wants_json() -> bool:
    """API routes (``/api/…``) and JSON polling endpoints answer errors as JSON."""
    return request.path.startswith("/api/") or request.path.endswith(".json")


def requires(*roles: str) -> Callable:
    """Route decorator: signed in, and holding one of ``roles`` (none given: any signed-in user)."""

    def wrap(view: Callable) -> Callable:
        @functools.wraps(view)
        def checked(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                if wants_json():
                    abort(401)
                return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
            if roles and not current_user.has_role(*roles):
                abort(403, needs_role(roles))
            return view(*args, **kwargs)

        checked.required_roles = roles  # read by the route × role tests
        return checked

    return wrap


def local_path(target: str | None, fallback: str) -> str:
    """``target`` when it is a path on this site, else ``fallback``: an absolute, scheme-relative or
    backslash URL (browsers read ``/\\host`` as ``//host``) would redirect off-site."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return fallback
    if "\\" in target or any(ord(c) < 0x21 or c == "\x7f" for c in target):
        return fallback
    parts = urlsplit(target)
    return fallback if parts.scheme or parts.netloc else target


def needs_role(roles: tuple[str, ...] | list[str]) -> str:
    """The 403 message: which role would do, and which the user has (so they know whom to ask)."""
    mine = ", ".join(sorted(current_user.roles)) or "none"
    return f"this needs the role {' or '.join(roles)} (or admin); your roles: {mine}"


def add_security_headers(response: Any) -> Any:
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    return response


def secret_key(home: Path, configured: str) -> str:
    """The session-signing key: derived from ``SCOPEFLOW_SECRET_KEY`` when set (the raw value also
    keys the secret store, so it is never used directly), else kept in ``<home>/ui-secret-key``
    (created 0600 on first use)."""
    if configured:
        return hmac.new(configured.encode("utf-8"), b"scopeflow-ui-session", hashlib.sha256).hexdigest()
    path = Path(home) / "ui-secret-key"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    private_dir(path.parent)
    key = secrets.token_hex(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(key)
    return key


def cookie_settings(app: Flask, secure: bool) -> None:
    """HttpOnly + SameSite=Lax always; Secure when ``SCOPEFLOW_SECURE_COOKIES=1`` (HTTPS deployments)."""
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Lax", SESSION_COOKIE_SECURE=secure,
        REMEMBER_COOKIE_HTTPONLY=True, REMEMBER_COOKIE_SAMESITE="Lax", REMEMBER_COOKIE_SECURE=secure,
    )


def engine():
    """The Engine this app was created with."""
    return current_app.extensions["scopeflow.engine"]


def error_response(code: int, message: str) -> Any:
    return jsonify({"error": message}), code
