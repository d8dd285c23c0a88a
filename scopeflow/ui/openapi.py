"""The OpenAPI 3.1 description of ``/api/v1`` (kept beside the routes; a test checks they agree)."""

from __future__ import annotations

from typing import Any

from scopeflow import __version__

_ERROR = {"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}


def _ok(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": schema or {"type": "object"}}}}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): _ERROR for code in codes}


def _op(summary: str, roles: str, ok: dict[str, Any], *codes: int, **extra: Any) -> dict[str, Any]:
    return {"summary": summary, "description": f"Roles: {roles} (admin passes every check).",
            "responses": {"200": ok, **_errors(401, 403, *codes)}, **extra}


def document() -> dict[str, Any]:
    """The OpenAPI document as a dict (served at ``/api/v1/openapi.json``)."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "Scopeflow API", "version": __version__,
                 "description": "Authenticate with a session cookie (then send X-CSRFToken on POST) or "
                                "`Authorization: Bearer <token>` (issue one on the account page); a request "
                                "with a bearer header is authenticated by that token alone. Submitters see and "
                                "act on their own instances and their tasks only (403 otherwise, left out of "
                                "lists); operators, reviewers and auditors see every instance."},
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}, {"session": []}],
        "paths": {
            "/instances": {
                "get": _op("List instances, newest first", "submitter, operator, reviewer, auditor",
                           _ok("a page of instances", {"$ref": "#/components/schemas/InstancePage"}), 400,
                           parameters=[
                               {"name": "status", "in": "query", "schema": {"type": "string"}},
                               {"name": "model", "in": "query", "schema": {"type": "string"}},
                               {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": 500}},
                               {"name": "offset", "in": "query", "schema": {"type": "integer", "minimum": 0}}]),
                "post": {"summary": "Submit a scope (starts a delivery instance)",
                         "description": "Roles: submitter (admin passes every check).",
                         "requestBody": {"required": True, "content": {"application/json": {
                             "schema": {"$ref": "#/components/schemas/Submission"}}}},
                         "responses": {"201": _ok("the new instance"), **_errors(400, 401, 403)}},
            },
            "/instances/{id}": {"get": _op("One instance with element states and human tasks",
                                           "submitter, operator, reviewer, auditor", _ok("the instance"), 404,
                                           parameters=[_ID])},
            "/instances/{id}/spans": {"get": _op("Every recorded span of the instance", "auditor, operator",
                                                 _ok("spans"), 404, parameters=[_ID])},
            "/instances/{id}/evidence": {"get": _op("Evidence report and integrity check", "auditor, operator",
                                                    _ok("evidence"), 404, parameters=[_ID])},
            "/tasks": {"get": _op("Human tasks for my roles", "submitter, operator, reviewer", _ok("tasks"), 400,
                                  parameters=[{"name": "status", "in": "query",
                                               "schema": {"enum": ["open", "completed", "cancelled"]}},
                                              {"name": "instance", "in": "query", "schema": {"type": "string"}}])},
            "/tasks/{id}": {"get": _op("One task with its form schema and instructions",
                                       "the task's role", _ok("the task"), 404, parameters=[_ID])},
            "/tasks/{id}/complete": {"post": {
                "summary": "Complete a task with form data (validated against its schema)",
                "description": "Roles: the task's role (admin passes every check). x-secret fields go to the "
                               "secret store only.",
                "parameters": [_ID],
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"data": {"type": "object"}}}}}},
                "responses": {"200": _ok("the instance's new status"), **_errors(400, 401, 403, 404)}}},
            "/models": {"get": _op("Stored model versions", "designer", _ok("model versions"))},
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "session": {"type": "apiKey", "in": "cookie", "name": "session"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
                "Submission": {"type": "object", "required": ["scope"], "properties": {
                    "title": {"type": "string", "maxLength": 300},
                    "scope": {"type": "string", "description": "markdown, at most 1 MB"},
                    "options": {"type": "object", "additionalProperties": {"type": "integer"}}}},
                "InstancePage": {"type": "object", "properties": {
                    "instances": {"type": "array", "items": {"type": "object"}},
                    "total": {"type": "integer"}, "limit": {"type": "integer"}, "offset": {"type": "integer"}}},
            },
        },
    }
