"""The daemon's inbox: a FIFO queue with an urgent lane that is always served first.

paho's network thread and the daemon's other threads put work here; the main loop takes it one item at a time.
An item the ``urgent`` predicate picks (an emergency, a tombstone, a ``stop`` command, the daemon's own stop)
goes ahead of everything already waiting, so it is verified and played before a backlog of a thousand retained
bulletins is parsed; each lane keeps its own arrival order.

Going ahead of the queue is not enough while the urgent message is still in the socket: at connect the broker
pours out every retained bulletin at once, and a main loop parsing them holds the GIL that paho's network thread
needs to read on (an emergency sent last arrived after 0.3 to 0.6 s). So :meth:`Inbox.take` lets normal items
*settle*: one is handed out only once nothing was put for ``quiet_s``, or once it has waited ``patience_s``.
A burst is then read (and classified) first and parsed after; under a steady flood, normal items are parsed
``patience_s`` late, and urgent ones at once.
"""

from __future__ import annotations

import queue
import time
from collections import deque
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Inbox(queue.Queue[T]):
    """Unbounded; ``get`` serves the urgent lane first, :meth:`take` also lets normal items settle."""

    def __init__(self, urgent: Callable[[T], bool], *, quiet_s: float = 0.02, patience_s: float = 1.0) -> None:
        self._is_urgent = urgent
        self._quiet = quiet_s
        self._patience = patience_s
        self._last_put = float("-inf")
        super().__init__()

    # queue.Queue's storage hooks, called with its mutex held
    def _init(self, maxsize: int) -> None:
        self._urgent: deque[T] = deque()
        self._normal: deque[tuple[float, T]] = deque()  # (time.monotonic() when put, item)

    def _qsize(self) -> int:
        return len(self._urgent) + len(self._normal)

    def _put(self, item: T) -> None:
        self._last_put = time.monotonic()
        if self._is_urgent(item):
            self._urgent.append(item)
        else:
            self._normal.append((self._last_put, item))

    def _get(self) -> T:
        return self._urgent.popleft() if self._urgent else self._normal.popleft()[1]

    def take(self, timeout: float, *, urgent_only: bool = False) -> T:
        """The next urgent item, else (unless ``urgent_only``) the oldest normal one once it has settled (see
        the module docstring); raises ``queue.Empty`` when there is none within ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        with self.not_empty:
            while True:
                now = time.monotonic()
                if self._urgent:
                    return self._urgent.popleft()
                wake = deadline
                if self._normal and not urgent_only:
                    ready = min(self._last_put + self._quiet, self._normal[0][0] + self._patience)
                    if now >= ready:
                        return self._normal.popleft()[1]
                    wake = min(ready, deadline)
                if now >= deadline:
                    raise queue.Empty
                self.not_empty.wait(wake - now)
