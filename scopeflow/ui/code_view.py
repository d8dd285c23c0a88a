"""Reading a build in the page: the workspace as a file tree, one file syntax-highlighted, and its
diff against the build an earlier review saw.

Generated files are shown as escaped text inside our own page (Pygments escapes every character it
emits), never served with their own content type, so generated HTML or JS cannot run in our origin.
To diff against "the previous build", the files a reviewer is shown are snapshotted (one JSON file
per review task under ``<home>/review-snapshots/<instance>/``); a later review of the same instance
diffs against the latest earlier snapshot. A build no review page showed has no snapshot, and the
page says so instead of pretending the files are unchanged.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path

from markupsafe import Markup
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import TextLexer, get_lexer_for_filename
from pygments.util import ClassNotFound

from scopeflow.ui import workspace_files

MAX_SHOWN_BYTES = 200_000        # a file larger than this is offered for download, not rendered
MAX_SNAPSHOT_BYTES = 5_000_000   # all text files of one build together
_FORMATTER = HtmlFormatter(cssclass="code", linenos="inline", wrapcode=True)


@dataclass
class TreeNode:
    """A folder of the file tree: its files (path, size) and sub-folders, both sorted."""

    name: str
    path: str
    files: list[tuple[str, str, int]] = field(default_factory=list)   # (name, relative path, size)
    folders: list[TreeNode] = field(default_factory=list)


@dataclass
class DiffLine:
    kind: str        # add | del | ctx | hunk
    text: str


@dataclass
class FileDiff:
    path: str
    status: str      # added | removed | changed | unchanged
    lines: list[DiffLine] = field(default_factory=list)


def reviewable(path: str) -> bool:
    """Files a reviewer reads: not tool caches or other dot-folders (``.cache``, ``.pytest_cache``)."""
    return not any(part.startswith(".") for part in path.split("/")[:-1])


def file_tree(listing: list[tuple[str, int]]) -> TreeNode:
    """The listing as nested folders (files first at each level, as IDEs show them)."""
    root = TreeNode("", "")
    for path, size in listing:
        node = root
        parts = path.split("/")
        for depth, part in enumerate(parts[:-1]):
            child = next((f for f in node.folders if f.name == part), None)
            if child is None:
                child = TreeNode(part, "/".join(parts[:depth + 1]))
                node.folders.append(child)
            node = child
        node.files.append((parts[-1], path, size))
    _sort(root)
    return root


def _sort(node: TreeNode) -> None:
    node.files.sort()
    node.folders.sort(key=lambda f: f.name)
    for child in node.folders:
        _sort(child)


def read_text(root: Path, relative: str) -> str | None:
    """The file's text, or None when it is missing, outside the workspace, binary or too large."""
    try:
        path = workspace_files.confined(root, relative)
    except workspace_files.OutsideWorkspace:
        return None
    if path.stat().st_size > MAX_SHOWN_BYTES:
        return None
    data = path.read_bytes()
    if b"\x00" in data:
        return None
    return data.decode("utf-8", errors="replace")


def shown_file(root: Path, selected: str, what: str) -> tuple[Markup | None, str]:
    """(highlighted code, "") for a text file of ``root``, else (None, why not); ``what`` names the
    tree in the message ("this workspace", "this build")."""
    text = read_text(root, selected)
    if text is None:
        return None, f"{selected} is not a text file of {what} (or is larger than {MAX_SHOWN_BYTES} bytes)"
    return highlighted(selected, text), ""


def highlighted(path: str, text: str) -> Markup:
    """``text`` as highlighted HTML with line numbers (every character escaped by Pygments)."""
    try:
        lexer = get_lexer_for_filename(path, stripnl=False)
    except ClassNotFound:
        lexer = TextLexer(stripnl=False)
    return Markup(highlight(text, lexer, _FORMATTER))  # nosec B704 - Pygments escapes its input


def highlight_css() -> str:
    return _FORMATTER.get_style_defs(".code")


def snapshot(root: Path, paths: list[str]) -> dict[str, str]:
    """path → text of the reviewable text files, up to MAX_SNAPSHOT_BYTES in all."""
    taken: dict[str, str] = {}
    total = 0
    for path in paths:
        text = read_text(root, path)
        if text is None:
            continue
        total += len(text)
        if total > MAX_SNAPSHOT_BYTES:
            break
        taken[path] = text
    return taken


def snapshot_dir(home: Path, instance_id: str) -> Path:
    return Path(home) / "review-snapshots" / instance_id


def save_snapshot(home: Path, instance_id: str, task_id: str, files: dict[str, str]) -> None:
    """Keep what review task ``task_id`` showed (first view wins: later views see the same build)."""
    folder = snapshot_dir(home, instance_id)
    target = folder / f"{task_id}.json"
    if target.exists():
        return
    folder.mkdir(parents=True, exist_ok=True)
    temporary = target.with_suffix(".tmp")
    temporary.write_text(json.dumps(files), encoding="utf-8")
    temporary.replace(target)


def load_snapshot(home: Path, instance_id: str, task_id: str) -> dict[str, str] | None:
    path = snapshot_dir(home, instance_id) / f"{task_id}.json"
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def diff_builds(old: dict[str, str], new: dict[str, str]) -> list[FileDiff]:
    """Per-file unified diffs (3 lines of context), changed files first, unchanged ones listed last."""
    out = []
    for path in sorted(set(old) | set(new)):
        before, after = old.get(path), new.get(path)
        if before == after:
            out.append(FileDiff(path, "unchanged"))
            continue
        status = "added" if before is None else "removed" if after is None else "changed"
        lines = []
        for line in list(difflib.unified_diff((before or "").splitlines(), (after or "").splitlines(),
                                              lineterm="", n=3))[2:]:
            kind = "hunk" if line.startswith("@@") else {"+": "add", "-": "del"}.get(line[:1], "ctx")
            lines.append(DiffLine(kind, line))
        out.append(FileDiff(path, status, lines))
    return sorted(out, key=lambda d: d.status == "unchanged")
