"""Points on a mask: the centroid and an interior point a gripper can use."""
from __future__ import annotations

import numpy as np


def mask_centroid(mask: np.ndarray) -> tuple[float, float]:
    """Mean (x, y) pixel of a (H, W) bool mask; (nan, nan) for an empty mask.

    The centroid can fall outside an L- or ring-shaped mask: see :func:`interior_point`.
    """
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return float('nan'), float('nan')
    return float(xs.mean()), float(ys.mean())


def interior_point(mask: np.ndarray) -> tuple[int, int]:
    """(x, y) of the mask pixel farthest from the mask's boundary; (-1, -1) if empty.

    The image border counts as boundary. Ties go to the first pixel in row-major order.
    """
    import cv2

    if not mask.any():
        return -1, -1
    padded = np.pad(mask.astype(np.uint8), 1)
    distance = cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]
    y, x = np.unravel_index(int(np.argmax(distance)), distance.shape)
    return int(x), int(y)


def mask_box_xywh(mask: np.ndarray) -> tuple[int, int, int, int]:
    """Tight (x, y, width, height) box of a (H, W) bool mask; zeros if empty."""
    ys, xs = np.nonzero(mask)
    if xs.size == 0:
        return 0, 0, 0, 0
    x0, y0 = int(xs.min()), int(ys.min())
    return x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1
