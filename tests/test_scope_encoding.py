"""A scope file that is not UTF-8 text is refused in one line, never read with its bad bytes replaced
(which turned a binary file into a scope of garbage that ran to a blocker); the conversion command
the message prints works as printed."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys

import pytest

from scopeflow.lifecycle import NotUtf8, ScopeRejected, decode_scope
from tests.conftest import MODELS
from tests.test_catalog_and_cli import scopeflow

LATIN = "# Café list\n\n## Entities\n- Café: name, opening hours\n"


def test_utf8_with_or_without_a_bom_is_read_and_anything_else_is_refused():
    assert decode_scope(LATIN.encode("utf-8")) == LATIN
    assert decode_scope(b"\xef\xbb\xbf" + LATIN.encode("utf-8")) == LATIN
    with pytest.raises(NotUtf8, match=r"byte 0xe9 at offset 5") as caught:
        decode_scope(LATIN.encode("cp1252"))
    assert caught.value.offset == 5
    with pytest.raises(ScopeRejected, match="NUL bytes"):
        decode_scope(b"# a\x00b\n")


def test_the_cli_refuses_a_latin_1_file_and_its_printed_conversion_command_works(tmp_path):
    scope = tmp_path / "my scope.md"          # a space: the printed command must quote it
    scope.write_bytes(LATIN.encode("cp1252"))
    done = scopeflow(tmp_path, "submit", str(scope), "--yes")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    [line] = done.stderr.strip().splitlines()
    assert "is not UTF-8 text (byte 0xe9 at offset 5)" in line
    command = line.split("convert it with: ", 1)[1]
    assert command.startswith("iconv ") and shlex.split(command)[-1] == f"{scope}.utf8.md"
    subprocess.run(command, shell=True, check=True, cwd=tmp_path)   # as printed
    assert decode_scope((tmp_path / "my scope.md.utf8.md").read_bytes()) == LATIN


@pytest.mark.parametrize(("content", "message"), [
    (bytes(range(256)), "is not UTF-8 text"),
    (b"# Title\n\x00\x00\x00", "is not text (it holds NUL bytes)"),
])
def test_binary_files_and_stdin_are_refused_in_one_line(tmp_path, content, message):
    path = tmp_path / "scope.md"
    path.write_bytes(content)
    env = {**os.environ, "SCOPEFLOW_HOME": str(tmp_path / "home"), "SCOPEFLOW_MODELS": str(MODELS)}
    env.pop("SCOPEFLOW_DATABASE_URL", None)
    for args, stdin in ((["submit", str(path), "--yes"], None), (["submit", "-", "--yes"], content)):
        done = subprocess.run([sys.executable, "-m", "scopeflow", *args], input=stdin, capture_output=True,
                              env=env, timeout=120)
        err = done.stderr.decode()
        assert done.returncode == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "home" / "workspaces").exists() or not any((tmp_path / "home" / "workspaces").iterdir())
