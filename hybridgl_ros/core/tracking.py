"""Following the chosen object on new frames, far more cheaply than the whole method.

The method (core/pipeline.py) picks one mask on a prepared frame; :class:`Tracker` then follows
that mask frame by frame. Per frame:

1. *Motion*: the previous mask is moved by the similarity transform that sparse optical flow
   finds between the two frames (core/motion.py); without a fit, by the last motion.
2. *SAM*: one image-encoder pass and one prompt-decoder call, prompted with the moved mask's
   most interior point (and its box, ``box_prompt``). SAM's masks are cut to the moved mask
   grown by ``search_margin``, and the one that overlaps the moved mask most is kept: the
   motion, not the look, carries the identity, so a look-alike next to the object does not
   take over. SAM's mask is believed if its predicted IoU (``min_sam_score``), its overlap with
   the moved mask (``min_agreement``), its area change (``max_area_change``) and its size
   against the chosen object's, scaled by the zoom since (``max_growth``), pass; else the
   moved mask stands in for it (an object merging with a neighbour of its colour, say).
3. *Appearance*: every ``appearance_every`` frames, the hybrid CLIP feature of the mask's core
   on a crop around it is compared with the chosen object's (cosine, ``min_appearance``).

A frame is *uncertain* when the look does not match, or when SAM's mask was not believed and
no appearance check confirmed the moved mask. The object is *lost* after ``lost_after``
uncertain frames in a row, or at once when less than ``min_area_px`` of the moved mask is left
in view. An uncertain frame reports the moved mask.

Each update carries a *tracking quality* in [0, 1]: the weakest evidence for the reported mask
on that frame — SAM's predicted IoU and its overlap with the moved mask (SAM's mask), or the
share of flow corners the motion explains (the moved mask), and the appearance similarity when
measured. It scores this frame's evidence; it is not a calibrated probability.

:class:`~hybridgl_ros.core.follow.Follower` puts the method and the tracker together.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from hybridgl_ros.core import mask_ops, motion
from hybridgl_ros.core.cancel import CancelToken, checked_during, sam_checkpoints
from hybridgl_ros.core.cancel import check as check_cancel
from hybridgl_ros.core.tracking_config import TrackingConfig
from hybridgl_ros.core.errors import InvalidInputError
from hybridgl_ros.core.geometry import interior_point, mask_box_xywh, mask_centroid
from hybridgl_ros.core.pipeline import check_image
from hybridgl_ros.core.types import Segmentation

TRACKING, UNCERTAIN, LOST = 'tracking', 'uncertain', 'lost'
#: Context around the object in the appearance crop, as a fraction of its box's longer side.
APPEARANCE_CONTEXT = 0.25
#: The appearance feature is taken on the mask eroded by this fraction of its box's longer side.
APPEARANCE_ERODE = 0.04


@dataclass(frozen=True)
class TrackUpdate:
    """The tracker's answer on one frame.

    Attributes:
        status: TRACKING (checks passed), UNCERTAIN (a check failed: the moved mask is
            reported) or LOST (the object is gone; ``segmentation.found`` is False).
        segmentation: the object on this frame (index -1: it is not a proposal of a prepared
            frame); ``score`` stays that of the method's choice being followed.
        quality: tracking quality in [0, 1] (see the module docstring); 0 when lost.
        frame_index: frames since the start (the first answer's frame is 0).
        checks: the measured values: ``sam_score``, ``agreement``, ``area_ratio`` and, when
            measured, ``appearance``.
        timings_ms: stage -> milliseconds (``motion``, ``sam``, ``appearance``, ``total``).
        message: why the frame is uncertain or the object lost ('' when tracking).
    """

    status: str
    segmentation: Segmentation
    quality: float
    frame_index: int
    checks: dict[str, float] = field(default_factory=dict)
    timings_ms: dict[str, float] = field(default_factory=dict)
    message: str = ''

    @property
    def lost(self) -> bool:
        return self.status == LOST


@dataclass
class _Track:
    """What the tracker remembers of the object it follows."""

    choice: Segmentation
    gray: np.ndarray
    mask: np.ndarray
    motion: np.ndarray          # the last (2, 3) motion
    whole_area_px: float        # the chosen mask's area, times the zoom since, squared
    frame_index: int = 0
    misses: int = 0


class Tracker:
    """Follows one chosen mask over new frames with SAM, optical flow and a CLIP check.

    Args:
        sam: a segment_anything ``Sam`` on its device, eval mode (the pipeline's own).
        config: the tracking settings.
        encoder: a :class:`~hybridgl_ros.core.encoder.HybridEncoder` for the appearance check,
            or None (no appearance check).
        autocast_dtype: run SAM's image encoder under this autocast dtype (CUDA), or None.
    """

    def __init__(self, sam, config: TrackingConfig, encoder=None, autocast_dtype=None) -> None:
        from segment_anything import SamPredictor

        self.config = config
        self.encoder = encoder
        self.predictor = SamPredictor(sam)
        self._checkpoints = sam_checkpoints(sam)
        self.autocast_dtype = autocast_dtype
        self._track: _Track | None = None
        self._reference = None

    @classmethod
    def for_segmenter(cls, segmenter, config: TrackingConfig | None = None) -> 'Tracker':
        """A tracker that shares a ``HybridGL``'s SAM and hybrid encoder (no extra memory)."""
        return cls(segmenter.proposer.sam, config or segmenter.config.tracking,
                   segmenter.encoder, getattr(segmenter, 'autocast_dtype', None))

    @property
    def active(self) -> bool:
        """Whether a track is running (started and not lost)."""
        return self._track is not None

    def stop(self) -> None:
        """Forgets the current track."""
        self._track = None

    @property
    def reference(self):
        """(D,) the normalised appearance feature of the object followed last, or None."""
        return self._reference

    def start(self, image_rgb: np.ndarray, choice: Segmentation, reference=None) -> TrackUpdate:
        """Starts following ``choice`` (the method's answer on ``image_rgb``).

        Args:
            image_rgb: (H, W, 3) uint8, the frame the choice was made on.
            choice: a found Segmentation of that frame.
            reference: the appearance feature to compare with (:attr:`reference` of an earlier
                track of the same object); None = the choice's own, computed here.
        """
        import cv2

        image_rgb = check_image(image_rgb)
        if not choice.found or choice.mask.shape != image_rgb.shape[:2]:
            raise InvalidInputError('the tracker starts from a found mask of the same image')
        if reference is None and self.encoder is not None:
            reference = self._feature(image_rgb, choice.mask)
        self._reference = reference
        gray = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY)
        self._track = _Track(choice, gray, choice.mask.copy(), motion.identity(),
                             float(np.count_nonzero(choice.mask)))
        segmentation = _tracked(choice, choice.mask, '', {})
        return TrackUpdate(TRACKING, segmentation, 1.0, 0)

    def catch_up(self, frames, cancel: CancelToken | None = None) -> int:
        """Moves the track through frames by optical flow alone (no SAM, no checks).

        For the frames a slow first answer let pass: following them one by one keeps each
        step's motion small, so the next :meth:`update` starts from where the object is now.

        Args:
            frames: (H, W) uint8 grey or (H, W, 3) uint8 RGB frames, oldest first.
            cancel: checked before each frame.

        Returns:
            How many frames were followed (0 when there is no track).
        """
        import cv2

        count = 0
        for frame in frames:
            check_cancel(cancel)
            if self._track is None:
                break
            gray = frame if frame.ndim == 2 else cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
            moved, _ = self._move(self._track, gray, {})
            self._track.gray, self._track.mask = gray, moved
            count += 1
        return count

    def update(self, image_rgb: np.ndarray, cancel: CancelToken | None = None) -> TrackUpdate:
        """Follows the object onto the next frame (see the module docstring).

        Args:
            image_rgb: (H, W, 3) uint8, the same size as the first frame.
            cancel: checked before SAM, inside it (before each image-encoder block and the
                decoder) and before the appearance check.
        """
        import cv2

        track, image_rgb = self._current(image_rgb)
        timings: dict[str, float] = {}
        start = time.perf_counter()
        gray = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY)
        track.frame_index += 1
        moved, flow_share = self._move(track, gray, timings)
        track.gray = gray
        if np.count_nonzero(moved) < self.config.min_area_px:
            return self._lose(track, 'the object left the view', {}, timings, start)
        check_cancel(cancel)
        mask, from_sam, checks, failure, note = self._choose(
            image_rgb, moved, track, timings, cancel)
        checks['flow'] = flow_share
        return self._conclude(track, mask, moved, _quality(checks, from_sam), checks,
                              failure or note, bool(failure), timings, start)

    def _current(self, image_rgb: np.ndarray) -> tuple[_Track, np.ndarray]:
        """The running track and the checked (contiguous) frame that continues it."""
        track = self._track
        if track is None:
            raise InvalidInputError('no track: call start() first (or the object was lost)')
        image_rgb = check_image(image_rgb)
        if image_rgb.shape[:2] != track.mask.shape:
            raise InvalidInputError(f'the frame is {image_rgb.shape[1]}x{image_rgb.shape[0]}, '
                                    f'the track {track.mask.shape[1]}x{track.mask.shape[0]}')
        return track, image_rgb

    def _choose(self, image_rgb, moved, track, timings, cancel):
        """SAM's mask or the moved one, checked: (mask, from SAM, checks, failure, note)."""
        sam_mask, checks = self._segment(image_rgb, moved, timings, cancel)
        rejected = self._sam_rejected(sam_mask, checks, track)
        candidates = [(moved, False)] if rejected else [(sam_mask, True), (moved, False)]
        mask, from_sam = candidates[0]
        failure = f'{rejected}, and nothing confirmed the moved mask' if rejected else ''
        if self._appearance_due(track, mask):
            check_cancel(cancel)
            mask, from_sam, failure = self._confirm(image_rgb, candidates, checks, timings)
        note = ''
        if not (from_sam or failure):
            note = 'following the moved mask: ' + (rejected or 'SAM\'s mask looks different')
        return mask, from_sam, checks, failure, note

    def _confirm(self, image_rgb: np.ndarray, candidates: list, checks: dict, timings: dict
                 ) -> tuple[np.ndarray, bool, str]:
        """The first candidate mask whose look matches the chosen object's: (mask, from SAM,
        '') — or the last one tried and why it failed."""
        for mask, from_sam in candidates:
            checks['appearance'] = self._appearance(image_rgb, mask, timings)
            failure = self._look_failure(checks['appearance'])
            if not failure:
                break
        return mask, from_sam, failure

    # ---------------------------------------------------------------------------- the steps
    def _move(self, track: _Track, gray: np.ndarray, timings: dict
              ) -> tuple[np.ndarray, float]:
        """The previous mask moved by the flow's motion (or by the last motion), and the share
        of flow corners that motion explains (0 without a fit)."""
        begin = time.perf_counter()
        matrix, share = None, 0.0
        if self.config.use_flow:
            matrix, share = motion.estimate_motion(track.gray, gray, track.mask,
                                                   self.config.flow_points)
        if matrix is not None:
            track.motion = matrix
        track.whole_area_px *= motion.scale_of(track.motion) ** 2
        moved = motion.warp_mask(track.mask, track.motion)
        timings['motion'] = _ms(begin)
        return moved, share

    def _segment(self, image_rgb: np.ndarray, moved: np.ndarray, timings: dict,
                 cancel: CancelToken | None = None) -> tuple[np.ndarray, dict[str, float]]:
        """SAM on the frame, prompted at the moved mask; its mask cut to the search region."""
        import torch

        begin = time.perf_counter()
        box = (mask_ops.prompt_box(moved, self.config.box_margin) if self.config.box_prompt
               else None)
        with torch.inference_mode(), checked_during(self._checkpoints, cancel):
            with self._encoder_autocast():
                self.predictor.set_image(image_rgb)
            self.predictor.features = self.predictor.features.float()
            masks, scores, _ = self.predictor.predict(
                point_coords=np.asarray([interior_point(moved)], np.float32),
                point_labels=np.ones(1, np.int64), box=box, multimask_output=True)
        region = mask_ops.grown(moved, self.config.search_margin)
        masks = [mask_ops.keep_touching(m.astype(bool) & region, moved) for m in masks]
        overlaps = [motion.mask_iou(m, moved) for m in masks]
        best = int(np.argmax(overlaps))
        mask = masks[best]
        area_ratio = (np.count_nonzero(mask) + 1.0) / (np.count_nonzero(moved) + 1.0)
        timings['sam'] = _ms(begin)
        return mask, {'sam_score': float(scores[best]), 'agreement': float(overlaps[best]),
                      'area_ratio': float(area_ratio)}

    def _encoder_autocast(self):
        import contextlib

        import torch

        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.predictor.device.type, dtype=self.autocast_dtype)

    def _appearance_due(self, track: _Track, mask: np.ndarray) -> bool:
        """Every n-th frame, and only for a mask clear of the picture's border (a cut-off
        object does not look like the whole one)."""
        every = self.config.appearance_every
        return (self.encoder is not None and self._reference is not None and every > 0
                and track.frame_index % every == 0 and not mask_ops.touches_border(mask))

    def _appearance(self, image_rgb: np.ndarray, mask: np.ndarray, timings: dict) -> float:
        begin = time.perf_counter()
        similarity = self.similarity(image_rgb, mask)
        timings['appearance'] = timings.get('appearance', 0.0) + _ms(begin)
        return similarity

    def similarity(self, image_rgb: np.ndarray, mask: np.ndarray) -> float | None:
        """Cosine similarity of a mask's appearance feature to :attr:`reference` (None without
        an encoder or a reference)."""
        import torch

        if self.encoder is None or self._reference is None:
            return None
        feature = self._feature(image_rgb, mask)
        return float(torch.dot(feature, self._reference.to(feature.device)))

    def _feature(self, image_rgb: np.ndarray, mask: np.ndarray):
        """(D,) normalised hybrid CLIP feature of the mask on a square crop around it.

        On the crop, not the whole frame: the whole-frame feature changes with where the object
        is in the picture (its mask images keep the frame), the crop's only with its look. Of
        the mask's core, not the whole mask: a pixel of background at the outline moves the
        feature more than the object turning does (1 px of table around a demo-model mask:
        cosine 0.8).
        """
        import torch

        core = mask_ops.eroded(mask, APPEARANCE_ERODE)
        crop_rgb, crop_mask = mask_ops.object_crop(image_rgb, core, APPEARANCE_CONTEXT)
        feature = self.encoder.encode(crop_rgb, crop_mask[None])[0]
        return torch.nn.functional.normalize(feature.float(), dim=0)

    def _sam_rejected(self, mask: np.ndarray, checks: dict[str, float], track: _Track) -> str:
        """Why SAM's mask is not believed on this frame ('' if it is)."""
        c = self.config
        area = np.count_nonzero(mask)
        if area < c.min_area_px:
            return f'SAM\'s mask has fewer than {c.min_area_px} pixels'
        if checks['sam_score'] < c.min_sam_score:
            return f'SAM\'s predicted IoU {checks["sam_score"]:.2f} < {c.min_sam_score}'
        if checks['agreement'] < c.min_agreement:
            return (f'SAM\'s mask overlaps the moved one by IoU {checks["agreement"]:.2f} < '
                    f'{c.min_agreement}')
        ratio = checks['area_ratio']
        if not 1.0 / c.max_area_change <= ratio <= c.max_area_change:
            return f'SAM\'s mask is {ratio:.2f} times the moved one\'s area'
        if area > c.max_growth * track.whole_area_px:
            return (f'SAM\'s mask is {area / track.whole_area_px:.2f} times the chosen '
                    'object\'s area')
        return ''

    def _look_failure(self, similarity: float) -> str:
        if similarity >= self.config.min_appearance:
            return ''
        return (f'the look differs from the chosen object\'s (similarity {similarity:.2f} < '
                f'{self.config.min_appearance})')

    def _conclude(self, track: _Track, mask: np.ndarray, moved: np.ndarray, quality: float,
                  checks: dict, message: str, uncertain: bool, timings: dict, start: float
                  ) -> TrackUpdate:
        if uncertain:
            track.mask, track.misses = moved, track.misses + 1
            if track.misses >= self.config.lost_after:
                return self._lose(track, f'{track.misses} uncertain frames in a row; last: '
                                  f'{message}', checks, timings, start)
            status, message = UNCERTAIN, f'uncertain: {message}'
        else:
            track.mask, track.misses, status = mask, 0, TRACKING
        timings['total'] = _ms(start)
        return TrackUpdate(status, _tracked(track.choice, track.mask, message, timings),
                           quality, track.frame_index, checks, timings, message)

    def _lose(self, track: _Track, why: str, checks: dict, timings: dict, start: float
              ) -> TrackUpdate:
        self._track = None
        timings['total'] = _ms(start)
        empty = np.zeros_like(track.mask)
        message = f'lost: {why}'
        segmentation = replace(_tracked(track.choice, empty, message, timings), score=0.0)
        return TrackUpdate(LOST, segmentation, 0.0, track.frame_index, checks, timings, message)


