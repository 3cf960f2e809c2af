"""The depth image and camera_info of a colour frame, and the 3D centroid of a mask from them.

Pairing happens when the node selects the colour image for a call, not after SAM and CLIP ran:
preparing a frame can take longer (seconds on a CPU, more for a large image) than the buffers
hold (the last ``BUFFER_SIZE`` messages: about a second of a 30 Hz camera). If nothing pairs at
selection (depth often arrives a few milliseconds after colour) the node looks once more after
preparing the frame.

3D needs depth registered to the colour image (the same pixel grid and optical frame, e.g. a
RealSense ``aligned_depth_to_color`` stream or depth_image_proc's ``register``): with
``require_registered_depth`` (the default) the depth image's and camera_info's ``frame_id``
must equal the colour image's, otherwise the answer is 2D and says why.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from hybridgl_ros.core.errors import InvalidInputError
from hybridgl_ros.ros.conversions import depth_to_meters
from hybridgl_ros.ros.depth import Centroid3D, Intrinsics, image_mask_centroid_3d
from hybridgl_ros.ros.params import NodeParams
from hybridgl_ros.ros.sync import StampBuffer, stamp_ns

BUFFER_SIZE = 30


@dataclass(frozen=True)
class DepthPair:
    """The depth image and camera_info paired with one colour frame."""

    depth: Image
    info: CameraInfo


class DepthSync:
    """The last depth images and camera_infos, paired with a colour frame by nearest stamp."""

    def __init__(self, size: int = BUFFER_SIZE) -> None:
        self.depths = StampBuffer(size)
        self.infos = StampBuffer(size)

    def pair(self, header: Header, slop_s: float) -> DepthPair | str:
        """The pair stamped within ``slop_s`` of ``header`` (camera_info: else the latest), or
        why there is none."""
        stamp, slop = stamp_ns(header), int(slop_s * 1e9)
        depth = self.depths.nearest(stamp, slop)
        info = self.infos.nearest(stamp, slop) or self.infos.latest()
        if depth is None or info is None:
            missing = 'depth image' if depth is None else 'camera_info'
            return f'no {missing} within sync_slop_s of the image: 2D result only'
        return DepthPair(depth, info)

    def clear(self) -> None:
        self.depths.clear()
        self.infos.clear()


def centroid_3d(mask_hw: np.ndarray, image_header: Header, pair: DepthPair | str,
                settings: NodeParams) -> tuple[Centroid3D | None, str]:
    """The mask's 3D centroid from the paired depth, or (None, why not).

    Args:
        mask_hw: (H, W) bool mask in the colour image's grid.
        image_header: the colour image's header (its frame_id labels the answer).
        pair: from :meth:`DepthSync.pair` (a string: why there is no pair).
        settings: the node parameters (units, fewest valid pixels, the frame rule).
    """
    if isinstance(pair, str):
        return None, pair
    if settings.require_registered_depth:
        mismatch = frame_mismatch(image_header.frame_id, pair)
        if mismatch:
            return None, mismatch
    try:
        intrinsics = Intrinsics.from_camera_info(pair.info.k, pair.info.p)
        return image_mask_centroid_3d(
            mask_hw, depth_to_meters(pair.depth, settings.depth_units_to_m), intrinsics,
            (pair.info.height, pair.info.width), settings.depth_min_valid_px)
    except InvalidInputError as exc:
        return None, f'depth unusable ({exc}): 2D result only'


def frame_mismatch(image_frame: str, pair: DepthPair) -> str:
    """Why the pair is not registered to the colour image ('' if it is)."""
    for what, frame in (('depth image', pair.depth.header.frame_id),
                        ('camera_info', pair.info.header.frame_id)):
        if frame != image_frame:
            return (f'the {what} is in frame {frame!r}, the colour image in {image_frame!r}: '
                    '3D needs depth registered to the colour image (set '
                    'require_registered_depth to false to use it anyway): 2D result only')
    return ''
