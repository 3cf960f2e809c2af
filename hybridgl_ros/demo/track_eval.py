"""``hybridgl eval-track``: the follower (the method, then the tracker) on generated clips.

Per clip (``demo/sequences.py``) the method answers the clip's expression on frame 0 (or, with
``init='truth'``, the tracker starts from the true mask), and the tracker follows the answer to
the last frame. Measured, against each frame's true visible mask of the target:

* **IoU** on every tracked frame (1..n-1) where the target is *visible*: at least
  ``VISIBLE_MIN`` of it in view and not hidden. A frame after the track ended counts IoU 0.
* **Frames to loss** (``leave`` clips): the frame on which the tracker reported the loss minus
  the first frame with no pixel of the target left in view (<= 0: reported before it was gone).
* **Identity switches**: frames on which the reported mask overlaps another object more than
  the target (IoU > ``SWITCH_IOU``) after a frame on which it did not (none are counted after
  a wrong first answer: the tracker then follows the method's miss from the start).
* **Premature losses**: a loss reported while the target was visible.
* **Tracking rate**: frames per second of ``Follower.next`` (motion, SAM, appearance check).
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from hybridgl_ros.core.motion import mask_iou
from hybridgl_ros.core.types import ParsedExpression, Segmentation

LOG = logging.getLogger(__name__)
VISIBLE_MIN = 0.5
SWITCH_IOU = 0.3
#: The issue's targets.
TARGET_MEAN_IOU = 0.8
TARGET_FRAMES_TO_LOSS = 5
TARGET_RATE_HZ = 5.0


@dataclass(frozen=True)
class FrameRecord:
    """One tracked frame: status, IoU with the target, the target's visible fraction, the best
    IoU with another object and which, tracking quality, milliseconds of ``next``."""

    t: int
    status: str
    iou: float
    visible: float
    other_iou: float
    other: int
    quality: float
    ms: float


@dataclass
class ClipRecord:
    """A clip's run: its first answer and the tracked frames."""

    name: str
    kind: str
    text: str
    init: str
    first_iou: float
    frames: list[FrameRecord] = field(default_factory=list)
    lost_at: int | None = None
    gone_at: int | None = None

    def visible_ious(self) -> list[float]:
        return [f.iou for f in self.frames if f.visible >= VISIBLE_MIN]

    @property
    def mean_iou(self) -> float:
        values = self.visible_ious()
        return float(np.mean(values)) if values else float('nan')

    @property
    def frames_to_loss(self) -> int | None:
        """None when the target never left; a large number when the loss was never reported."""
        if self.gone_at is None:
            return None
        end = self.lost_at if self.lost_at is not None else len(self.frames) + 1
        return end - self.gone_at

    @property
    def switches(self) -> int:
        """Onsets of frames on another object; none counted after a wrong first answer (that
        is the method's miss, not a switch)."""
        count, on_other = 0, self.first_iou < 0.5
        for f in self.frames:
            now = f.other_iou > SWITCH_IOU and f.other_iou > f.iou
            count += now and not on_other
            on_other = now
        return count

    @property
    def premature_loss(self) -> bool:
        return self.lost_at is not None and any(
            f.t == self.lost_at and f.visible >= VISIBLE_MIN for f in self.frames)


def truth_choice(text: str, mask: np.ndarray) -> Segmentation:
    """A found Segmentation of a true mask (to start the tracker without the method)."""
    empty = Segmentation.not_found(text, ParsedExpression(text, text), mask.shape, 0, '')
    return replace(empty, found=True, mask=mask, message='the true mask')


