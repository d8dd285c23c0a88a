"""The LLM client against servers that misbehave below and above HTTP, each on loopback.

Every case checks the four things an operator depends on: the time is bounded (short timeouts
here), the failure is one line of the right kind that says what to do, the ``chat`` span names the
error, and nothing is returned that the server did not really send.
"""

from __future__ import annotations

import datetime
import json
import re
import socket
import ssl
import struct
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from scopeflow.handlers.budget import Budget
from scopeflow.handlers.context import RecordingContext
from scopeflow.handlers.failures import CONFIGURATION, RECOVERABLE, TRANSIENT, TaskFailure
from scopeflow.handlers.llm import LlmClient
from scopeflow.handlers.llm_output import forget_modes
from scopeflow.handlers.llm_settings import LlmSettings
from tests.fake_llm_server import (
    FakeLlmServer,
    RawServer,
    completion,
    error_reply,
    http_bytes,
    raw_reply,
    read_http_request,
)

SCHEMA = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}
ASK = [{"role": "user", "content": "Name the app."}]
GOOD_BODY = json.dumps({"choices": [{"message": {"role": "assistant", "content": '{"title": "Todo"}'},
                                     "finish_reason": "stop"}]}).encode()


@pytest.fixture
def ctx(tmp_path):
    forget_modes()
    return RecordingContext(instance_id="i-1", task_id="t-1", bpmn_id="plan", workspace=tmp_path)


def client_for(url: str, ctx, *, timeout: float = 0.4, attempts: int = 2, **kw) -> LlmClient:
    settings = LlmSettings(base_url=url, api_key="sk-bad-servers-key", model="m1", timeout_s=timeout)
    return LlmClient(settings, Budget(), ctx, max_attempts=attempts, backoff_base_s=0.01, **kw)


def ask(url: str, ctx, **kw) -> tuple[TaskFailure, float]:
    """The failure the call ends in, and how long it took."""
    started = time.monotonic()
    with client_for(url, ctx, **kw) as client, pytest.raises(TaskFailure) as caught:
        client.chat_json("planner", ASK, SCHEMA, max_reasks=0)
    return caught.value, time.monotonic() - started


def one_line(failure: TaskFailure) -> str:
    assert "\n" not in failure.message and "\r" not in failure.message, failure.message
    return failure.message


# -- the wire: silence, drips, resets, oversized bodies -----------------------------------------


def drip(conn: socket.socket) -> None:
    """A whole, valid answer, one byte every 50 ms: each read is quick, the answer takes 10 s."""
    read_http_request(conn)
    for byte in http_bytes("200 OK", GOOD_BODY):
        conn.sendall(bytes([byte]))
        time.sleep(0.05)


def test_a_server_dripping_bytes_is_a_timeout_at_the_deadline_not_after_the_last_byte(ctx):
    with RawServer(drip) as server:
        failure, elapsed = ask(server.base_url, ctx, timeout=0.4, attempts=2)
    assert elapsed < 6, f"two attempts of 0.4 s took {elapsed:.1f}s (the drip alone lasts 10 s an attempt)"
    assert failure.kind == TRANSIENT
    assert "failed 2 attempts; last: no answer within 0.4s" in one_line(failure)
    (span,) = ctx.child_spans
    assert span.attributes["error.type"] == "timeout"
    assert span.attributes["scopeflow.llm.retried"] == ["timeout", "timeout"]


def test_a_server_that_accepts_and_never_answers_is_a_bounded_timeout(ctx):
    with RawServer(lambda conn: (read_http_request(conn), time.sleep(5))) as server:
        failure, elapsed = ask(server.base_url, ctx, timeout=0.3, attempts=2)
    assert elapsed < 5 and failure.kind == TRANSIENT   # unbounded: 5 s an attempt
    assert "no answer within 0.3s" in one_line(failure)


