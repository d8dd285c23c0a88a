"""A generated app's ``send-reminders`` against SMTP servers that misbehave: refused, 5xx on RCPT, a hang.

The command of a rendered app runs through Flask's CLI runner against a small SMTP server on
loopback. Each case checks the bounded time, the one-line error that says what stays
queued and what to check, and the outbox rows left unsent.
"""

from __future__ import annotations

import datetime
import socket
import sys
import threading
import time

import pytest

from tests.test_recipes import build, spec_of

RECIPIENTS = ["good@example.test", "bad@example.test", "also-good@example.test"]

class SmtpServer:
    """Just enough SMTP: greets, accepts mail, refuses RCPT to addresses starting ``bad@`` with 550;
    with ``hang`` it accepts connections and never says a word."""

    def __init__(self, hang: bool = False) -> None:
        self.hang = hang
        self.delivered: list[str] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.stop = threading.Event()

    @property
    def port(self) -> int:
        return self.listener.getsockname()[1]

    def __enter__(self) -> SmtpServer:
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rwb") as stream:
            if self.hang:
                self.stop.wait(10)
                return

            def say(line: str) -> None:
                stream.write(line.encode() + b"\r\n")
                stream.flush()

            say("220 fake ESMTP")
            recipient = ""
            for raw in stream:
                command = raw.decode().strip()
                verb = command.split(" ", 1)[0].upper()
                if verb in ("EHLO", "HELO", "MAIL", "RSET", "NOOP"):
                    say("250 ok")
                elif verb == "RCPT":
                    recipient = command.split("<", 1)[1].split(">", 1)[0]
                    say(f"550 5.1.1 <{recipient}>: user unknown" if recipient.startswith("bad@") else "250 ok")
                elif verb == "DATA":
                    say("354 go ahead")
                    while stream.readline() not in (b".\r\n", b""):
                        pass
                    self.delivered.append(recipient)
                    say("250 queued")
                elif verb == "QUIT":
                    say("221 bye")
                    return
                else:
                    say("502 not implemented")


@pytest.fixture(scope="module")
def generated():
    """The rendered app's ``create_app`` and outbox module, imported in this process for this module
    only (a subprocess per case would cost seconds); its ``webapp`` modules are dropped afterwards."""
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory(prefix="smtp-app-") as folder:
        build(spec_of("conference"), Path(folder))
        app_dir = str(Path(folder) / "app")
        sys.path.insert(0, app_dir)
        try:
            from webapp import create_app
            from webapp.recipes import outbox
            yield create_app, outbox
        finally:
            sys.path.remove(app_dir)
            for name in [n for n in sys.modules if n == "webapp" or n.startswith("webapp.")]:
                del sys.modules[name]


def send_reminders(generated, tmp_path, monkeypatch, port: int, recipients=RECIPIENTS, **env: str) -> dict:
    """Queue one message per recipient, run ``flask send-reminders``: exit code, output, unsent, time."""
    create_app, outbox = generated
    for name, value in {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": str(port), "SMTP_STARTTLS": "0", **env}.items():
        monkeypatch.setenv(name, value)
    for name in ("SMTP_USER", "SMTP_PASSWORD", "SMTP_FROM"):
        monkeypatch.delenv(name, raising=False)
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'app.db'}", "SECRET_KEY": "k", "TESTING": True})
    try:
        with app.app_context():
            session = outbox.db.session()
            now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
            for i, recipient in enumerate(recipients):
                session.add(outbox.OutboxMessage(key=f"k{i}", recipient=recipient, subject=f"s{i}", body="b",
                                                 created_at=now))
            session.commit()
        started = time.monotonic()
        result = app.test_cli_runner().invoke(args=["send-reminders"])
        elapsed = time.monotonic() - started
        with app.app_context():
            unsent = [m.recipient for m in outbox.unsent()]
    finally:
        app.extensions["sqlalchemy_engine"].dispose()
    return {"exit_code": result.exit_code, "output": result.output, "unsent": unsent, "elapsed": elapsed}


def error_line(outcome: dict) -> str:
    assert outcome["exit_code"] == 1, outcome
    lines = outcome["output"].strip().splitlines()
    assert len(lines) == 1, outcome["output"]
    return lines[0]


def test_a_healthy_server_gets_every_message(generated, tmp_path, monkeypatch):
    good = ["good@example.test", "also-good@example.test"]
    with SmtpServer() as server:
        outcome = send_reminders(generated, tmp_path, monkeypatch, server.port, good)
        delivered = list(server.delivered)
    assert outcome["exit_code"] == 0 and "queued 0 new reminder(s); sent 2" in outcome["output"]
    assert delivered == good and outcome["unsent"] == []


def test_a_refused_connection_keeps_every_message_and_says_what_to_check(generated, tmp_path, monkeypatch):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    outcome = send_reminders(generated, tmp_path, monkeypatch, port)
    line = error_line(outcome)
    assert line.startswith(f"Error: sending through 127.0.0.1:{port} failed (ConnectionRefusedError: ")
    assert "3 message(s) stay in the outbox for the next run - check SMTP_HOST, SMTP_PORT" in line
    assert outcome["unsent"] == RECIPIENTS


def test_a_refused_recipient_stays_queued_and_does_not_hold_back_the_others(generated, tmp_path, monkeypatch):
    with SmtpServer() as server:
        outcome = send_reminders(generated, tmp_path, monkeypatch, server.port)
        delivered = list(server.delivered)
    assert delivered == ["good@example.test", "also-good@example.test"]
    assert outcome["unsent"] == ["bad@example.test"]
    line = error_line(outcome)
    assert line == ("Error: queued 0 new reminder(s); sent 2; the SMTP server refused 1 message(s), kept in the "
                    "outbox: to bad@example.test: 550 5.1.1 <bad@example.test>: user unknown - fix those "
                    "addresses (or delete the messages) and run again")


def test_a_hanging_server_is_given_up_after_smtp_timeout(generated, tmp_path, monkeypatch):
    with SmtpServer(hang=True) as server:
        port = server.port
        outcome = send_reminders(generated, tmp_path, monkeypatch, port, SMTP_TIMEOUT="0.3")
    assert outcome["elapsed"] < 1.0, outcome
    line = error_line(outcome)
    assert f"sending through 127.0.0.1:{port} failed (SMTPServerDisconnected: " in line
    assert "timed out" in line and "3 message(s) stay in the outbox" in line and "SMTP_TIMEOUT" in line
    assert outcome["unsent"] == RECIPIENTS


def test_an_unreadable_smtp_timeout_is_a_one_line_error(generated, tmp_path, monkeypatch):
    with SmtpServer() as server:
        outcome = send_reminders(generated, tmp_path, monkeypatch, server.port, SMTP_TIMEOUT="soon")
    assert error_line(outcome) == "Error: SMTP_TIMEOUT must be a number of seconds, got 'soon'"
    assert outcome["unsent"] == RECIPIENTS
