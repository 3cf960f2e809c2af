"""Frames around a track: the frames a slow first answer lets pass, the overlay's trail."""
from __future__ import annotations

import threading

import numpy as np

from hybridgl_ros.core.errors import HybridGLError

#: How often the recorder looks for a new camera frame [s].
POLL_S = 0.005


class FrameRecorder:
    """Keeps grey copies of the camera frames that arrive while a first answer runs, so the
    tracker can follow the object through them (``Follower.catch_up``) instead of jumping to
    the latest frame. Bounded: beyond ``max_frames`` every other frame is dropped (the steps
    get longer, the memory does not grow: 64 frames of 640x480 are 20 MB).

    Args:
        slot: the node's LatestSlot of camera images.
        max_frames: most frames kept.
    """

    def __init__(self, slot, max_frames: int = 64) -> None:
        self._slot, self._max = slot, max(2, max_frames)
        self._frames: list[tuple[int, np.ndarray]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> 'FrameRecorder':
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=1.0)

    def _run(self) -> None:
        import cv2

        from hybridgl_ros.ros.conversions import image_to_rgb

        last = -1
        while not self._stop.wait(POLL_S):
            item = self._slot.get()
            if item is None or item.seq == last:
                continue
            last = item.seq
            try:
                gray = cv2.cvtColor(image_to_rgb(item.msg), cv2.COLOR_RGB2GRAY)
            except HybridGLError:
                continue            # a bad frame: the answer itself will say so if it matters
            self._frames.append((item.seq, gray))
            if len(self._frames) > self._max:      # every other one, the newest kept
                self._frames = self._frames[(len(self._frames) - 1) % 2::2]

    def after(self, seq: int) -> list[tuple[int, np.ndarray]]:
        """(arrival number, grey frame) of the kept frames that arrived after camera frame
        ``seq``, oldest first."""
        return [(s, gray) for s, gray in list(self._frames) if s > seq]


def with_trail(image_rgb: np.ndarray, trail) -> np.ndarray:
    """A copy of the image with the track's recent centroids joined by a line."""
    import cv2

    points = [(int(round(x)), int(round(y))) for x, y in trail if np.isfinite(x + y)]
    if len(points) < 2:
        return image_rgb
    out = image_rgb.copy()
    cv2.polylines(out, [np.asarray(points, np.int32)], False, (255, 0, 255), 2, cv2.LINE_AA)
    return out