def test_a_50_mb_body_with_its_length_declared_is_refused_before_reading_it(ctx):
    def huge(conn):
        read_http_request(conn)
        conn.sendall(http_bytes("200 OK", b"", {"Content-Length": str(50 * 1024 * 1024)}))
        conn.sendall(b" " * 65536)
        time.sleep(2)

    with RawServer(huge) as server:
        failure, elapsed = ask(server.base_url, ctx, timeout=2.0)
        connections = server.connections
    assert connections == 1          # refused on its header (the message says so), not retried
    assert failure.kind == CONFIGURATION
    assert "answered HTTP 200 with Content-Length 52428800, over the 8388608-byte limit" in one_line(failure)
    assert "SCOPEFLOW_LLM_BASE_URL" in failure.message
    assert ctx.child_spans[0].attributes["error.type"] == "response_too_large"


def test_a_body_without_a_length_is_read_only_up_to_the_limit(ctx):
    sent = []

    def endless_chunks(conn):
        read_http_request(conn)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b" " * 65536
        for _ in range(800):                                 # 50 MB if the client read it all
            conn.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent.append(len(chunk))

    with RawServer(endless_chunks) as server:
        failure, elapsed = ask(server.base_url, ctx, timeout=2.0, max_reply_bytes=1_000_000)
    assert failure.kind == CONFIGURATION
    assert "with more than 1000000 bytes, over the 1000000-byte limit" in one_line(failure)
    assert sum(sent) < 10 * 1024 * 1024       # the client stopped reading long before 50 MB


def reset_mid_body(conn: socket.socket) -> None:
    read_http_request(conn)
    conn.sendall(http_bytes("200 OK", b"", {"Content-Length": "1000"}) + b'{"choices": [')
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))   # close = RST
    conn.close()


