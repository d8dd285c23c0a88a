"""Jinja filters the templates share: ages, SLA states, durations and safe markdown."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Flask
from markdown_it import MarkdownIt
from markupsafe import Markup

from scopeflow.ui.sla import due_words, duration_words, durations_in_words, parse_moment, sla_state

# Raw HTML in the markdown is escaped (html=False) and markdown-it refuses javascript:/data: links.
_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def render_markdown(text: str) -> Markup:
    """Markdown → HTML with every piece of HTML in the source shown as text, never interpreted."""
    # html=False: markdown-it escapes every tag in the source, so the output holds only its own markup.
    return Markup(_markdown.render(text or ""))  # nosec B704


def age(value: datetime | str | None, now: datetime | None = None) -> str:
    """'3m', '2h', '5d' since ``value``."""
    moment = parse_moment(value)
    if moment is None:
        return ""
    seconds = max(0, int(((now or datetime.now(UTC)) - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def duration_ms(ns: int) -> str:
    ms = ns / 1e6
    return f"{ms / 1000:.2f} s" if ms >= 1000 else f"{ms:.1f} ms"


def when(value: datetime | str | None) -> str:
    moment = parse_moment(value)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else ""


def utc_ns(seconds: float) -> str:
    """Seconds since the epoch as a UTC time to the millisecond (span start and end times)."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def register_filters(app: Flask) -> None:
    app.jinja_env.filters.update(age=age, sla_state=sla_state, duration_ms=duration_ms, when=when,
                                 markdown=render_markdown, due_words=due_words, duration_words=duration_words,
                                 durations_in_words=durations_in_words, utc_ns=utc_ns)
