"""Cooperative cancellation: a token a caller sets and long-running work checks between steps.

``HybridGL.prepare(image, cancel=token)`` checks it before each stage (SAM, each chunk of mask
features, GEM) and the tracker before each of its steps; a set token makes the next check raise
:class:`Cancelled`. A stage that has started runs to its end: the worst-case delay between
``cancel()`` and the exception is the longest single stage (SAM's automatic mask generation,
or one chunk of ``features.mask_batch_size`` masks through CLIP).
"""
from __future__ import annotations

import threading

from hybridgl_ros.core.errors import HybridGLError


class Cancelled(HybridGLError):
    """The work was cancelled through its :class:`CancelToken` (the message says why)."""


class CancelToken:
    """Thread-safe cancellation flag with a reason; once set it stays set.

    Example::

        token = CancelToken()
        threading.Timer(0.5, token.cancel).start()
        segmenter.prepare(image_rgb, cancel=token)   # raises Cancelled at the next check
    """

    def __init__(self) -> None:
        self._event = threading.Event()
        self._reason = ''
        self._lock = threading.Lock()

    def cancel(self, reason: str = 'cancelled') -> None:
        """Sets the token; the first reason given is kept."""
        with self._lock:
            if not self._event.is_set():
                self._reason = reason
                self._event.set()

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._event.is_set()

    @property
    def reason(self) -> str:
        """The reason given to :meth:`cancel` ('' while not cancelled)."""
        with self._lock:
            return self._reason

    def check(self) -> None:
        """Raises :class:`Cancelled` if the token is set."""
        if self._event.is_set():
            raise Cancelled(self.reason)

    def wait(self, timeout_s: float) -> bool:
        """Sleeps up to ``timeout_s`` seconds, waking early when cancelled; returns
        :attr:`cancelled`."""
        return self._event.wait(timeout_s)


def check(token: CancelToken | None) -> None:
    """``token.check()``, or nothing when there is no token."""
    if token is not None:
        token.check()