def test_a_connection_reset_mid_body_is_retried_then_transient(ctx):
    with RawServer(reset_mid_body) as server:
        failure, elapsed = ask(server.base_url, ctx, attempts=2)
        connections = server.connections
    assert connections == 2
    assert failure.kind == TRANSIENT
    assert "could not reach the server" in one_line(failure)
    assert ctx.child_spans[0].attributes["error.type"].startswith("httpx.")


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory):
    """A TLS server context with a self-signed certificate for 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return context


def test_a_self_signed_certificate_is_a_configuration_failure_that_says_how_to_trust_it(ctx, self_signed):
    answered = []

    def answer(conn):
        read_http_request(conn)
        answered.append(True)
        conn.sendall(http_bytes("200 OK", GOOD_BODY))

    with RawServer(answer, tls_context=self_signed) as server:
        failure, _ = ask(server.base_url, ctx, attempts=3)
        connections = server.connections
    assert failure.kind == CONFIGURATION and connections == 1 and answered == []   # not retried, nothing sent
    message = one_line(failure)
    assert "failed the TLS check (self-signed certificate)" in message and "SSL_CERT_FILE" in message
    assert ctx.child_spans[0].attributes["error.type"] == "tls"


def test_https_to_a_plain_http_server_is_a_tls_configuration_failure(ctx):
    with RawServer(lambda conn: (conn.recv(1024), conn.sendall(http_bytes("400 Bad Request", b"plain")))) as server:
        failure, _ = ask(server.base_url.replace("http://", "https://"), ctx, attempts=3)
        connections = server.connections
    assert failure.kind == CONFIGURATION and connections == 1
    assert "failed the TLS check" in one_line(failure)


# -- HTTP answers that are not chat completions ------------------------------------------------

NGINX_502 = ("<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway"
             "</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")


def test_a_proxy_502_html_page_is_retried_and_reported_on_one_line_without_markup(ctx):
    with FakeLlmServer([raw_reply(502, NGINX_502), raw_reply(502, NGINX_502)]) as server:
        failure, _ = ask(server.base_url, ctx, attempts=2)
    message = one_line(failure)
    assert failure.kind == TRANSIENT
    assert "last: HTTP 502: 502 Bad Gateway 502 Bad Gateway nginx" in message and "<" not in message
    assert ctx.child_spans[0].attributes["scopeflow.llm.retried"] == ["502", "502"]


def test_a_200_with_broken_json_names_what_came_instead(ctx):
    with FakeLlmServer([raw_reply(200, '{"choices": [ nope', "application/json")]) as server:
        failure, _ = ask(server.base_url, ctx)
    assert failure.kind == CONFIGURATION
    assert ("answered HTTP 200 without a chat completion (application/json, 18 bytes: {\"choices\": [ nope); "
            "is SCOPEFLOW_LLM_BASE_URL an OpenAI-compatible /v1 endpoint?") in one_line(failure)
    assert ctx.child_spans[0].attributes["error.type"] == "invalid_response"


def test_a_200_html_page_is_summarised_on_one_line(ctx):
    page = "<html>\n<body>\n<h1>Welcome to the router</h1>\n</body>\n</html>\n"
    with FakeLlmServer([raw_reply(200, page)]) as server:
        failure, _ = ask(server.base_url, ctx)
    assert f"(text/html, {len(page)} bytes: Welcome to the router)" in one_line(failure)


def test_a_json_answer_without_choices_is_a_configuration_failure(ctx):
    with FakeLlmServer([raw_reply(200, '{"id": "x", "object": "list", "data": []}', "application/json")]) as server:
        failure, _ = ask(server.base_url, ctx)
    assert failure.kind == CONFIGURATION and "without a chat completion" in one_line(failure)


def test_an_empty_reply_is_re_asked_and_named_as_empty(ctx):
    with FakeLlmServer([completion(""), completion(None)]) as server:
        with client_for(server.base_url, ctx) as client, pytest.raises(TaskFailure) as caught:
            client.chat_json("planner", ASK, SCHEMA, max_reasks=1)
        requests = len(server.requests)
    assert requests == 2 and caught.value.kind == RECOVERABLE
    assert "in 2 replies: the reply was empty" in one_line(caught.value)
    assert [s.attributes["error.type"] for s in ctx.child_spans] == ["empty_reply", "empty_reply"]


def test_a_completion_served_as_text_plain_is_still_read(ctx):
    with FakeLlmServer([raw_reply(200, GOOD_BODY.decode(), "text/plain")]) as server:
        with client_for(server.base_url, ctx) as client:
            assert client.chat_json("planner", ASK, SCHEMA) == {"title": "Todo"}


def test_a_redirect_to_another_host_is_not_followed(ctx):
    hits = []
    with RawServer(lambda conn: (read_http_request(conn), hits.append(1))) as elsewhere:
        target = f"http://localhost:{elsewhere.port}/v1/chat/completions"
        redirect = raw_reply(307, "")
        redirect.headers["Location"] = target
        with FakeLlmServer([redirect]) as server:
            failure, _ = ask(server.base_url, ctx)
    assert hits == [] and failure.kind == CONFIGURATION
    assert f"redirects (HTTP 307) to {target}; set SCOPEFLOW_LLM_BASE_URL to the final address" in one_line(failure)


def test_the_task_deadline_shortens_the_wait_below_the_configured_timeout(ctx):
    with RawServer(lambda conn: (read_http_request(conn), time.sleep(5))) as server:
        ctx.deadline = time.monotonic() + 0.5
        failure, elapsed = ask(server.base_url, ctx, timeout=30.0, attempts=1)
    assert elapsed < 10 and failure.kind == TRANSIENT   # the 30 s timeout would run past the task deadline
    assert re.search(r"no answer within 0\.[345]s", failure.message), failure.message


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_credential_is_not_retried_and_names_the_setting(ctx, status):
    with FakeLlmServer([error_reply(status, "key revoked")] * 3) as server:
        failure, _ = ask(server.base_url, ctx, attempts=3)
        requests = len(server.requests)
    assert requests == 1 and failure.kind == CONFIGURATION
    assert one_line(failure) == (f"LLM server refused the credentials (HTTP {status}: key revoked); "
                                 "check SCOPEFLOW_LLM_API_KEY")
    assert "sk-bad-servers-key" not in json.dumps([s.attributes for s in ctx.child_spans])
