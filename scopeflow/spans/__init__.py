"""OpenTelemetry inside Scopeflow: tracer setup, the span store, evidence rules and integrity."""
