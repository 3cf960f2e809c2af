"""3D centroid of a mask from an aligned depth image and pinhole intrinsics (numpy only).

How: every mask pixel (u, v) with a valid depth z (finite, > 0) is back-projected with the
intrinsics of the depth image's camera_info: ``x = (u - cx) * z / fx``, ``y = (v - cy) * z / fy``
(camera optical frame: x right, y down, z forward, metres; integer pixel coordinates are pixel
centres, as in ROS' camera model). fx, fy, cx, cy come from the projection matrix P, the
intrinsics of the *rectified* image (P[0], P[5], P[2], P[6]), as image_geometry's pinhole model
uses them: registered/aligned depth images are rectified. K is used only when P is unset. The
centroid is the per-axis **median** of those points, which ignores the depth edges that bleed
into the background at the mask border; the box spans their 5th to 95th percentiles.

Implausible inputs give no 3D point rather than a wrong one: a depth outside ``min_depth_m`` to
``max_depth_m`` is no measurement (no depth camera measures 1e-45 m or 1e38 m), and intrinsics
whose field of view is 179° or more, or whose principal point lies more than the image's size
outside it, are refused.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from hybridgl_ros.core.errors import InvalidInputError

BOX_PERCENTILES = (5.0, 95.0)
#: A rectified pinhole image's field of view is under 180°: fx < width / (2 tan(89.5°)) is
#: refused as an unusable camera_info (a fisheye's raw intrinsics are not a pinhole's).
MAX_FIELD_OF_VIEW_DEG = 179.0


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels of the image they belong to."""

    fx: float
    fy: float
    cx: float
    cy: float

    @classmethod
    def from_k(cls, k: Sequence[float]) -> 'Intrinsics':
        """From a row-major 3x3 camera matrix (sensor_msgs/CameraInfo.k)."""
        if len(k) != 9:
            raise InvalidInputError(f'camera matrix K needs 9 values, got {len(k)}')
        return cls._checked('K', float(k[0]), float(k[4]), float(k[2]), float(k[5]))

    @classmethod
    def from_camera_info(cls, k: Sequence[float], p: Sequence[float]) -> 'Intrinsics':
        """From a CameraInfo's P (row-major 3x4: the rectified image), or K if P is all zero."""
        if len(p) != 12 or not any(p):
            return cls.from_k(k)
        return cls._checked('P', float(p[0]), float(p[5]), float(p[2]), float(p[6]))

    @classmethod
    def _checked(cls, matrix: str, fx: float, fy: float, cx: float, cy: float) -> 'Intrinsics':
        if not (np.isfinite([fx, fy, cx, cy]).all() and fx > 0 and fy > 0):
            raise InvalidInputError(f'camera_info has an unusable {matrix} (fx={fx}, fy={fy}, '
                                    f'cx={cx}, cy={cy})')
        return cls(fx, fy, cx, cy)

    def implausible_for(self, height: int, width: int) -> str:
        """Why these intrinsics cannot be an (height, width) image's ('' when they can)."""
        if not np.isfinite([self.fx, self.fy, self.cx, self.cy]).all():  # scaled past float
            return (f'camera_info scaled to the {width}x{height} depth image is not finite '
                    f'(fx={self.fx:g}, fy={self.fy:g}, cx={self.cx:g}, cy={self.cy:g})')
        half_angle = np.radians(MAX_FIELD_OF_VIEW_DEG / 2)
        min_fx, min_fy = width / (2 * np.tan(half_angle)), height / (2 * np.tan(half_angle))
        if self.fx < min_fx or self.fy < min_fy:
            return (f'camera_info fx={self.fx:g}, fy={self.fy:g} give a {width}x{height} depth '
                    f'image a field of view of {MAX_FIELD_OF_VIEW_DEG:g}° or more')
        if not (-width <= self.cx <= 2 * width and -height <= self.cy <= 2 * height):
            return (f'camera_info principal point ({self.cx:g}, {self.cy:g}) lies more than the '
                    f'image\'s size outside the {width}x{height} depth image')
        return ''

    def scaled(self, sx: float, sy: float) -> 'Intrinsics':
        """The intrinsics of the same camera resampled by (sx, sy)."""
        return Intrinsics(self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5,
                          (self.cy + 0.5) * sy - 0.5)


@dataclass(frozen=True)
class Centroid3D:
    """A mask's 3D position.

    Attributes:
        xyz_m: (x, y, z) median of the valid back-projected mask pixels [m], optical frame.
        box_min_m: (x, y, z) 5th percentiles of those points [m].
        box_max_m: (x, y, z) 95th percentiles [m].
        valid_px: how many mask pixels had a valid depth.
    """

    xyz_m: tuple[float, float, float]
    box_min_m: tuple[float, float, float]
    box_max_m: tuple[float, float, float]
    valid_px: int


