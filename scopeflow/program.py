"""How Scopeflow writes its own command in what it prints, so every printed command runs as printed.

A newcomer installs into a virtual environment and runs ``.venv/bin/scopeflow`` without activating
it; a hint that says ``scopeflow releases stop ID`` would then fail with "command not found". So
printed commands start with :func:`program`: plain ``scopeflow`` when that name on ``PATH`` is this
installation's command, else the full path of this installation's command, else this interpreter
with ``-m scopeflow``.
"""

from __future__ import annotations

import shlex
import shutil
import sys
from functools import lru_cache
from pathlib import Path


@lru_cache(maxsize=1)
def program() -> str:
    """The command that runs this Scopeflow from any shell (quoted for a POSIX shell)."""
    script = Path(sys.executable).parent / "scopeflow"   # not resolved: a venv's python is a link
    if script.is_file():
        found = shutil.which("scopeflow")
        if found and Path(found).resolve() == script.resolve():
            return "scopeflow"
        return shlex.quote(str(script))
    return f"{shlex.quote(sys.executable)} -m scopeflow"
