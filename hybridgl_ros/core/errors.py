"""The exceptions of hybridgl_ros. Catch ``HybridGLError`` to catch them all."""


class HybridGLError(Exception):
    """Base class of every error raised on purpose by hybridgl_ros."""


class ConfigError(HybridGLError, ValueError):
    """A configuration value is unknown, of the wrong type or out of range."""


class InvalidInputError(HybridGLError, ValueError):
    """An image or a text that the method cannot take (the message says why)."""


class ModelLoadError(HybridGLError, RuntimeError):
    """A model file is missing or unreadable; the message names the file and where to get it."""


class ResourceExhaustedError(HybridGLError, MemoryError):
    """Out of memory (CPU or GPU) while preparing a frame or answering a query.

    Raised instead of torch's, numpy's or OpenCV's own out-of-memory errors; the frame's state
    is dropped. The request can be retried (a smaller ``proposals.max_working_pixels`` or
    ``features.mask_batch_size`` lowers the peak).
    """
