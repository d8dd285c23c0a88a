"""``scopeflow instances show ID --json`` shows what the run produced: its workflow data, redacted."""

from __future__ import annotations

import json

from tests.test_catalog_and_cli import scopeflow


def test_instances_show_json_includes_the_workflow_data_with_secrets_redacted(tmp_path):
    secret = "s3cr3t-token-value"
    assert scopeflow(tmp_path, "secrets", "set", "DEMO_TOKEN", "--value", secret).returncode == 0
    started = scopeflow(tmp_path, "start", "hello", "--data", json.dumps({"name": f"Ada {secret}"}), "--json")
    assert started.returncode == 0, started.stderr
    instance_id = json.loads(started.stdout)["id"]
    shown = scopeflow(tmp_path, "instances", "show", instance_id, "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)["data"]
    assert data["greeting"] == {"text": "Hello, Ada [REDACTED]!"}
    assert data["totals"] == {"count": 3, "total": 12}
    assert secret not in shown.stdout
