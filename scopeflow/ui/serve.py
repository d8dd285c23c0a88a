"""``scopeflow serve``: the web UI under waitress plus an embedded worker thread.

The worker calls ``engine.run_due()`` once a second (timers that fell due, instances marked ready)
until the server stops; an exception in one round is logged and the next round still runs.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from scopeflow.config import Settings

log = logging.getLogger(__name__)

WORKER_INTERVAL_S = 1.0


class Worker(threading.Thread):
    """Advances due instances every ``interval`` seconds until :meth:`stop`."""

    def __init__(self, engine: Any, interval: float = WORKER_INTERVAL_S):
        super().__init__(name="scopeflow-worker", daemon=True)
        self.engine = engine
        self.interval = interval
        self.rounds = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self.engine.run_due()
            except Exception:  # one bad round must not end the worker; the next round retries
                log.exception("worker round failed")
            self.rounds += 1
            self._stop_event.wait(self.interval)

    def stop(self, timeout: float = 10.0) -> None:
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout)


def make_server(settings: Settings, host: str, port: int, engine: Any = None, threads: int = 8):
    """(waitress server, app, engine) bound to host:port (port 0 picks a free one) — not yet serving."""
    from waitress.server import create_server

    from scopeflow.ui import create_app

    if engine is None:
        from scopeflow.engine.service import Engine

        engine = Engine(settings)
    app = create_app(engine=engine)
    server = create_server(app, host=host, port=port, threads=threads)
    return server, app, engine


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve until interrupted (Ctrl-C / SIGTERM), then stop the worker cleanly."""
    server, _app, engine = make_server(settings, host, port)
    worker = Worker(engine)
    worker.start()
    log.info("Scopeflow UI on http://%s:%s", host, server.effective_port)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        worker.stop()
