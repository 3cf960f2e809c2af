"""Failures the service boundary turns into answers instead of letting them end the node."""
from __future__ import annotations

import sys


def is_out_of_memory(exc: Exception) -> bool:
    """CUDA out of memory (torch.cuda.OutOfMemoryError) or host MemoryError."""
    return isinstance(exc, MemoryError) or type(exc).__name__ == 'OutOfMemoryError' or (
        isinstance(exc, RuntimeError) and 'out of memory' in str(exc).lower())


def empty_cuda_cache() -> None:
    """Returns torch's cached CUDA memory to the driver (nothing without torch or CUDA)."""
    torch = sys.modules.get('torch')
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
