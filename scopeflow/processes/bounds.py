"""Limits a model must respect so that no diagram can hang a worker or exhaust its memory.

Lint checks what it can see in the XML (literal timers, literal cardinalities, the call graph, the
model's size); the engine checks the same limits on values computed at run time (a timer expression,
a cardinality from task data), so an overrun is a lint error or an incident, never a hang.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

MAX_TIMER_DAYS = 366 * 100          # a timer more than a century away is a typo or an attack
MIN_CYCLE_INTERVAL_S = 60           # a repeating timer fires at most once a minute
MAX_CYCLE_REPETITIONS = 10_000      # R<n>/… with n above this is refused
MAX_CATCH_UP = 10                   # intervals a cycle's start may lie in the past
MAX_MULTI_INSTANCES = 1_000         # instances one multi-instance activity may create
MAX_CALL_DEPTH = 10                 # call activities calling call activities
MAX_FLOW_ELEMENTS = 20_000          # flow elements and flows in one file: ~10,000 tasks, parsed in seconds
                                    # (the parser recurses per flow; engine/spiff.py sizes the recursion limit)


class BoundError(ValueError):
    """A value outside one of the limits above (the message names the limit)."""


_DURATION = re.compile(
    r"P(?:(?P<years>\d+(?:[.,]\d+)?)Y)?(?:(?P<months>\d+(?:[.,]\d+)?)M)?(?:(?P<weeks>\d+(?:[.,]\d+)?)W)?"
    r"(?:(?P<days>\d+(?:[.,]\d+)?)D)?(?:T(?:(?P<hours>\d+(?:[.,]\d+)?)H)?(?:(?P<minutes>\d+(?:[.,]\d+)?)M)?"
    r"(?:(?P<seconds>\d+(?:[.,]\d+)?)S)?)?", re.IGNORECASE)
_SECONDS = {"years": 365.25 * 86400, "months": 30.44 * 86400, "weeks": 7 * 86400, "days": 86400,
            "hours": 3600, "minutes": 60, "seconds": 1}


def duration_seconds(text: str) -> float:
    """Approximate length of an ISO 8601 duration (``P1M`` counts 30.44 days); ValueError if malformed."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or not any(match.groupdict().values()) or text.strip().upper().endswith("T"):
        raise ValueError(f"\u201c{text.strip()}\u201d is not an ISO 8601 duration (e.g. PT5M, P7D)")
    return sum(float(value.replace(",", ".")) * _SECONDS[name]
               for name, value in match.groupdict().items() if value)


def _date(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"\u201c{text.strip()}\u201d is not an ISO 8601 date-time "
                         "(e.g. 2030-01-31T09:00:00Z)") from None


def _point(text: str) -> float | datetime:
    return duration_seconds(text) if text.strip().upper().startswith("P") else _date(text)


def check_duration(text: str) -> float:
    seconds = duration_seconds(text)
    if seconds > MAX_TIMER_DAYS * 86400:
        raise BoundError(f"timer duration {text.strip()} is longer than the limit of {MAX_TIMER_DAYS // 366} years")
    return seconds


def check_cycle(text: str) -> None:
    """``R[n]/[start/]duration`` with at most :data:`MAX_CYCLE_REPETITIONS` repetitions, each at least
    :data:`MIN_CYCLE_INTERVAL_S` apart."""
    parts = text.strip().split("/")
    if not parts[0].upper().startswith("R") or len(parts) not in (2, 3):
        raise ValueError(f"\u201c{text.strip()}\u201d is not an ISO 8601 cycle (e.g. R3/PT10M)")
    count = parts[0][1:]
    if count and not count.isdigit():
        raise ValueError(f"\u201c{text.strip()}\u201d: the repetition count must be a number")
    if count and int(count) > MAX_CYCLE_REPETITIONS:
        raise BoundError(f"timer cycle {text.strip()} repeats more than {MAX_CYCLE_REPETITIONS:,} times")
    points = [_point(p) for p in parts[1:]]
    intervals = [p for p in points if isinstance(p, float)]
    if len(intervals) != 1:
        raise ValueError(f"\u201c{text.strip()}\u201d needs exactly one duration (e.g. R/PT1H or R3/2030-01-01T00:00Z/P1D)")
    if intervals[0] < MIN_CYCLE_INTERVAL_S:
        raise BoundError(f"timer cycle {text.strip()} repeats every {intervals[0]:g}s; the minimum interval is "
                         f"{MIN_CYCLE_INTERVAL_S}s")
    if intervals[0] > MAX_TIMER_DAYS * 86400:
        raise BoundError(f"timer cycle {text.strip()} has an interval longer than {MAX_TIMER_DAYS // 366} years")
    starts = [p for p in points if isinstance(p, datetime)]
    if starts and len(parts) == 3 and isinstance(points[0], datetime):
        check_catch_up(text.strip(), starts[0], intervals[0])


def check_catch_up(text: str, start: datetime, interval_s: float) -> None:
    """A cycle that starts far in the past would fire once per missed interval, all at once."""
    start = start if start.tzinfo else start.replace(tzinfo=UTC)
    missed = (datetime.now(UTC) - start).total_seconds() / interval_s
    if missed > MAX_CATCH_UP:
        raise BoundError(f"timer cycle {text} starts {int(missed):,} intervals in the past and would fire that "
                         f"often at once (at most {MAX_CATCH_UP})")


def check_timer(kind: str, value: str) -> None:
    """Check a timer's evaluated value: ``kind`` is timeDate, timeDuration or timeCycle."""
    if not isinstance(value, str):
        raise ValueError(f"a {kind} must evaluate to ISO 8601 text, not a {type(value).__name__}")
    if kind == "timeCycle":
        check_cycle(value)
    elif kind == "timeDuration":
        check_duration(value)
    else:
        _date(value) if not value.strip().upper().startswith("P") else check_duration(value)


def check_cardinality(value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        return  # a collection or a non-number: SpiffWorkflow reports what it cannot use
    if value > MAX_MULTI_INSTANCES:
        raise BoundError(f"multi-instance cardinality {value:,} is above the limit of {MAX_MULTI_INSTANCES:,}")