def _quality(checks: dict[str, float], from_sam: bool) -> float:
    """The weakest evidence for the reported mask (see the module docstring)."""
    names = ('sam_score', 'agreement') if from_sam else ('flow',)
    values = [checks[k] for k in (*names, 'appearance') if k in checks]
    return float(np.clip(min(values), 0.0, 1.0)) if values else 0.0


def _tracked(choice: Segmentation, mask: np.ndarray, message: str, timings: dict
             ) -> Segmentation:
    """The followed object on a new frame, as a Segmentation (index -1: not a proposal).

    Its ``confidence`` is NaN (no calibrated estimate for a tracked frame: the update's
    ``quality`` says how well the frame's checks held) and the first answer's alternatives are
    dropped: their boxes belong to the first frame."""
    return replace(choice, found=bool(mask.any()), mask=mask, box_xywh=mask_box_xywh(mask),
                   confidence=float('nan'), ambiguous=False, alternatives=(),
                   centroid_xy=mask_centroid(mask), interior_xy=interior_point(mask), index=-1,
                   pure_index=-1, matching_probs=np.zeros(0, np.float32),
                   spatial_scores=np.zeros(0, np.float32), candidate_indices=(),
                   candidate_scores=(), timings_ms=dict(timings), message=message,
                   explanation=None)


def _ms(start: float) -> float:
    return (time.perf_counter() - start) * 1000.0
