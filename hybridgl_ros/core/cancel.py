"""Cooperative cancellation: a token a caller sets and long-running work checks between steps.

``HybridGL.prepare(image, cancel=token)`` checks it before each stage (SAM, each chunk of mask
features, GEM) and, while SAM runs, before each block of SAM's image encoder and each call of
its mask decoder (:func:`checked_during`); the tracker checks it before each of its steps and
inside SAM the same way. A set token makes the next check raise :class:`Cancelled`, so the
delay between ``cancel()`` and the exception is one ViT block or one decoder batch of SAM, or
one chunk of ``features.mask_batch_size`` masks through CLIP, or the GEM pass.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Iterable, Iterator

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


@contextlib.contextmanager
def checked_during(modules: Iterable, token: CancelToken | None) -> Iterator[None]:
    """Checks ``token`` before every forward call of each of ``modules`` (torch ``nn.Module``s,
    e.g. the blocks of a ViT) while the block runs, so a long model pass stops between two of
    them. Nothing is hooked without a token."""
    if token is None:
        yield
        return
    handles = [module.register_forward_pre_hook(lambda *_: token.check())
               for module in modules]
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def sam_checkpoints(sam) -> list:
    """The parts of a segment_anything ``Sam`` worth a cancel check before each call: the
    blocks of its image encoder and its mask decoder ([] for anything else)."""
    if sam is None:
        return []
    blocks = list(getattr(getattr(sam, 'image_encoder', None), 'blocks', []))
    decoder = getattr(sam, 'mask_decoder', None)
    return blocks + ([decoder] if decoder is not None else [])
