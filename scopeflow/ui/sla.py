"""Due dates as people read them: SLA state, time left or overdue, and ISO 8601 durations in words.

No Flask here: the CLI's task list uses the same words as the inbox.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

DUE_SOON = timedelta(hours=1)

_ISO_DURATION = re.compile(
    r"\bP(?=\d|T\d)(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?=\d)(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?\b")
_UNITS = (("years", "year"), ("months", "month"), ("weeks", "week"), ("days", "day"), ("hours", "hour"),
          ("minutes", "minute"), ("seconds", "second"))


def parse_moment(value: datetime | str | None) -> datetime | None:
    """An aware datetime from a datetime or ISO string (naive values are UTC, as the store writes them)."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def sla_state(due: datetime | str | None, now: datetime | None = None) -> str:
    """'overdue', 'due soon' (within an hour), 'ok', or '' without a due time."""
    moment = parse_moment(due)
    if moment is None:
        return ""
    now = now or datetime.now(UTC)
    if moment < now:
        return "overdue"
    return "due soon" if moment - now <= DUE_SOON else "ok"


def span_words(delta: timedelta) -> str:
    """'2 d 3 h', '7 h 59 min', '12 min', '40 s': the two largest units of a time span."""
    seconds = int(abs(delta).total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            parts.append(f"{seconds // size} {unit}")
            seconds %= size
    if not parts:
        parts.append(f"{seconds} s")
    return " ".join(parts[:2])


def due_words(due: datetime | str | None, now: datetime | None = None) -> str:
    """'in 7 h 59 min' or '3 h overdue'; '' without a due time."""
    moment = parse_moment(due)
    if moment is None:
        return ""
    left = moment - (now or datetime.now(UTC))
    return f"{span_words(left)} overdue" if left.total_seconds() < 0 else f"in {span_words(left)}"


def duration_words(iso: str) -> str:
    """'PT24H' → '24 hours', 'P1DT2H' → '1 day 2 hours'; the input unchanged when it is not a duration."""
    match = _ISO_DURATION.fullmatch(iso.strip()) if isinstance(iso, str) else None
    if not match:
        return iso
    words = []
    for group, unit in _UNITS:
        raw = match.group(group)
        if raw is None:
            continue
        number = float(raw)
        shown = f"{number:g}"
        words.append(f"{shown} {unit}{'' if number == 1 else 's'}")
    return " ".join(words) or iso


def durations_in_words(text: str) -> str:
    """Every ISO 8601 duration inside ``text`` written in words (for instructions people read)."""
    return _ISO_DURATION.sub(lambda m: duration_words(m.group(0)), text or "")
