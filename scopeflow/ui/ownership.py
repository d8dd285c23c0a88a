"""Whose instances a person may see and act on: submitters their own, the other roles by role.

A submitter sees the instances they started, with their tasks, files, archive and trace; an
operator, reviewer or auditor (and admin) sees every instance, as their work needs. One rule for
every view: the views load an instance through ``instances.load_instance`` and a task through
``tasks.load_task``, which both call :func:`check`, and the lists filter with :func:`owner_filter`.
"""

from __future__ import annotations

from flask import abort
from flask_login import current_user

SEES_EVERY_INSTANCE = ("operator", "reviewer", "auditor")


def owner_filter() -> str | None:
    """None when the signed-in user sees every instance, else the name whose instances they see."""
    return None if current_user.has_role(*SEES_EVERY_INSTANCE) else current_user.name


def check(created_by: str) -> None:
    """403 unless the signed-in user may see an instance started by ``created_by``."""
    owner = owner_filter()
    if owner is not None and created_by != owner:
        abort(403, "this instance belongs to another submitter")
