"""The scope corpus: scopes written in every style the format allows (and some it merely tolerates),
each with the spec it must produce. Grow it with every misreading you fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scopeflow.handlers.requirements import content_lines
from scopeflow.handlers.scope import read_scope
from tests.scope_corpus_expect import compact

CORPUS = Path(__file__).parent / "scope_corpus"
SCOPES = sorted([*CORPUS.glob("*.md"), *CORPUS.glob("*.txt")])   # .txt: scopes written without markdown


def test_the_corpus_has_at_least_90_variants_each_with_an_expected_spec():
    assert len(SCOPES) >= 90
    assert all(path.with_suffix(".json").is_file() for path in SCOPES)


@pytest.mark.parametrize("path", SCOPES, ids=[p.stem for p in SCOPES])
def test_scope_reads_as_expected(path):
    reading = read_scope(path.read_bytes().decode("utf-8"))      # as written: CRLF files keep their \r
    expected = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
    assert compact(reading.spec, reading.unmapped_lines) == expected


@pytest.mark.parametrize("path", SCOPES, ids=[p.stem for p in SCOPES])
def test_every_line_maps_to_a_requirement_that_quotes_it(path):
    text = path.read_bytes().decode("utf-8")
    reading = read_scope(text)
    source = text.splitlines()
    assert reading.unmapped_lines == []
    assert reading.content_lines == len(content_lines(text))
    ids = [r.id for r in reading.spec.requirements]
    assert len(ids) == len(set(ids))
    for requirement in reading.spec.requirements:
        assert requirement.line >= 1, requirement
        assert requirement.source == source[requirement.line - 1].strip()[:300]
    bullet_lines = [n for n, line in enumerate(source, 1) if line.lstrip()[:2] in ("- ", "* ", "+ ")]
    covered = {n for r in reading.spec.requirements for n in r.lines}
    assert set(bullet_lines) <= covered
