"""SpiffWorkflow's loggers sit at WARNING unless asked for, and never below INFO (task data)."""

from __future__ import annotations

import logging

import pytest

from scopeflow.config import load_settings
from scopeflow.engine.service import Engine
from tests.conftest import make_settings


@pytest.fixture(autouse=True)
def _restore():
    yield
    logging.getLogger("spiff.task").setLevel(logging.WARNING)


def test_an_engine_puts_spiff_at_warning_by_default(tmp_path):
    logging.getLogger("spiff.task").setLevel(logging.INFO)
    Engine(make_settings(tmp_path / "home"))
    assert logging.getLogger("spiff.task").level == logging.WARNING


def test_info_can_be_asked_for(monkeypatch, tmp_path):
    monkeypatch.setenv("SCOPEFLOW_SPIFF_LOG_LEVEL", "info")
    level = load_settings().spiff_log_level
    Engine(make_settings(tmp_path / "home", spiff_log_level=level))
    assert logging.getLogger("spiff.task").level == logging.INFO


def test_debug_is_refused_with_a_one_line_error(monkeypatch):
    monkeypatch.setenv("SCOPEFLOW_SPIFF_LOG_LEVEL", "DEBUG")
    with pytest.raises(ValueError, match="SCOPEFLOW_SPIFF_LOG_LEVEL must be one of"):
        load_settings()