def run_clip(follower, clip, init: str = 'method', on_frame=None) -> ClipRecord:
    """Runs ``follower`` (a :class:`~hybridgl_ros.core.follow.Follower`) over ``clip``.

    Args:
        init: 'method' (the method answers on frame 0) or 'truth' (the true mask).
        on_frame: called with (t, ClipFrame, TrackUpdate or Segmentation) per frame.
    """
    first = clip.frame(0)
    truth = first.masks[clip.target]
    if init == 'truth':
        result = truth_choice(clip.text, truth)
        follower.follow(first.image_rgb, result)
    else:
        result = follower.first(first.image_rgb, clip.text)
    record = ClipRecord(clip.name, clip.kind, clip.text, init,
                        mask_iou(result.mask, truth) if result.found else 0.0)
    if on_frame:
        on_frame(0, first, result)
    for t in range(1, clip.frames):
        frame = clip.frame(t)
        visible = float(frame.visible_fraction[clip.target])
        if record.gone_at is None and visible == 0.0:
            record.gone_at = t
        if not follower.active:
            record.frames.append(FrameRecord(t, 'ended', 0.0, visible, 0.0, -1, 0.0, 0.0))
            continue
        start = time.perf_counter()
        update = follower.next(frame.image_rgb)
        ms = (time.perf_counter() - start) * 1000.0
        record.frames.append(_frame_record(t, update, frame, clip.target, visible, ms))
        if update.lost:
            record.lost_at = t
        if on_frame:
            on_frame(t, frame, update)
    return record


def _frame_record(t, update, frame, target, visible, ms) -> FrameRecord:
    mask = update.segmentation.mask
    others = [(mask_iou(mask, m), i) for i, m in enumerate(frame.masks) if i != target]
    other_iou, other = max(others, default=(0.0, -1))
    return FrameRecord(t, update.status, mask_iou(mask, frame.masks[target]), visible,
                       other_iou, other, update.quality, ms)


def summarize(records: list[ClipRecord]) -> dict:
    """The figures of a run, overall and per clip kind (see the module docstring)."""
    ious = [v for r in records for v in r.visible_ious()]
    ms = [f.ms for r in records for f in r.frames if f.status != 'ended']
    leaves = [r.frames_to_loss for r in records if r.frames_to_loss is not None]
    kinds = sorted({r.kind for r in records})
    return {
        'clips': len(records), 'tracked_frames': len(ms),
        'mean_iou': _mean(ious), 'visible_frames': len(ious),
        'mean_iou_right_first_answer': _mean([v for r in records if r.first_iou >= 0.5
                                              for v in r.visible_ious()]),
        'first_answer_correct': sum(r.first_iou >= 0.5 for r in records),
        'per_kind_mean_iou': {k: _mean([v for r in records if r.kind == k
                                        for v in r.visible_ious()]) for k in kinds},
        'frames_to_loss': leaves,
        'loss_within_target': sum(f <= TARGET_FRAMES_TO_LOSS for f in leaves),
        'switches': sum(r.switches for r in records),
        'lookalike_switches': sum(r.switches for r in records if r.kind == 'lookalike'),
        'premature_losses': sum(r.premature_loss for r in records),
        'ms_per_frame_mean': _mean(ms), 'ms_per_frame_p90': _percentile(ms, 90),
        'rate_hz': 1000.0 / _mean(ms) if ms else float('nan'),
        'per_clip': [{'name': r.name, 'text': r.text, 'first_iou': round(r.first_iou, 3),
                      'mean_iou': round(r.mean_iou, 3), 'lost_at': r.lost_at,
                      'gone_at': r.gone_at, 'switches': r.switches} for r in records]}


def _mean(values) -> float:
    return float(np.mean(values)) if len(values) else float('nan')


def _percentile(values, q) -> float:
    return float(np.percentile(values, q)) if len(values) else float('nan')


