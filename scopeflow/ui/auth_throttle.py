"""Sign-in throttling per client: guessing slows the guesser down, never locks the account.

An account lockout lets anyone lock anyone out by typing wrong passwords for them. Here a client
(its remote address) that failed ``MAX_FAILURES`` sign-ins within ``WINDOW_S`` seconds is refused
(429) until the oldest of those failures leaves the window, whatever names it tries; a success does
not clear the count (else a guesser would interleave sign-ins to its own account). The count lives
in this process's memory: several ``serve`` processes each allow ``MAX_FAILURES``, and a restart
forgets it. Behind a reverse proxy every client has the proxy's address and shares one budget.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

MAX_FAILURES = 5
WINDOW_S = 15 * 60.0
MAX_CLIENTS = 10_000   # memory bound: the clients with the oldest failures are forgotten first


class LoginThrottle:
    """Failed sign-ins per client within a sliding window."""

    def __init__(self, max_failures: int = MAX_FAILURES, window_s: float = WINDOW_S,
                 clock: Callable[[], float] = time.monotonic):
        self.max_failures = max_failures
        self.window_s = window_s
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, client: str) -> int:
        """Seconds until ``client`` may try again; 0 when it may try now."""
        with self._lock:
            recent = self._recent(client) if client in self._failures else deque()
            if len(recent) < self.max_failures:
                return 0
            return max(1, int(recent[0] + self.window_s - self._clock()) + 1)

    def failed(self, client: str) -> None:
        with self._lock:
            self._recent(client).append(self._clock())
            if len(self._failures) > MAX_CLIENTS:
                oldest = min(self._failures, key=lambda c: self._failures[c][-1] if self._failures[c] else 0.0)
                del self._failures[oldest]

    def _recent(self, client: str) -> deque[float]:
        recent = self._failures.setdefault(client, deque())
        cutoff = self._clock() - self.window_s
        while recent and recent[0] <= cutoff:
            recent.popleft()
        return recent
