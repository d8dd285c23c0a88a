"""What a built app *is*: its files and one digest over them, the same for verify and deploy.

The verifier records the digest of the app it checked; the deployer recomputes it on the app it is
about to ship and refuses to ship anything else, so nothing that changed the app after its checks
(a leftover process, a hand edit, a later build step) reaches a release unverified.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

SKIP_DIRS = frozenset({"__pycache__", ".pytest_cache", ".ruff_cache", ".mypy_cache", ".git", ".venv",
                       "venv", "node_modules", "instance"})   # instance/: local data (SQLite) of test runs
SKIP_SUFFIXES = (".pyc", ".pyo")
SKIP_PREFIXES = (".sandbox-tmp-",)    # a sandboxed run's private TMPDIR (deleted after the run)


def content_files(app_dir: Path) -> tuple[list[str], list[str]]:
    """``(files, links)``: the app's regular files and its symbolic links, POSIX paths relative to
    ``app_dir``, sorted. Caches, virtualenvs and ``instance/`` data are left out; links are listed,
    never followed."""
    files, links = [], []
    for dirpath, dirnames, filenames in os.walk(app_dir):
        here = Path(dirpath)
        links += [str((here / d).relative_to(app_dir)) for d in dirnames if (here / d).is_symlink()]
        dirnames[:] = sorted(d for d in dirnames if d not in SKIP_DIRS and not d.startswith(SKIP_PREFIXES)
                             and not (here / d).is_symlink())
        for name in filenames:
            path = here / name
            relative = path.relative_to(app_dir).as_posix()
            if path.is_symlink():
                links.append(relative)
            elif path.is_file() and not name.endswith(SKIP_SUFFIXES):
                files.append(relative)
    return sorted(files), sorted(links)


def app_digest(app_dir: Path, files: list[str]) -> str:
    """sha256 over the files' paths and contents: equal digests mean the same app."""
    total = hashlib.sha256()
    for relative in sorted(files):
        content = hashlib.sha256((Path(app_dir) / relative).read_bytes()).hexdigest()
        total.update(f"{relative}\0{content}\n".encode())
    return total.hexdigest()


def tree_digest(app_dir: Path) -> str:
    """The digest the deployer will compute for ``app_dir`` (it refuses apps holding links)."""
    return app_digest(app_dir, content_files(app_dir)[0])