def format_summary(summary: dict) -> str:
    """A few lines: each figure next to the issue's target."""
    s = summary
    leaves = s['frames_to_loss']
    lines = [
        f'clips {s["clips"]}, tracked frames {s["tracked_frames"]}, first answer right '
        f'(IoU >= 0.5) on {s["first_answer_correct"]}',
        f'mean IoU over {s["visible_frames"]} visible frames: {s["mean_iou"]:.3f} '
        f'(target >= {TARGET_MEAN_IOU}); clips with a right first answer: '
        f'{s["mean_iou_right_first_answer"]:.3f}',
        '  per kind: ' + ', '.join(f'{k} {v:.3f}' for k, v in s['per_kind_mean_iou'].items()),
        f'frames from gone to loss reported: {leaves} (target <= {TARGET_FRAMES_TO_LOSS}: '
        f'{s["loss_within_target"]} of {len(leaves)})',
        f'identity switches: {s["switches"]} (to the look-alike: {s["lookalike_switches"]}); '
        f'losses reported while visible: {s["premature_losses"]}',
        f'tracking: {s["ms_per_frame_mean"]:.1f} ms per frame (p90 {s["ms_per_frame_p90"]:.1f}) '
        f'= {s["rate_hz"]:.1f} frames/s (measured here; the bench figure is `hybridgl bench`)']
    return '\n'.join(lines)


def run_eval_track(args: argparse.Namespace) -> int:
    """Handler of ``hybridgl eval-track``."""
    from hybridgl_ros.cli import config_from_args
    from hybridgl_ros.core.follow import Follower
    from hybridgl_ros.core.pipeline import HybridGL
    from hybridgl_ros.demo import demo_config
    from hybridgl_ros.core.errors import HybridGLError
    from hybridgl_ros.demo.sequences import CLIP_KINDS, make_clips, min_frames

    kinds = tuple(args.kinds.split(','))
    unknown = [kind for kind in kinds if kind not in CLIP_KINDS]
    if unknown:
        raise HybridGLError(f'--kinds: {", ".join(unknown)} is no clip kind; the kinds are '
                            f'{", ".join(CLIP_KINDS)}')
    if args.frames < min_frames(kinds):
        raise HybridGLError(f'--frames must be at least {min_frames(kinds)} for these kinds of '
                            f'clip, not {args.frames}')
    config = config_from_args(args, default=demo_config())
    follower = Follower(HybridGL.from_config(config))
    records = []
    for clip in make_clips(args.seed, args.count, args.frames, kinds):
        records.append(run_clip(follower, clip, args.init))
        r = records[-1]
        print(f'{r.name:14s} {r.text!r:34s} first IoU {r.first_iou:.2f}  mean IoU '
              f'{r.mean_iou:.3f}  lost at {r.lost_at}  gone at {r.gone_at}  switches '
              f'{r.switches}', flush=True)
    summary = summarize(records)
    print(format_summary(summary))
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / 'summary.json').write_text(json.dumps(summary, indent=1) + '\n')
        with (out / 'frames.jsonl').open('w') as stream:
            for r in records:
                for f in r.frames:
                    stream.write(json.dumps({'clip': r.name, **asdict(f)}) + '\n')
    return 0


def register(subparsers) -> None:
    from hybridgl_ros.cli import add_config_arguments, positive_int
    from hybridgl_ros.demo.sequences import CLIP_KINDS, DEFAULT_FRAMES, SEQUENCE_SEED

    track = subparsers.add_parser(
        'eval-track', help='follow the referred object through generated clips: IoU per '
        'frame, frames until loss, identity switches, tracking rate')
    track.add_argument('--count', type=positive_int, default=20, help='clips (default 20)')
    track.add_argument('--frames', type=positive_int, default=DEFAULT_FRAMES,
                       help='frames per clip')
    track.add_argument('--seed', type=int, default=SEQUENCE_SEED, help='clip series')
    track.add_argument('--kinds', default=','.join(CLIP_KINDS),
                       help=f'clip kinds, taken in turn (default {",".join(CLIP_KINDS)})')
    track.add_argument('--init', choices=('method', 'truth'), default='method',
                       help='start from the method\'s answer on frame 0, or from the true mask')
    track.add_argument('--out', default='', help='write summary.json and frames.jsonl here')
    add_config_arguments(track, config_help='YAML config file (default: '
                         'config/demo_scenes.yaml, as hybridgl demo)')
    track.set_defaults(func=run_eval_track)
