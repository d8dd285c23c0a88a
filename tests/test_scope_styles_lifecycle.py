"""Two new scope styles through whole ``submit --yes`` runs: YAML front matter (its lines used to be
unmapped, so the evidence gate refused a scope that was otherwise fully built) and a scope asking for
what no template builds (payments, a mobile app, GPS: each must end a ``not built`` line of the
report with its reason, not vanish)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_requirements_lifecycle import by_text, matrix_rows, submit_json

CORPUS = Path(__file__).parent / "scope_corpus"

pytestmark = pytest.mark.slow


def test_a_scope_with_yaml_front_matter_is_delivered_and_its_metadata_is_no_requirement(cli):
    scope = CORPUS / "80-yaml-front-matter.md"
    result = submit_json(cli, scope)
    assert (result["status"], result["outcome"]) == ("completed", "delivered")
    rows = matrix_rows(result["report"])
    assert result["requirements"]["delivered"] == len(rows) == result["requirements"]["total"]
    assert not [r for r in rows.values() if r["line"] and 3 <= int(r["line"]) <= 6]   # author, version, tags
    verdicts = by_text(rows)
    assert verdicts["the app is called 'Pottery class booking'"] == "delivered"
    assert verdicts["Booking.class refers to Class"] == "delivered"


def test_what_no_template_builds_is_reported_not_built_with_its_reason_beside_what_was_delivered(cli):
    scope = CORPUS / "89-unbuildable-payments-mobile.md"
    result = submit_json(cli, scope)
    assert result["outcome"] == "delivered"
    rows = matrix_rows(result["report"])
    verdicts = by_text(rows)
    for line in ("iOS and Android mobile app for customers", "Take card payments with Apple Pay",
                 "Real-time GPS tracking of the truck on a map", "Push notifications when an order is ready"):
        assert verdicts[line].startswith("not built: "), (line, verdicts[line])
    assert verdicts["integration Stripe"].startswith("not built: external service integration")
    assert verdicts["list orders"] == "delivered"
    assert result["requirements"]["not_built"] == 5
    text = Path(result["report"]).read_text(encoding="utf-8")
    assert "- not built: Take card payments with Apple Pay" in text
