"""What the credential scanner decides a built app reads, and how it decides what a deploy needs."""

from __future__ import annotations

from pathlib import Path

import pytest

from scopeflow.handlers.credential_reads import NotBuilt, decide, scan


def app_with(tmp_path: Path, source: str, path: str = "webapp/service.py") -> Path:
    target = tmp_path / "app" / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(source, encoding="utf-8")
    return tmp_path / "app"


def kinds(app: Path) -> dict[str, bool]:
    """name -> required, over every read (required when any read of it is)."""
    found: dict[str, bool] = {}
    for read in scan(app):
        found[read.name] = found.get(read.name, False) or read.required
    return found


@pytest.mark.parametrize("source, expected", [
    ('import os\nKEY = os.environ["API_KEY"]\n', {"API_KEY": True}),
    ('from os import environ\nKEY = environ["API_KEY"]\n', {"API_KEY": True}),
    ('import os\nKEY = os.environ.pop("API_KEY")\n', {"API_KEY": True}),
    ('import os\nKEY = os.environ.get("API_KEY")\n', {"API_KEY": False}),
    ('import os\nKEY = os.environ.get("API_KEY", "dev")\n', {"API_KEY": False}),
    ('import os\nKEY = os.getenv("API_KEY")\n', {"API_KEY": False}),
    ('from os import getenv\nKEY = getenv("API_KEY", "x")\n', {"API_KEY": False}),
    ('import os\nos.environ.setdefault("API_KEY", "x")\n', {"API_KEY": False}),
    ('import os\nON = "API_KEY" in os.environ\n', {"API_KEY": False}),
    ('import os\nif os.environ.get("USER_NAME"):\n    login(os.environ["USER_NAME"])\n', {"USER_NAME": False}),
    ('import os\nKEY = os.environ["K"] if "K" in os.environ else None\n', {"K": False}),
    ('import os\ntry:\n    KEY = os.environ["K"]\nexcept KeyError:\n    KEY = None\n', {"K": False}),
    ('import os\nif os.environ.get("A"):\n    x = os.environ["B"]\n', {"A": False, "B": True}),
    ('import os\nfor name in ("A", "B"):\n    os.environ[name]\n', {}),
    ('import os\nos.environ["K"] = "set, not read"\n', {}),
])
def test_reads_are_required_only_without_a_fallback(tmp_path, source, expected):
    assert kinds(app_with(tmp_path, source)) == expected


def test_tests_files_that_do_not_parse_and_a_missing_app_read_nothing(tmp_path):
    app = app_with(tmp_path, 'import os\nos.environ["IN_TESTS"]\n', "tests/test_x.py")
    app_with(tmp_path, 'import os\nos.environ["BROKEN" \n', "webapp/broken.py")
    app_with(tmp_path, 'SECRET = "os.environ[\'IN_TEXT\']"\n', "webapp/templates/page.html")
    assert scan(app) == []
    assert scan(tmp_path / "nowhere") == []


def test_a_read_says_where_it_is(tmp_path):
    [read] = scan(app_with(tmp_path, '\n\nimport os\nKEY = os.environ["API_KEY"]\n'))
    assert (read.name, read.required, read.path, read.line) == ("API_KEY", True, "webapp/service.py", 4)


def test_decide_keeps_what_the_code_reads_and_lists_integrations_nothing_reads(tmp_path):
    app = app_with(tmp_path, 'import os\nA = os.environ["SMTP_HOST"]\nB = os.getenv("SMTP_FROM")\n'
                   'C = os.environ["GEO_TOKEN"]\nD = os.environ["HOST"]\nE = os.environ["SCOPEFLOW_HOME"]\n'
                   'F = os.getenv("DATABASE_URL")\n')
    declared = {"SMTP_HOST": ["Email"], "SMTP_FROM": ["Email"], "SMTP_PORT": ["Email"], "PAYMENT_API_KEY": ["Pay"]}
    integrations = {"Email": ["SMTP_HOST"], "Pay": ["PAYMENT_API_KEY"], "Webhook": []}
    needs = decide(scan(app), declared, integrations, frozenset({"HOST"}))
    assert needs.required == ["SMTP_HOST", "GEO_TOKEN"]        # undeclared but unavoidable: GEO_TOKEN
    assert needs.optional == ["SMTP_FROM"]                      # undeclared optional reads (DATABASE_URL) are config
    assert needs.labels["GEO_TOKEN"] == ["the built code"]
    assert needs.not_built == [NotBuilt("Pay", ["PAYMENT_API_KEY"])]
