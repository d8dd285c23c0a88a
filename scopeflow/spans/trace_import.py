"""What ``scopeflow trace import`` does with the spans of a file: group, compare, or adopt them.

Spans that carry ``scopeflow.instance.id`` belong to that instance. Spans without it come from
another system (a foreign trace); each of their traces becomes an imported trace of its own, stored
under ``imported-<first 27 hex digits of the trace id>`` (36 characters, like an instance id), so
it can be viewed, exported and verified like any instance's spans, and importing the same file
again finds it stored. The spans themselves are stored exactly as read: nothing is added to them.

A file's copy is the same record as the stored one when it holds the same spans, in any order: a
collector batches and reorders spans, so the comparison is by span id, and ``seq`` (the position in
the stored chain) is not part of it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from scopeflow.spans.otlp_json import IMPORTED_PREFIX
from scopeflow.spans.record import SpanRecord


def imported_id(trace_id: str) -> str:
    """The id a foreign trace is stored under."""
    return IMPORTED_PREFIX + trace_id[:27]


def is_imported(instance_id: str) -> bool:
    return instance_id.startswith(IMPORTED_PREFIX)


def group_spans(records: list[SpanRecord]) -> dict[str, list[SpanRecord]]:
    """The file's spans by the id they are stored under, in file order, ``seq`` numbered per group."""
    groups: dict[str, list[SpanRecord]] = {}
    for record in records:
        if not record.instance_id:
            record.instance_id = imported_id(record.trace_id)
        groups.setdefault(record.instance_id, []).append(record)
    for group in groups.values():
        for seq, record in enumerate(group, 1):
            record.seq = seq
    return groups


@dataclass
class Comparison:
    """How a file's copy of an instance's spans differs from the stored record (nothing = identical)."""

    missing: list[str] = field(default_factory=list)     # stored span ids the file lacks
    extra: list[str] = field(default_factory=list)       # file span ids not stored
    changed: list[str] = field(default_factory=list)     # span ids whose content differs

    @property
    def identical(self) -> bool:
        return not (self.missing or self.extra or self.changed)

    def summary(self) -> str:
        parts = [f"{len(ids)} {what} (first {ids[0]})" for what, ids in
                 (("stored spans missing from the file", self.missing), ("spans not in the store", self.extra),
                  ("spans that differ", self.changed)) if ids]
        return "; ".join(parts)


def compare(stored: list[SpanRecord], imported: list[SpanRecord]) -> Comparison:
    """Order-independent comparison by span id of everything but the chain position."""
    mine = {span.span_id: _content(span) for span in stored}
    theirs = {span.span_id: _content(span) for span in imported}
    return Comparison(
        missing=sorted(set(mine) - set(theirs)),
        extra=sorted(set(theirs) - set(mine)),
        changed=sorted(span_id for span_id in set(mine) & set(theirs) if mine[span_id] != theirs[span_id]),
    )


def _content(span: SpanRecord) -> dict:
    data = asdict(span)
    data.pop("seq", None)
    return data
