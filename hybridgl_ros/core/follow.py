"""The referred object followed over a stream: the whole method once, then the tracker.

``Follower.first(image, text)`` answers like ``HybridGL.segment`` and starts the tracker on the
answer; ``Follower.next(image)`` follows it onto each later frame. When the tracker loses the
object, ``tracking.on_lost`` decides: ``report`` ends the track (the update says LOST);
``redetect`` runs the whole method on the next frames, up to ``redetect_attempts`` of them,
and resumes on the first answer that is found and looks like the object first chosen (its
appearance similarity passes ``min_appearance``). The frames in between are SEARCHING.
"""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from hybridgl_ros.core.cancel import CancelToken
from hybridgl_ros.core.cancel import check as check_cancel
from hybridgl_ros.core.errors import InvalidInputError
from hybridgl_ros.core.tracking import LOST, TRACKING, Tracker, TrackUpdate
from hybridgl_ros.core.types import Frame, Segmentation

#: Status of a frame on which ``on_lost = redetect`` ran the method without finding the object.
SEARCHING = 'searching'


class Follower:
    """The method, then the tracker, for one expression at a time.

    Args:
        segmenter: a ``HybridGL`` (``prepare(image, cancel)``, ``query(frame, text)``).
        tracker: the tracker to use; default ``Tracker.for_segmenter(segmenter)``.
    """

    def __init__(self, segmenter, tracker: Tracker | None = None) -> None:
        self.segmenter = segmenter
        self.tracker = tracker or Tracker.for_segmenter(segmenter)
        self.config = self.tracker.config
        self.text = ''
        self.frame_index = 0
        self._searching = -1           # frames searched so far; -1 = not searching

    def first(self, image_rgb: np.ndarray, text: str, cancel: CancelToken | None = None,
              frame: Frame | None = None) -> Segmentation:
        """The method's answer on ``image_rgb`` (or its already prepared ``frame``); the tracker
        starts on it when it is found."""
        if frame is None:
            frame = self.segmenter.prepare(image_rgb, cancel=cancel)
        check_cancel(cancel)
        result = self.segmenter.query(frame, text)
        self.follow(image_rgb, result)
        return result

    def follow(self, image_rgb: np.ndarray, choice: Segmentation) -> None:
        """Starts following ``choice`` (a Segmentation of ``image_rgb``; nothing to follow if
        it is not found)."""
        self.text, self.frame_index, self._searching = choice.text, 0, -1
        self.tracker.stop()
        if choice.found:
            self.tracker.start(image_rgb, choice)

    def catch_up(self, frames, cancel: CancelToken | None = None) -> int:
        """The tracker follows ``frames`` (oldest first) by optical flow alone: those that
        arrived during a slow first answer (see :meth:`Tracker.catch_up`)."""
        return self.tracker.catch_up(frames, cancel)

    @property
    def active(self) -> bool:
        """Whether ``next`` can follow the object (tracking, or searching for it)."""
        return self.tracker.active or self._searching >= 0

    def next(self, image_rgb: np.ndarray, cancel: CancelToken | None = None) -> TrackUpdate:
        """The object on the next frame (see the module docstring)."""
        if not self.active:
            raise InvalidInputError('nothing to follow: call first() (or the object was lost)')
        self.frame_index += 1
        if self._searching >= 0:
            return self._search(image_rgb, cancel)
        update = self.tracker.update(image_rgb, cancel)
        if update.lost and self.config.on_lost == 'redetect' and self.config.redetect_attempts:
            self._searching = 0
            update = replace(update, status=SEARCHING,
                             message=f'{update.message}; searching with the whole method')
        return replace(update, frame_index=self.frame_index)

    def _search(self, image_rgb: np.ndarray, cancel: CancelToken | None) -> TrackUpdate:
        """One frame of re-detection: the whole method, accepted if it looks like the object."""
        start = time.perf_counter()
        self._searching += 1
        result = self.segmenter.query(self.segmenter.prepare(image_rgb, cancel=cancel),
                                      self.text)
        reference = self.tracker.reference
        why = '' if result.found else 'the method found no object'
        if result.found:
            self.tracker.start(image_rgb, result, reference=reference)
            similarity = self.tracker.similarity(image_rgb, result.mask)
            if similarity is not None and similarity < self.config.min_appearance:
                self.tracker.stop()
                why = (f'the method\'s answer does not look like the object (similarity '
                       f'{similarity:.2f})')
        timings = {'redetect': (time.perf_counter() - start) * 1000.0}
        if not why:
            self._searching = -1
            return TrackUpdate(TRACKING, replace(result, message='found again by the method'),
                               1.0, self.frame_index, {}, timings, 'found again by the method')
        lost = self._searching >= self.config.redetect_attempts
        if lost:
            self._searching = -1
        status = LOST if lost else SEARCHING
        message = f'{"lost" if lost else "searching"}: {why}'
        empty = Segmentation.not_found(self.text, result.parse, image_rgb.shape[:2], 0, message)
        return TrackUpdate(status, empty, 0.0, self.frame_index, {}, timings, message)
