"""Where a mask went between two frames: sparse optical flow and a similarity transform.

The tracker (core/tracking.py) moves the previous mask with the motion estimated here before it
prompts SAM, so a fast pan or zoom still lands the prompt on the object. Corners are taken in
and just around the mask (an object of one flat colour has its corners on its outline), tracked
with pyramidal Lucas-Kanade forwards and backwards (a point that does not come back to where it
started is dropped), and a rotation + uniform scale + translation is fitted to the survivors
with RANSAC.
"""
from __future__ import annotations

import cv2
import numpy as np

#: Pixels around the mask where corners are looked for (the outline's corners are inside).
_RING_PX = 6
_FORWARD_BACKWARD_PX = 1.0
_RANSAC_PX = 2.0
_MIN_POINTS = 6
#: Fitted scale changes beyond this range per frame are not believed.
_SCALE_RANGE = (0.75, 1.33)
_LK = dict(winSize=(21, 21), maxLevel=3,
           criteria=(cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03))


def identity() -> np.ndarray:
    """The (2, 3) float64 identity motion."""
    return np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def estimate_motion(prev_gray: np.ndarray, gray: np.ndarray, mask: np.ndarray,
                    max_points: int) -> tuple[np.ndarray | None, float]:
    """The similarity transform that moves ``mask``'s object from ``prev_gray`` to ``gray``.

    Args:
        prev_gray, gray: (H, W) uint8 consecutive frames.
        mask: (H, W) bool, the object in ``prev_gray``.
        max_points: most corners to track.

    Returns:
        (2, 3) float64 matrix mapping previous (x, y) to new, or None when too few points
        survive or the fit is implausible; and the fraction of the corners the fit explains
        (tracked both ways and within ``_RANSAC_PX`` of the fit), 0 without a fit.
    """
    ring = cv2.dilate(mask.astype(np.uint8), np.ones((2 * _RING_PX + 1,) * 2, np.uint8))
    points = cv2.goodFeaturesToTrack(prev_gray, max_points, 0.01, 4, mask=ring)
    if points is None or len(points) < _MIN_POINTS:
        return None, 0.0
    moved, ok, _ = cv2.calcOpticalFlowPyrLK(prev_gray, gray, points, None, **_LK)
    back, ok_back, _ = cv2.calcOpticalFlowPyrLK(gray, prev_gray, moved, None, **_LK)
    error = np.linalg.norm((back - points).reshape(-1, 2), axis=1)
    keep = (ok.ravel() == 1) & (ok_back.ravel() == 1) & (error < _FORWARD_BACKWARD_PX)
    if keep.sum() < _MIN_POINTS:
        return None, 0.0
    matrix, inliers = cv2.estimateAffinePartial2D(
        points[keep], moved[keep], method=cv2.RANSAC, ransacReprojThreshold=_RANSAC_PX)
    if matrix is None or inliers is None or inliers.sum() < _MIN_POINTS:
        return None, 0.0
    if not _SCALE_RANGE[0] <= scale_of(matrix) <= _SCALE_RANGE[1]:
        return None, 0.0
    return matrix, float(inliers.sum()) / len(points)


def scale_of(matrix: np.ndarray) -> float:
    """The uniform scale of a (2, 3) similarity transform."""
    return float(np.hypot(matrix[0, 0], matrix[1, 0]))


def warp_mask(mask: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """(H, W) bool mask moved by a (2, 3) motion; what leaves the frame is cut off."""
    height, width = mask.shape
    moved = cv2.warpAffine(mask.astype(np.uint8), matrix.astype(np.float64), (width, height),
                           flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return moved.astype(bool)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two (H, W) bool masks (0 when both are empty)."""
    union = int(np.count_nonzero(a | b))
    return float(np.count_nonzero(a & b) / union) if union else 0.0
