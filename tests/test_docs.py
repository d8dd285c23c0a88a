"""The documentation stays readable from a clone: no link leaves the repository, and every file
the design document names exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import REPO

DOCS = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md"), *(REPO / "bpmn-models").rglob("*.md")])
LINK = re.compile(r"\]\(([^)\s]+)\)")
CODE_PATH = re.compile(r"`([\w./-]+\.(?:py|md|toml|yaml|bpmn|json))`")
OUTSIDE = re.compile(r"(?:^|[\s`(])(/work/|\.\./shared/|notes/[\w-]+\.md)")


def doc_id(path: Path) -> str:
    return str(path.relative_to(REPO))


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_every_link_points_to_a_file_in_the_repository(doc: Path) -> None:
    for target in LINK.findall(doc.read_text(encoding="utf-8")):
        assert "://" not in target, f"{doc_id(doc)} links out of the repository: {target}"
        resolved = (doc.parent / target.split("#")[0]).resolve()
        assert resolved.is_relative_to(REPO) and resolved.exists(), f"{doc_id(doc)}: broken link {target}"


@pytest.mark.parametrize("doc", DOCS, ids=doc_id)
def test_no_document_cites_a_path_outside_the_repository(doc: Path) -> None:
    found = [m.group(1) for m in OUTSIDE.finditer(doc.read_text(encoding="utf-8"))]
    assert found == [], f"{doc_id(doc)} cites paths a clone does not have: {found}"


def test_no_module_cites_notes_outside_the_repository() -> None:
    cited = [f"{path.relative_to(REPO)}: {m.group(1)}"
             for path in sorted((REPO / "scopeflow").rglob("*.py"))
             for m in OUTSIDE.finditer(path.read_text(encoding="utf-8"))]
    assert cited == []


def test_every_file_the_architecture_names_exists() -> None:
    text = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    named = {p for p in CODE_PATH.findall(text) if "/" in p or p.endswith(".py")}   # not DELIVERY.md & co.
    missing = sorted(p for p in named if not (REPO / p).exists() and not (REPO / "scopeflow" / p).exists())
    assert named and missing == []
