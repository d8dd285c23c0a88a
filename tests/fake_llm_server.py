"""A real OpenAI-compatible HTTP server on loopback that answers from a script, for tests.

The client under test talks real HTTP (sockets, timeouts, headers) to this server; only the
answers are scripted. Each POST takes the next :class:`Scripted` response from the queue, and
every request (path, headers, JSON body, arrival time) is kept in :attr:`FakeLlmServer.requests`
so a test can assert what the client sent and how long it waited between attempts.

A request that arrives after the script ran out gets HTTP 500 and is counted in
:attr:`FakeLlmServer.unscripted`, so a test that expected fewer calls sees it.
"""

from __future__ import annotations

import contextlib
import json
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Scripted:
    """One scripted answer: status, headers and body, sent after ``delay_s`` seconds."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass
class ReceivedRequest:
    path: str
    headers: dict[str, str]
    body: Any                   # the parsed JSON body, or the raw text when it was not JSON
    received_at: float          # time.monotonic() when the server read it


def completion(
    content: str | None,
    *,
    usage: tuple[int, int] | None = (12, 7),
    model: str = "fake-model-1",
    finish_reason: str = "stop",
    tool_calls: list[dict[str, Any]] | None = None,
    response_id: str = "chatcmpl-fake-1",
) -> Scripted:
    """A 200 chat completion whose message content is ``content`` (any text, valid JSON or not)."""
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if tool_calls is not None:
        message["tool_calls"] = tool_calls
    payload: dict[str, Any] = {
        "id": response_id,
        "object": "chat.completion",
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
    }
    if usage is not None:
        payload["usage"] = {
            "prompt_tokens": usage[0],
            "completion_tokens": usage[1],
            "total_tokens": usage[0] + usage[1],
        }
    return _json(200, payload)


def json_reply(data: Any, **kw: Any) -> Scripted:
    """A completion whose content is ``data`` serialised as JSON."""
    return completion(json.dumps(data), **kw)


def tool_call_reply(name: str, arguments: dict[str, Any] | str, **kw: Any) -> Scripted:
    """A completion that calls the function ``name`` with ``arguments`` (a dict, or raw text)."""
    args = arguments if isinstance(arguments, str) else json.dumps(arguments)
    call = {"id": "call_fake_1", "type": "function", "function": {"name": name, "arguments": args}}
    return completion(None, tool_calls=[call], finish_reason="tool_calls", **kw)


def error_reply(status: int, message: str = "scripted error", headers: dict[str, str] | None = None) -> Scripted:
    """An OpenAI-style error body with the given status (401, 429, 500, ...)."""
    return _json(status, {"error": {"message": message, "type": "scripted"}}, headers or {})


def rate_limited(retry_after: str) -> Scripted:
    """HTTP 429 asking the client to wait ``retry_after`` (seconds or an HTTP date)."""
    return error_reply(429, "rate limited", {"Retry-After": retry_after})


def slow(seconds: float, then: Scripted | None = None) -> Scripted:
    """``then`` (default a valid completion) sent only after ``seconds``: longer than a client timeout."""
    base = then or json_reply({"late": True})
    return Scripted(base.status, base.body, dict(base.headers), seconds)


def raw_reply(status: int, text: str, content_type: str = "text/html") -> Scripted:
    """A body that is not a chat completion at all (what a wrong base URL answers)."""
    return Scripted(status, text.encode(), {"Content-Type": content_type})


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> Scripted:
    return Scripted(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **(headers or {})})


class FakeLlmServer:
    """``with FakeLlmServer([json_reply({...}), ...]) as server:`` then point a client at ``server.base_url``."""

    def __init__(self, script: list[Scripted] | None = None):
        self._script: deque[Scripted] = deque(script or [])
        self._lock = threading.Lock()
        self.requests: list[ReceivedRequest] = []
        self.unscripted = 0
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False   # a deliberately slow answer must not hold up __exit__
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, name="fake-llm", daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def remaining(self) -> int:
        """Scripted responses not yet used."""
        with self._lock:
            return len(self._script)

    def push(self, *responses: Scripted) -> None:
        with self._lock:
            self._script.extend(responses)

    def __enter__(self) -> FakeLlmServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _next(self, request: ReceivedRequest) -> Scripted:
        with self._lock:
            self.requests.append(request)
            if self._script:
                return self._script.popleft()
            self.unscripted += 1
        return error_reply(500, "fake LLM server: script exhausted")

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                text = self.rfile.read(length).decode("utf-8", "replace")
                try:
                    body: Any = json.loads(text)
                except json.JSONDecodeError:
                    body = text
                received = ReceivedRequest(self.path, dict(self.headers.items()), body, time.monotonic())
                answer = server._next(received)
                if answer.delay_s:
                    time.sleep(answer.delay_s)
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (a timeout test): nothing left to answer

            def log_message(self, format: str, *args: Any) -> None:
                """Keep test output quiet; the requests are recorded on the server object."""

        return Handler


class RawServer:
    """A TCP server on loopback whose every connection is handed to ``behaviour(conn)``: for servers
    that misbehave below HTTP (never answer, drip bytes, reset mid-body, speak TLS or not at all).

    ``with RawServer(behaviour) as server:`` then use ``server.base_url``; on exit every connection
    still open is shut down, so a behaviour blocked in ``sendall`` or ``sleep`` ends with it.
    """

    def __init__(self, behaviour: Any, tls_context: Any = None):
        self._behaviour = behaviour
        self._tls = tls_context
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._open: list[socket.socket] = []
        self.connections = 0
        self.closed = threading.Event()

    @property
    def port(self) -> int:
        return self._listener.getsockname()[1]

    @property
    def base_url(self) -> str:
        return f"{'https' if self._tls else 'http'}://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> RawServer:
        threading.Thread(target=self._accept, name="raw-server", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.closed.set()
        self._listener.close()
        for conn in list(self._open):
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            self.connections += 1
            if self._tls is not None:
                try:
                    conn = self._tls.wrap_socket(conn, server_side=True)
                except (OSError, ssl.SSLError):
                    conn.close()      # the client refused our certificate: what a TLS test expects
                    continue
            self._open.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            self._behaviour(conn)


def read_http_request(conn: socket.socket) -> bytes:
    """Read one HTTP request (headers and a Content-Length body) from ``conn``; its body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            break
        body += chunk
    return body


def http_bytes(status: str, body: bytes, headers: dict[str, str] | None = None) -> bytes:
    """A whole HTTP/1.1 response, ``Connection: close``; ``Content-Length`` unless headers give one."""
    fields = {"Content-Type": "application/json", "Content-Length": str(len(body)), "Connection": "close",
              **(headers or {})}
    head = "".join(f"{name}: {value}\r\n" for name, value in fields.items() if value is not None)
    return f"HTTP/1.1 {status}\r\n{head}\r\n".encode() + body
