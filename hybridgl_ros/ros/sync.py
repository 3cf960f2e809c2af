"""Approximate time pairing of camera streams (message_filters is not on PyPI).

The node keeps the last few depth and camera_info messages and, when a query needs the depth of
a colour frame, takes the one whose header stamp is nearest to the frame's, if within a slop.
Pairing at query time (not on arrival) costs nothing per frame and never queues.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any


def stamp_ns(header) -> int:
    """A std_msgs/Header stamp in nanoseconds."""
    return int(header.stamp.sec) * 1_000_000_000 + int(header.stamp.nanosec)


class StampBuffer:
    """The last ``size`` messages of one stream, looked up by nearest header stamp (thread-safe).

    Args:
        size: how many messages to keep (a second of a 30 Hz stream by default).
    """

    def __init__(self, size: int = 30) -> None:
        self._items: deque[tuple[int, Any]] = deque(maxlen=size)
        self._lock = threading.Lock()

    def add(self, msg) -> None:
        """Keeps ``msg`` (anything with a ``header``), dropping the oldest beyond ``size``."""
        with self._lock:
            self._items.append((stamp_ns(msg.header), msg))

    def nearest(self, stamp: int, slop_ns: int):
        """The message stamped nearest to ``stamp`` [ns] if within ``slop_ns``, else None."""
        with self._lock:
            best = min(self._items, key=lambda item: abs(item[0] - stamp), default=None)
        if best is None or abs(best[0] - stamp) > slop_ns:
            return None
        return best[1]

    def latest(self):
        """The newest message, or None."""
        with self._lock:
            return self._items[-1][1] if self._items else None

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


@dataclass(frozen=True)
class Received:
    """A message with its arrival: ``seq`` counts arrivals, ``at`` is time.monotonic() [s]."""

    msg: Any
    seq: int
    at: float


class LatestSlot:
    """The newest message of a stream with an arrival counter (thread-safe, never queues)."""

    def __init__(self) -> None:
        self._item: Received | None = None
        self._seq = 0
        self._lock = threading.Lock()

    def put(self, msg) -> None:
        with self._lock:
            self._seq += 1
            self._item = Received(msg, self._seq, time.monotonic())

    def get(self) -> Received | None:
        with self._lock:
            return self._item

    def clear(self) -> None:
        with self._lock:
            self._item = None
