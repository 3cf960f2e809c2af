"""The depth image and camera_info of a colour frame, and the 3D centroid of a mask from them.

Pairing starts when the node selects the colour image for a call and lasts until SAM and CLIP
have run (:meth:`DepthSync.watch`): preparing a frame can take longer (seconds on a CPU, more for
a large image) than the buffers hold (the last ``BUFFER_SIZE`` messages: about a second of a
30 Hz camera), and the depth of the very frame often arrives a few milliseconds after its colour
image. The watch takes the nearest of the buffered messages and of those arriving while it lasts,
so the frame's own depth is found however long preparing takes.

3D needs depth registered to the colour image (the same pixel grid and optical frame, e.g. a
RealSense ``aligned_depth_to_color`` stream or depth_image_proc's ``register``): with
``require_registered_depth`` (the default) the depth image's and camera_info's ``frame_id``
must equal the colour image's, otherwise the answer is 2D and says why.
"""
from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
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


class PairWatch:
    """The depth image and camera_info stamped nearest to one colour frame, among those buffered
    when the watch started and those that arrived while it lasted (see :meth:`DepthSync.watch`).
    """

    def __init__(self, stamp: int, slop: int, latest_info, seen: set[str] = frozenset()) -> None:
        self._stamp, self._slop, self._latest_info = stamp, slop, latest_info
        self._seen = set(seen)  # kinds of which any message has arrived
        self._best: dict[str, tuple[int, object]] = {}
        self._lock = threading.Lock()

    def offer(self, kind: str, msg) -> None:
        """A message that has just arrived (``kind`` 'depth' or 'info')."""
        if kind == 'info':
            self._latest_info = msg
        with self._lock:
            self._seen.add(kind)
        self.keep(kind, msg)

    def keep(self, kind: str, msg) -> None:
        """Keeps ``msg`` if within the slop and nearer than the kept one."""
        gap = abs(stamp_ns(msg.header) - self._stamp)
        if gap > self._slop:
            return
        with self._lock:
            if kind not in self._best or gap < self._best[kind][0]:
                self._best[kind] = (gap, msg)

    def pair(self) -> DepthPair | str:
        """The pair within the slop (camera_info: else the latest one seen), or why none."""
        with self._lock:
            depth = self._best.get('depth', (0, None))[1]
            info = self._best.get('info', (0, self._latest_info))[1]
            seen = set(self._seen)
        if depth is None or info is None:
            kind, missing = ('depth', 'depth image') if depth is None else ('info', 'camera_info')
            if kind not in seen:  # not a timing problem: nothing is published
                return (f'no {missing} has arrived yet: 2D result only (use_depth = false '
                        'for 2D without this note)')
            return f'no {missing} within sync_slop_s of the image: 2D result only'
        return DepthPair(depth, info)


class DepthSync:
    """The last depth images and camera_infos, paired with a colour frame by nearest stamp.

    The node's subscriptions call :meth:`add_depth` and :meth:`add_info`.
    """

    def __init__(self, size: int = BUFFER_SIZE) -> None:
        self.depths = StampBuffer(size)
        self.infos = StampBuffer(size)
        self._watches: set[PairWatch] = set()
        self._lock = threading.Lock()

    def add_depth(self, msg: Image) -> None:
        self._add('depth', self.depths, msg)

    def add_info(self, msg: CameraInfo) -> None:
        self._add('info', self.infos, msg)

    def _add(self, kind: str, buffer: StampBuffer, msg) -> None:
        with self._lock:  # a watch started now sees msg in the buffer or gets it offered
            buffer.add(msg)
            watches = list(self._watches)
        for watch in watches:
            watch.offer(kind, msg)

    @contextlib.contextmanager
    def watch(self, header: Header, slop_s: float) -> Iterator[PairWatch]:
        """Pairs ``header``'s frame with the buffered messages and with those that arrive
        until the block ends; ``watch.pair()`` after the block gives the pair or why none."""
        stamp, slop = stamp_ns(header), int(slop_s * 1e9)
        with self._lock:
            seen = {kind for kind, buffer in (('depth', self.depths), ('info', self.infos))
                    if buffer.latest() is not None}
            watch = PairWatch(stamp, slop, self.infos.latest(), seen)
            for kind, buffer in (('depth', self.depths), ('info', self.infos)):
                nearest = buffer.nearest(stamp, slop)
                if nearest is not None:
                    watch.keep(kind, nearest)
            self._watches.add(watch)
        try:
            yield watch
        finally:
            with self._lock:
                self._watches.discard(watch)

    def pair(self, header: Header, slop_s: float) -> DepthPair | str:
        """The buffered pair stamped within ``slop_s`` of ``header`` (camera_info: else the
        latest), or why there is none."""
        with self.watch(header, slop_s) as watch:
            pass
        return watch.pair()

    def clear(self) -> None:
        with self._lock:
            self.depths.clear()
            self.infos.clear()


def centroid_3d(mask_hw: np.ndarray, image_header: Header, pair: DepthPair | str,
                settings: NodeParams) -> tuple[Centroid3D | None, str]:
    """The mask's 3D centroid from the paired depth, or (None, why not).

    Args:
        mask_hw: (H, W) bool mask in the colour image's grid.
        image_header: the colour image's header (its frame_id labels the answer).
        pair: from :meth:`DepthSync.pair` (a string: why there is no pair).
        settings: the node parameters (units, fewest valid pixels, range, the frame rule).
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
            (pair.info.height, pair.info.width), settings.depth_min_valid_px,
            settings.max_depth_m, settings.min_depth_m)
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