def resize_mask(mask_hw: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resampling of an (H, W) bool mask to (height, width)."""
    if mask_hw.shape == (height, width):
        return mask_hw
    rows = np.minimum((np.arange(height) + 0.5) * mask_hw.shape[0] / height, mask_hw.shape[0] - 1)
    cols = np.minimum((np.arange(width) + 0.5) * mask_hw.shape[1] / width, mask_hw.shape[1] - 1)
    return mask_hw[rows.astype(np.int64)[:, None], cols.astype(np.int64)[None, :]]


def valid_depth(mask_hw: np.ndarray, depth_m: np.ndarray, max_depth_m: float = 0.0,
                min_depth_m: float = 0.0) -> np.ndarray:
    """(H, W) bool: mask pixels with a measured depth (finite, > 0, within the limits; a limit
    of 0 is none)."""
    if mask_hw.shape != depth_m.shape:
        raise InvalidInputError(f'mask {mask_hw.shape} and depth {depth_m.shape} differ in size')
    valid = mask_hw & np.isfinite(depth_m) & (depth_m > 0)
    largest = float(np.finfo(depth_m.dtype).max) if depth_m.dtype.kind == 'f' else np.inf
    if min_depth_m > 0:  # limits past the depth's float range compare as its largest value
        valid &= depth_m >= min(min_depth_m, largest)
    if max_depth_m > 0:
        valid &= depth_m <= min(max_depth_m, largest)
    return valid


def mask_centroid_3d(mask_hw: np.ndarray, depth_m: np.ndarray, intrinsics: Intrinsics,
                     min_valid_px: int = 1, max_depth_m: float = 0.0,
                     min_depth_m: float = 0.0) -> Centroid3D | None:
    """Back-projects the mask's valid depth pixels and takes their per-axis median.

    Args:
        mask_hw: (H, W) bool, in the depth image's pixel grid (see :func:`resize_mask`).
        depth_m: (H, W) float32 depth [m], NaN where there is no measurement.
        intrinsics: of the depth image.
        min_valid_px: fewest valid pixels for an answer.
        max_depth_m: depths beyond this are no measurement (0 = no limit).
        min_depth_m: depths below this are no measurement (0 = any positive depth).

    Returns:
        The centroid, or None when fewer than ``min_valid_px`` mask pixels have a depth.
    """
    valid = valid_depth(mask_hw, depth_m, max_depth_m, min_depth_m)
    return _back_projected(valid, depth_m, intrinsics) if _enough(valid, min_valid_px) else None


def _enough(valid: np.ndarray, min_valid_px: int) -> bool:
    return int(valid.sum()) >= max(min_valid_px, 1)


def _back_projected(valid: np.ndarray, depth_m: np.ndarray, intrinsics: Intrinsics
                    ) -> Centroid3D:
    """The centroid of the ``valid`` pixels (at least one), back-projected."""
    rows, cols = np.nonzero(valid)
    z = depth_m[rows, cols].astype(np.float64)
    x = (cols - intrinsics.cx) * z / intrinsics.fx
    y = (rows - intrinsics.cy) * z / intrinsics.fy
    points = np.stack([x, y, z], axis=1)  # (P, 3) metres
    low, high = np.percentile(points, BOX_PERCENTILES, axis=0)
    return Centroid3D(tuple(float(v) for v in np.median(points, axis=0)),
                      tuple(float(v) for v in low), tuple(float(v) for v in high),
                      int(rows.size))


def image_mask_centroid_3d(mask_hw: np.ndarray, depth_m: np.ndarray, intrinsics: Intrinsics,
                           info_hw: tuple[int, int], min_valid_px: int,
                           max_depth_m: float = 0.0, min_depth_m: float = 0.0
                           ) -> tuple[Centroid3D | None, str]:
    """The 3D centroid of a mask of the colour image, from the aligned depth image.

    Args:
        mask_hw: (H, W) bool in the colour image's grid (resampled to the depth's here).
        depth_m: (h, w) depth [m], NaN where there is none.
        intrinsics: of the depth's camera_info (see :meth:`Intrinsics.from_camera_info`).
        info_hw: (height, width) the camera_info states ((0, 0) = not stated): the intrinsics
            are scaled when the depth image has another size.
        min_valid_px: fewest valid depth pixels under the mask.
        max_depth_m: depths beyond this are no measurement (0 = no limit).
        min_depth_m: depths below this are no measurement (0 = any positive depth).

    Returns:
        (centroid, '') or (None, why not).
    """
    if all(info_hw) and tuple(info_hw) != depth_m.shape:
        intrinsics = intrinsics.scaled(depth_m.shape[1] / info_hw[1],
                                       depth_m.shape[0] / info_hw[0])
    implausible = intrinsics.implausible_for(*depth_m.shape)
    if implausible:
        return None, f'depth unusable ({implausible}): 2D result only'
    valid = valid_depth(resize_mask(mask_hw, *depth_m.shape), depth_m, max_depth_m, min_depth_m)
    if _enough(valid, min_valid_px):
        return _back_projected(valid, depth_m, intrinsics), ''
    count = int(valid.sum())
    if count:
        return None, (f'only {count} valid depth pixel(s) under the mask, fewer than '
                      f'depth_min_valid_px = {min_valid_px}: 2D result only')
    below = f', below min_depth_m = {min_depth_m:g} m' if min_depth_m > 0 else ''
    beyond = f', beyond max_depth_m = {max_depth_m:g} m' if max_depth_m > 0 else ''
    return None, f'no valid depth under the mask (zero/NaN{below}{beyond}): 2D result only'
