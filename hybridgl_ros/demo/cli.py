"""Sub-commands of ``hybridgl`` for the demo data and models: ``make-scenes`` (scenes, or clips
with ``--sequence``), ``train-demo-models``. ``register(subparsers)`` adds them to the main
parser; each sets ``func(args) -> int`` (the exit status)."""
from __future__ import annotations

import argparse
import json
import logging

from hybridgl_ros.cli import non_negative_int, positive_int

LOGGER = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    """Adds the demo sub-commands to ``hybridgl``'s sub-parsers."""
    scenes = subparsers.add_parser(
        'make-scenes', help='generate synthetic referring scenes in the RefCOCO and gRefCOCO '
                            'layouts')
    scenes.add_argument('--out', required=True, help='output folder')
    scenes.add_argument('--count', type=positive_int, default=50, help='number of scenes')
    scenes.add_argument('--seed', type=int, default=0, help='series seed')
    scenes.add_argument('--style', default='shaded',
                        help='rendering style: shaded, flat, varied (every rendering choice '
                             'drawn anew per scene), tabletop (varied, on a table seen at an '
                             'angle in front of a wall), outlined (varied, every object '
                             'outlined), poster or isometric (poster, outlined and isometric are '
                             'held out from the demo models\' training and from tuning any '
                             'setting)')
    scenes.add_argument('--object-scale', type=float, default=1.0,
                        help='every object\'s size times this, 0.2-2 (another camera distance '
                             'or renderer; the demo models trained on 0.55-1.3)')
    scenes.add_argument('--any-angle', action='store_true',
                        help='every object turned by an angle from the whole circle (objects '
                             'lying any way round; the series\' own angles are within ±18°)')
    scenes.add_argument('--split', default='',
                        help='put every image in this split (default: 7 train, 1 val, '
                             '1 testA, 1 testB of 10)')
    scenes.add_argument('--sequence', action='store_true',
                        help='write clips for tracking instead (moving camera and objects, '
                        'true masks per frame; see hybridgl_ros/demo/clip_files.py)')
    scenes.add_argument('--frames', type=positive_int, default=40,
                        help='frames per clip (--sequence)')
    scenes.set_defaults(func=make_scenes_command)

    train = subparsers.add_parser(
        'train-demo-models', help='train the tiny demo CLIP and SAM on generated scenes (CPU)')
    train.add_argument('--out', required=True,
                       help='output folder (the shipped models are never overwritten: copy the '
                            'files into hybridgl_ros/demo_models to ship them)')
    train.add_argument('--only', choices=('clip', 'sam'), default=None,
                       help='train only this model')
    train.add_argument('--steps', type=non_negative_int, default=0,
                       help='optimiser steps per model and per stage (0 = the '
                            'recipe\'s default)')
    train.add_argument('--seed', type=int, default=0, help='training seed')
    train.add_argument('--clip-from', default='',
                       help='run only the CLIP\'s later (fine-tuning) stages, second to '
                            'ninth, from these weights (e.g. the first stage\'s clip.pt)')
    train.add_argument('--sam-from', default='',
                       help='run only the SAM\'s later (fine-tuning) stages, second to '
                            'fifth, from these weights (e.g. the first stage\'s sam.pth)')
    train.add_argument('--smoke', action='store_true',
                       help='a few tiny steps with small batches (for CI)')
    train.set_defaults(func=train_command)


def make_scenes_command(args: argparse.Namespace) -> int:
    """Writes ``args.count`` scenes (or clips, ``--sequence``) of seed ``args.seed``."""
    from hybridgl_ros.core.errors import HybridGLError

    if args.sequence:
        from hybridgl_ros.demo.clip_files import write_clips
        from hybridgl_ros.demo.sequences import min_frames

        if args.frames < min_frames():
            raise HybridGLError(f'--frames must be at least {min_frames()} (a clip that leaves '
                                f'the view needs them), not {args.frames}')

        print(json.dumps(write_clips(args.out, args.count, args.seed, args.frames)))
        return 0
    from hybridgl_ros.demo.refcoco_layout import write_dataset
    from hybridgl_ros.demo.scenes import STYLES

    if args.style not in STYLES:
        raise HybridGLError(f'--style must be one of {", ".join(STYLES)}, not {args.style!r}')
    if not 0.2 <= args.object_scale <= 2.0:
        raise HybridGLError(f'--object-scale must be within 0.2-2, not {args.object_scale}')
    summary = write_dataset(args.out, args.count, args.seed, style=args.style,
                            split=args.split, object_scale=args.object_scale,
                            any_angle=args.any_angle)
    print(json.dumps(summary))
    return 0


def train_command(args: argparse.Namespace) -> int:
    """Trains the demo models; writes the weights and a metrics JSON per model."""
    from pathlib import Path

    out = Path(args.out)
    results = {}
    if args.only in (None, 'clip'):
        from hybridgl_ros.demo.train_clip import train_demo_clip

        results['clip'] = train_demo_clip(out, args.steps, args.seed, args.smoke,
                                          args.clip_from)
    if args.only in (None, 'sam'):
        from hybridgl_ros.demo.train_sam import train_demo_sam

        results['sam'] = train_demo_sam(out, args.steps, args.seed, args.smoke, args.sam_from)
    print(json.dumps(results, indent=1))
    return 0
