"""The working resolution: frames above a pixel budget are processed downscaled.

Memory and time of the method grow with the pixels of the frame (every proposal is a mask of
the frame's size, the spatial score sums over every pixel), but nothing in it needs more than
about SAM's own input resolution: SAM's masks come from 256×256 logits over a 1024-pixel
side, CLIP sees 224×224 mask images and a 14×14 token grid, GEM a 448×448 image. A frame with
more than ``proposals.max_working_pixels`` pixels (by default SAM's input area, its image
encoder's side squared: ``pipeline.sam_input_pixels``) is therefore downscaled (area average,
aspect kept) and the whole method runs on that *working* image; the chosen mask is then
restored at the camera's resolution (from SAM's logits when the proposer kept them, else by
upsampling).
A frame within the budget is processed as it is, so its answers do not change.
"""
from __future__ import annotations

import math

import numpy as np

from hybridgl_ros.core.types import Proposals


def working_size(height: int, width: int, max_pixels: int) -> tuple[int, int]:
    """(h, w) the method runs at: the frame's own size if it has at most ``max_pixels``
    pixels (or the budget is 0 = off), else the largest size with the same aspect within it.

    Args:
        height, width: the frame in pixels.
        max_pixels: the pixel budget; 0 or less turns downscaling off.

    Returns:
        (h, w) in pixels, each at least 2.
    """
    if max_pixels <= 0 or height * width <= max_pixels:
        return int(height), int(width)
    scale = math.sqrt(max_pixels / float(height * width))
    return max(2, int(height * scale)), max(2, int(width * scale))


def downscale(image_rgb: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 → (h, w, 3) uint8 by area averaging (no aliasing); as is if same size."""
    import cv2

    if tuple(image_rgb.shape[:2]) == tuple(size_hw):
        return image_rgb
    return cv2.resize(image_rgb, (int(size_hw[1]), int(size_hw[0])),
                      interpolation=cv2.INTER_AREA)


def upscale_mask(mask: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """(h, w) bool → (H, W) bool: bilinear on 0/1, thresholded at one half."""
    import cv2

    if tuple(mask.shape) == tuple(size_hw):
        return mask
    resized = cv2.resize(mask.astype(np.float32), (int(size_hw[1]), int(size_hw[0])),
                         interpolation=cv2.INTER_LINEAR)
    return resized > 0.5


def full_resolution_mask(proposals: Proposals, index: int,
                         size_hw: tuple[int, int]) -> np.ndarray:
    """Proposal ``index`` as an (H, W) bool mask at ``size_hw``, the camera's resolution.

    The working mask itself when the sizes agree; else rebuilt by the proposer's restorer (SAM:
    its logits upsampled straight to ``size_hw``) when it kept one for this proposal, else the
    working mask upsampled.
    """
    mask = proposals.masks[index]
    if tuple(mask.shape) == tuple(size_hw):
        return mask
    restorer = proposals.restorer
    if restorer is not None and index < len(restorer):
        return restorer.mask(index, size_hw)
    return upscale_mask(mask, size_hw)


def sam_box_xywh(mask: np.ndarray) -> tuple[int, int, int, int]:
    """SAM's box convention of a (H, W) bool mask as (x, y, w, h): x, y the first column and
    row, w and h the last minus the first (so a one-pixel mask has w = h = 0); zeros if empty."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return 0, 0, 0, 0
    return (int(cols[0]), int(rows[0]), int(cols[-1] - cols[0]), int(rows[-1] - rows[0]))
