"""The OTLP mirror's exporter, chosen by the standard ``OTEL_*`` variables.

Export is on when ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` or ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set
(or ``OTEL_TRACES_EXPORTER=otlp`` asks for the SDK's default endpoint), and off with
``OTEL_TRACES_EXPORTER=none``. The protocol is ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` or
``OTEL_EXPORTER_OTLP_PROTOCOL``: ``http/protobuf`` (the default), ``grpc`` or ``http/json``.

For ``grpc`` and ``http/protobuf`` the SDK's own exporters are built *without arguments*, so they
read every other variable themselves exactly as the specification says (per-signal endpoints,
``..._INSECURE`` for a gRPC endpoint without a scheme, ``..._HEADERS``, ``..._TIMEOUT``,
``..._COMPRESSION``, certificates). The Python SDK has no ``http/json`` exporter of its own, so
:class:`OtlpJsonExporter` is ours: the SDK's protobuf encoding of the spans, written as OTLP/JSON
(hex ids) and posted with the endpoint, headers and timeout resolved from the same variables.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence

import httpx
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.util.re import parse_env_headers

from scopeflow.spans.otlp_json import request_to_json

log = logging.getLogger(__name__)

PROTOCOLS = ("http/protobuf", "grpc", "http/json")
RETRYABLE_STATUS = {429, 502, 503, 504}     # the OTLP/HTTP specification's retryable responses
MAX_EXPORT_ATTEMPTS = 6
DEFAULT_HTTP_ENDPOINT = "http://localhost:4318"


class OtlpConfigError(ValueError):
    """An ``OTEL_*`` value the exporter cannot use; one line."""


def _signal_or_general(environ: Mapping[str, str], suffix: str) -> str:
    """``OTEL_EXPORTER_OTLP_TRACES_<suffix>``, else ``OTEL_EXPORTER_OTLP_<suffix>``, else ""."""
    return (environ.get(f"OTEL_EXPORTER_OTLP_TRACES_{suffix}") or environ.get(f"OTEL_EXPORTER_OTLP_{suffix}")
            or "").strip()


def protocol_from_env() -> str:
    """The traces protocol the environment names (``http/protobuf`` when it names none)."""
    protocol = _signal_or_general(os.environ, "PROTOCOL") or "http/protobuf"
    if protocol not in PROTOCOLS:
        raise OtlpConfigError(f"OTEL_EXPORTER_OTLP_PROTOCOL must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    return protocol


def exporter_from_env() -> SpanExporter | None:
    """The exporter ``os.environ`` asks for (the SDK's exporters read it too), or None for no export."""
    environ = os.environ
    wanted = {name.strip() for name in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if name.strip()}
    if "none" in wanted:
        return None
    if not _signal_or_general(environ, "ENDPOINT") and "otlp" not in wanted:
        return None
    protocol = protocol_from_env()
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        exporter: SpanExporter = GrpcExporter()
    elif protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        exporter = HttpExporter()
    else:
        exporter = OtlpJsonExporter.from_env(environ)
    log.info("OTLP export: %s (%s)", protocol, _signal_or_general(environ, "ENDPOINT") or "SDK default endpoint")
    return exporter


def endpoint_from_env() -> str:
    """The traces endpoint the environment names, for messages (the SDK's default when it names none)."""
    return _signal_or_general(os.environ, "ENDPOINT") or f"{DEFAULT_HTTP_ENDPOINT} (the SDK default)"


def exporter_to(endpoint: str, protocol: str = "") -> SpanExporter:
    """An exporter to an explicit base endpoint (as ``OTEL_EXPORTER_OTLP_ENDPOINT`` would give it);
    the other settings still come from the environment through the SDK."""
    protocol = protocol or "http/protobuf"
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter(endpoint=endpoint)
    if protocol == "http/protobuf":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

        return HttpExporter(endpoint=traces_url(endpoint))
    if protocol == "http/json":
        exporter = OtlpJsonExporter.from_env(os.environ)
        exporter.url = traces_url(endpoint)
        return exporter
    raise OtlpConfigError(f"OTLP protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")


def traces_url(base: str) -> str:
    """``{base}/v1/traces`` for a base endpoint (the spec's rule for ``OTEL_EXPORTER_OTLP_ENDPOINT``)."""
    base = base.rstrip("/")
    return base if base.endswith("/v1/traces") else base + "/v1/traces"


class OtlpJsonExporter(SpanExporter):
    """OTLP/HTTP with a JSON body (``Content-Type: application/json``), per the OTLP specification."""

    def __init__(self, url: str, headers: Mapping[str, str] | None = None, timeout_s: float = 10.0,
                 compression: str = "", verify: str | bool = True) -> None:
        if compression not in ("", "none", "gzip"):
            raise OtlpConfigError(f"OTLP compression must be gzip or none for http/json, got {compression!r}")
        self.url = url
        self.headers = {"Content-Type": "application/json", **(headers or {})}
        if compression == "gzip":
            self.headers["Content-Encoding"] = "gzip"
        self.compression = compression
        self.timeout_s = timeout_s
        self._http = httpx.Client(timeout=timeout_s, verify=verify)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> OtlpJsonExporter:
        """Endpoint, headers, timeout, compression and CA certificate from the ``OTEL_*`` variables."""
        url = (environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
               or traces_url(environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip() or DEFAULT_HTTP_ENDPOINT))
        headers = dict(parse_env_headers(_signal_or_general(environ, "HEADERS"), liberal=True))
        timeout = _signal_or_general(environ, "TIMEOUT")
        try:
            timeout_s = float(timeout) if timeout else 10.0
        except ValueError:
            raise OtlpConfigError(f"OTEL_EXPORTER_OTLP_TIMEOUT must be a number of seconds, got {timeout!r}") from None
        certificate = _signal_or_general(environ, "CERTIFICATE")
        return cls(url, headers, timeout_s, _signal_or_general(environ, "COMPRESSION").lower(), certificate or True)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """POST the batch; a refused connection or a retryable status (429, 502, 503, 504) is tried
        again after ``Retry-After`` (else a pause of 0.5-1 s), all within ``timeout_s`` (as the SDK's
        exporters do, per the OTLP specification)."""
        body = json.dumps(request_to_json(encode_spans(spans)), separators=(",", ":")).encode("utf-8")
        if self.compression == "gzip":
            body = gzip.compress(body)
        deadline = time.monotonic() + self.timeout_s
        for retry in range(MAX_EXPORT_ATTEMPTS):
            remaining = deadline - time.monotonic()
            problem, wait = self._post_once(body, remaining)
            if not problem:
                return SpanExportResult.SUCCESS
            if wait is None or retry + 1 == MAX_EXPORT_ATTEMPTS or wait >= deadline - time.monotonic():
                log.warning("OTLP/JSON export to %s failed: %s", self.url, problem)
                return SpanExportResult.FAILURE
            time.sleep(wait)
        raise AssertionError("unreachable: the last attempt returns")

    def _post_once(self, body: bytes, timeout_s: float) -> tuple[str, float | None]:
        """("", None) when the collector took the batch; else the problem and, when another attempt may
        help, how long to wait before it (None: do not retry)."""
        try:
            response = self._http.post(self.url, content=body, headers=self.headers, timeout=max(timeout_s, 0.001))
        except httpx.TimeoutException:
            return f"no answer within {self.timeout_s:g}s", None
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}", 0.5
        if response.is_success:
            return "", None
        problem = f"HTTP {response.status_code}: {' '.join(response.text[:200].split())}".rstrip(": ")
        if response.status_code not in RETRYABLE_STATUS:
            return problem, None
        asked = response.headers.get("Retry-After", "")
        return problem, float(asked) if asked.replace(".", "", 1).isdigit() else 1.0

    def shutdown(self) -> None:
        self._http.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True
