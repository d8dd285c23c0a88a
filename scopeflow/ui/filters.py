"""Jinja filters the templates share: ages, SLA states, durations and safe markdown."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Flask
from markdown_it import MarkdownIt
from markupsafe import Markup

DUE_SOON = timedelta(hours=1)

# Raw HTML in the markdown is escaped (html=False) and markdown-it refuses javascript:/data: links.
_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def render_markdown(text: str) -> Markup:
    """Markdown → HTML with every piece of HTML in the source shown as text, never interpreted."""
    # html=False: markdown-it escapes every tag in the source, so the output holds only its own markup.
    return Markup(_markdown.render(text or ""))  # nosec B704


def _parse(value: datetime | str | None) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def age(value: datetime | str | None, now: datetime | None = None) -> str:
    """'3m', '2h', '5d' since ``value``."""
    moment = _parse(value)
    if moment is None:
        return ""
    seconds = max(0, int(((now or datetime.now(UTC)) - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def sla_state(due: datetime | str | None, now: datetime | None = None) -> str:
    """'overdue', 'due soon' (within an hour), 'ok', or '' without a due time."""
    moment = _parse(due)
    if moment is None:
        return ""
    now = now or datetime.now(UTC)
    if moment < now:
        return "overdue"
    return "due soon" if moment - now <= DUE_SOON else "ok"


def duration_ms(ns: int) -> str:
    ms = ns / 1e6
    return f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.1f} ms"


def when(value: datetime | str | None) -> str:
    moment = _parse(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else ""


def register_filters(app: Flask) -> None:
    app.jinja_env.filters.update(age=age, sla_state=sla_state, duration_ms=duration_ms, when=when,
                                 markdown=render_markdown)
