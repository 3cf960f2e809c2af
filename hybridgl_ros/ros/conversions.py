"""sensor_msgs/Image <-> numpy, without cv_bridge (not installable from the registries here).

Supported encodings: rgb8, bgr8, rgba8, bgra8, mono8 (colour and grey pictures), mono16 and
16UC1 (depth in device units, usually millimetres), 32FC1 (depth in metres). Rows may be padded
(``step`` > width x bytes per pixel) and multi-byte pixels may be big-endian
(``is_bigendian``); anything else raises :class:`InvalidInputError` saying what is wrong.
"""
from __future__ import annotations

import sys
from typing import NamedTuple

import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from hybridgl_ros.core.errors import InvalidInputError


class _Layout(NamedTuple):
    dtype: np.dtype
    channels: int


_LAYOUTS = {
    'rgb8': _Layout(np.dtype(np.uint8), 3),
    'bgr8': _Layout(np.dtype(np.uint8), 3),
    'rgba8': _Layout(np.dtype(np.uint8), 4),
    'bgra8': _Layout(np.dtype(np.uint8), 4),
    'mono8': _Layout(np.dtype(np.uint8), 1),
    '8UC1': _Layout(np.dtype(np.uint8), 1),
    'mono16': _Layout(np.dtype(np.uint16), 1),
    '16UC1': _Layout(np.dtype(np.uint16), 1),
    '32FC1': _Layout(np.dtype(np.float32), 1),
}
COLOR_ENCODINGS = ('rgb8', 'bgr8', 'rgba8', 'bgra8', 'mono8')
DEPTH_ENCODINGS = ('16UC1', 'mono16', '32FC1')
_HOST_BIGENDIAN = sys.byteorder == 'big'


def image_to_numpy(msg: Image) -> np.ndarray:
    """The pixels of an Image message, in its own encoding.

    Args:
        msg: any supported encoding (see the module docstring).

    Returns:
        A new array in native byte order: (H, W) for one-channel encodings, (H, W, C)
        otherwise; uint8, uint16 or float32 as the encoding says.

    Raises:
        InvalidInputError: unsupported encoding, empty image, or data whose length does not
            match height x step.
    """
    layout = _LAYOUTS.get(msg.encoding)
    if layout is None:
        raise InvalidInputError(
            f'unsupported image encoding {msg.encoding!r}; supported: '
            f'{", ".join(COLOR_ENCODINGS + DEPTH_ENCODINGS)}')
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    row_bytes = width * layout.channels * layout.dtype.itemsize
    if height <= 0 or width <= 0:
        raise InvalidInputError(f'empty image ({width}x{height})')
    if step < row_bytes:
        raise InvalidInputError(
            f'image step {step} is smaller than width x bytes per pixel = {row_bytes}')
    if len(msg.data) != step * height:
        raise InvalidInputError(
            f'image data has {len(msg.data)} bytes; height x step = {height} x {step} = '
            f'{height * step} expected ({msg.encoding}, {width}x{height})')
    rows = np.frombuffer(msg.data, np.uint8).reshape(height, step)[:, :row_bytes]
    dtype = layout.dtype.newbyteorder('>' if msg.is_bigendian else '<')
    pixels = np.ascontiguousarray(rows).view(dtype)
    shape = (height, width) if layout.channels == 1 else (height, width, layout.channels)
    return pixels.reshape(shape).astype(layout.dtype.newbyteorder('='), copy=True)


def image_to_rgb(msg: Image) -> np.ndarray:
    """A colour or grey Image message as RGB.

    Returns:
        (H, W, 3) uint8 RGB (alpha dropped, grey replicated).

    Raises:
        InvalidInputError: a depth/other encoding, or malformed data.
    """
    if msg.encoding not in COLOR_ENCODINGS:
        raise InvalidInputError(
            f'image encoding {msg.encoding!r} is not a colour picture; '
            f'use one of {", ".join(COLOR_ENCODINGS)}')
    pixels = image_to_numpy(msg)
    if msg.encoding == 'mono8':
        return np.repeat(pixels[:, :, None], 3, axis=2)
    if msg.encoding.startswith('bgr'):
        pixels = pixels[:, :, 2::-1]
    return np.ascontiguousarray(pixels[:, :, :3])


def depth_to_meters(msg: Image, units_to_m: float = 0.001) -> np.ndarray:
    """A depth Image message in metres; pixels without a measurement are NaN.

    Args:
        msg: 16UC1/mono16 (device units, ``units_to_m`` metres each; 0 = no measurement) or
            32FC1 (metres; 0, NaN or inf = no measurement).
        units_to_m: metres per unit of a 16-bit depth image (0.001: millimetres).

    Returns:
        (H, W) float32 depth in metres, NaN where invalid.
    """
    if msg.encoding not in DEPTH_ENCODINGS:
        raise InvalidInputError(
            f'depth encoding {msg.encoding!r} is not supported; use 16UC1 (mm) or 32FC1 (m)')
    raw = image_to_numpy(msg)
    depth = raw.astype(np.float32)
    if raw.dtype == np.uint16:
        with np.errstate(over='ignore', invalid='ignore'):  # a scale past float32: inf, NaN
            depth *= np.float32(units_to_m)
    depth[~np.isfinite(depth) | (depth <= 0.0)] = np.nan
    return depth


def numpy_to_image(array: np.ndarray, encoding: str, header: Header | None = None) -> Image:
    """An Image message holding ``array`` (no row padding, host byte order).

    Args:
        array: (H, W) or (H, W, C) with the dtype and channel count of ``encoding``.
        encoding: a supported encoding; it must agree with the array's dtype and shape.
        header: stamp and frame of the picture (an empty header if None).
    """
    layout = _LAYOUTS.get(encoding)
    if layout is None:
        raise InvalidInputError(f'unsupported image encoding {encoding!r}')
    channels = 1 if array.ndim == 2 else array.shape[2]
    if array.ndim not in (2, 3) or channels != layout.channels or array.dtype != layout.dtype:
        raise InvalidInputError(
            f'a {array.dtype} array of shape {array.shape} is not {encoding} '
            f'({layout.channels} channel(s) of {layout.dtype})')
    height, width = array.shape[:2]
    msg = Image(header=header or Header(), height=height, width=width, encoding=encoding,
                is_bigendian=int(_HOST_BIGENDIAN),
                step=width * layout.channels * layout.dtype.itemsize)
    msg.data = np.ascontiguousarray(array).tobytes()  # assigning bytes: ~1 ms, an ndarray: ~60
    return msg


def mask_to_image(mask_hw: np.ndarray, header: Header | None = None) -> Image:
    """A boolean mask as a mono8 Image: 255 inside, 0 outside.

    Args:
        mask_hw: (H, W) bool.
    """
    return numpy_to_image(np.where(mask_hw, np.uint8(255), np.uint8(0)), 'mono8', header)
