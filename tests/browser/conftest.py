"""Browser test fixtures: the UI under waitress on a free loopback port, and headless Chromium.

Chromium is Debian's (/usr/bin/chromium) driven by Python Playwright; Playwright's own browser
download is never used. Without Chromium or Playwright the tests skip, except under
SCOPEFLOW_CI=1 where that is a failure (``require_service``).
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import pytest

from tests.conftest import REPO, make_settings, require_service  # noqa: F401 - re-exported for the tests

CHROMIUM = os.environ.get("SCOPEFLOW_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """(base URL, engine) of a live server with one user per role; stopped after the module."""
    from scopeflow.ui.serve import Worker, make_server
    from tests.test_ui_support import make_ui

    _app, engine = make_ui(tmp_path_factory.mktemp("browser"))
    srv, _app2, _engine = make_server(engine.settings, "127.0.0.1", 0, engine=engine)
    thread = threading.Thread(target=srv.run, name="waitress", daemon=True)
    thread.start()
    worker = Worker(engine)
    worker.start()
    yield f"http://127.0.0.1:{srv.effective_port}", engine
    worker.stop()
    srv.close()
    thread.join(10)


@pytest.fixture(scope="module")
def browser():
    found = shutil.which(CHROMIUM) is not None or Path(CHROMIUM).exists()
    require_service("chromium", found, f"{CHROMIUM} not found (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require_service("playwright", False, "pip install playwright (its browser download is not needed)")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield chromium
        chromium.close()


class Session:
    """One signed-in browser context with console errors collected (CSP violations show there)."""

    def __init__(self, browser, base: str, name: str):
        self.base = base
        self.context = browser.new_context(viewport={"width": 1400, "height": 1000})
        self.context.set_default_timeout(120_000)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda msg: self.errors.append(msg.text) if msg.type == "error" else None)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.goto(f"{base}/login")
        self.page.fill("input[name=name]", name)
        from tests.test_ui_support import PASSWORD

        self.page.fill("input[name=password]", PASSWORD)
        self.page.click("button[type=submit]")

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.context.close()
