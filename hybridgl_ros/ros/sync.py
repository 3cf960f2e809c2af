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


def staleness(item: Received, topic: str, max_age_s: float, max_stamp_age_s: float,
              now_ns: int) -> str:
    """Why the latest image is too old to answer on ('' if it is fresh enough).

    Args:
        item: the latest image and its arrival.
        topic: its topic name (for the message).
        max_age_s: longest time since arrival [s]; 0 = no limit.
        max_stamp_age_s: longest time since its header stamp by the node's clock [s]; 0 = not
            checked (camera and computer clocks are often not synchronised).
        now_ns: the node's clock now [ns] (ROS time: sim time when replaying a bag).
    """
    age = time.monotonic() - item.at
    if 0 < max_age_s < age:
        return (f'the latest image on {topic} arrived {age:.1f} s ago '
                f'(max_image_age_s = {max_age_s:g}): is the camera running?')
    stamp_age = (now_ns - stamp_ns(item.msg.header)) * 1e-9
    if 0 < max_stamp_age_s < stamp_age:
        return (f'the latest image on {topic} is stamped {stamp_age:.1f} s ago by this node\'s '
                f'clock (max_stamp_age_s = {max_stamp_age_s:g}): an old or replayed frame, or '
                'unsynchronised clocks (use_sim_time for a bag)')
    if 0 < max_stamp_age_s < -stamp_age:
        return (f'the latest image on {topic} is stamped {-stamp_age:.1f} s in the future by '
                f'this node\'s clock (max_stamp_age_s = {max_stamp_age_s:g}): unsynchronised '
                'clocks, or a wrong stamp')
    return ''
