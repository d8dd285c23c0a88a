"""Files of an instance's workspace for download: one file or the whole tree as a zip.

Every path is resolved and must stay inside the workspace; symlinks pointing outside it are
skipped, so a generated app cannot make the UI serve files from elsewhere on the host.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

MAX_LISTED = 500


class OutsideWorkspace(ValueError):
    """A requested path escapes the workspace or does not name a file in it."""


def confined(root: Path, relative: str) -> Path:
    """The file ``relative`` under ``root``; OutsideWorkspace for anything else."""
    root = root.resolve()
    target = (root / relative).resolve()
    if not target.is_relative_to(root) or not target.is_file():
        raise OutsideWorkspace(f"no file {relative!r} in the workspace")
    return target


def _files(root: Path) -> list[Path]:
    root = root.resolve()
    if not root.is_dir():
        return []
    out = []
    for path in sorted(root.rglob("*")):
        if "__pycache__" in path.parts or ".pytest_cache" in path.parts:
            continue
        if path.is_file() and path.resolve().is_relative_to(root):
            out.append(path)
    return out


def listing(root: Path) -> list[tuple[str, int]]:
    """(relative path, size) of the first MAX_LISTED files."""
    root = root.resolve()
    return [(p.relative_to(root).as_posix(), p.stat().st_size) for p in _files(root)[:MAX_LISTED]]


def zip_workspace(root: Path) -> io.BytesIO:
    """The workspace as a zip in memory (generated apps are small)."""
    root = root.resolve()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in _files(root):
            archive.write(path, path.relative_to(root).as_posix())
    buffer.seek(0)
    return buffer
