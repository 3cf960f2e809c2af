"""Out of memory, whatever its wording, as one library error: ``ResourceExhaustedError``.

Torch reports it as ``torch.cuda.OutOfMemoryError`` on CUDA but as a plain ``RuntimeError``
on the CPU ("DefaultCPUAllocator: can't allocate memory: you tried to allocate ..."), numpy
and Python as ``MemoryError``, OpenCV as ``cv2.error`` ("Insufficient memory"). Everything
else passes through unchanged: a bug stays a bug.
"""
from __future__ import annotations

import contextlib
import sys
from typing import Iterator

from hybridgl_ros.core.errors import ResourceExhaustedError

#: Lower-case fragments of the messages of allocation failures that are not MemoryErrors.
_WORDINGS = ("can't allocate memory", 'defaultcpuallocator', 'out of memory',
             'insufficient memory', 'failed to allocate')


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is an allocation failure (CPU or GPU, torch, numpy or OpenCV)."""
    if isinstance(exc, MemoryError):
        return True
    torch = sys.modules.get('torch')
    if torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    from_opencv = type(exc).__module__.startswith('cv2')
    if not (isinstance(exc, RuntimeError) or from_opencv):
        return False
    message = str(exc).lower()
    return any(wording in message for wording in _WORDINGS)


def release_cached_memory() -> None:
    """Returns the CUDA allocator's cached blocks to the driver (nothing to do on the CPU)."""
    torch = sys.modules.get('torch')
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


@contextlib.contextmanager
def out_of_memory_as_error(doing: str) -> Iterator[None]:
    """Turns an allocation failure inside the block into ``ResourceExhaustedError``.

    The original error is chained without its traceback: the traceback's frames hold the
    block's tensors, which must be freed now, not when the caller drops the error.

    Args:
        doing: what the block does, for the message ("preparing a 3840x2160 frame").
    """
    try:
        yield
    except ResourceExhaustedError:
        raise
    except Exception as exc:  # re-raised below unless it is an allocation failure
        if not is_out_of_memory(exc):
            raise
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        cause = exc.with_traceback(None)
        del exc
        release_cached_memory()
        raise ResourceExhaustedError(
            f'out of memory while {doing} ({first_line}); the frame was dropped: lower '
            'proposals.max_working_pixels or send a smaller image') from cause
