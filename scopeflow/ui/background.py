"""Advance instances outside the request that changed them.

Completing a human task can start minutes of work (a build and its checks). The request only
checkpoints the completion (``Engine.complete_task(..., advance=False)``) and hands the instance to
this small pool; the page then refreshes live while it runs. The instance is also marked for the
embedded worker, so work queued here that a restart drops is picked up again.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

log = logging.getLogger(__name__)

_pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="scopeflow-ui-advance")


def advance_later(engine: Any, instance_id: str) -> Future:
    return _pool.submit(_advance, engine, instance_id)


def _advance(engine: Any, instance_id: str) -> str:
    from scopeflow.engine.service import Busy

    try:
        return engine.advance(instance_id, reason="ui")
    except Busy:
        return "busy"  # the embedded worker got there first
    except Exception:  # an incident is recorded by advance itself; this is the store or a bug
        log.exception("instance %s: background advance failed", instance_id)
        return "failed"
