"""``hybridgl demo``: held-out synthetic scenes through the ROS node over real DDS.

Starts ``hybridgl_node`` (embedded demo models unless others are configured) and, per scene,
``hybridgl_image_publisher`` playing that scene as the camera; a service client asks each
expression on the latest frame, prints the chosen object and its IoU with the referred one, and
writes overlay PNGs and a contact sheet; then a ``~/track`` goal follows the referred object
through a generated clip (``track.gif``, see :mod:`hybridgl_ros.demo.track_demo`). Without
``--config`` it runs with ``config/demo_scenes.yaml`` (the defaults with the vertical position
ramps on, and no box prompts for the demo SAM). Everything stays on this machine: DDS discovery
on localhost and the shipped loopback-only Fast DDS profile. ``--no-ros`` runs the same scenes
and clip through the library directly.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import numpy as np

from hybridgl_ros.core.errors import HybridGLError

LOG = logging.getLogger(__name__)
#: Scene series of the demo: never used in training (see hybridgl_ros/demo/train_*.py).
DEMO_SEED = 5001


def demo_queries(scene, seed: int, index: int, per_scene: int) -> list[tuple[str, str, int]]:
    """(kind, sentence, target object) of a scene: the first sentence of each referring
    expression, kinds interleaved, at most ``per_scene``."""
    from hybridgl_ros.demo.expressions import scene_expressions

    refs = scene_expressions(scene.objects, seed, index)
    by_kind: dict[str, list] = {}
    for ref in refs:
        by_kind.setdefault(ref.kind, []).append(ref)
    queries = []
    while len(queries) < per_scene and any(by_kind.values()):
        for kind in list(by_kind):
            if by_kind[kind] and len(queries) < per_scene:
                ref = by_kind[kind].pop(0)
                queries.append((ref.kind, ref.sentences[0], ref.target))
    return queries


class LibraryAsker:
    """Answers through the library directly (``--no-ros``)."""

    def __init__(self, config) -> None:
        from hybridgl_ros.core.pipeline import HybridGL

        self.segmenter = HybridGL.from_config(config)
        self.frame = None

    def __enter__(self) -> 'LibraryAsker':
        return self

    def __exit__(self, *exc) -> None:
        self.frame = None

    def show(self, image_path: Path, image_rgb: np.ndarray) -> None:
        self.frame = self.segmenter.prepare(image_rgb)

    def ask(self, text: str):
        return self.segmenter.query(self.frame, text)


def run_demo(args: argparse.Namespace) -> int:
    from hybridgl_ros.cli import config_from_args, write_image_rgb
    from hybridgl_ros.demo import demo_config
    from hybridgl_ros.demo.end_to_end import mask_iou
    from hybridgl_ros.demo.scenes import make_scene
    from hybridgl_ros.viz import contact_sheet, draw_overlay

    config = config_from_args(args, default=demo_config())
    out = Path(args.out)
    (out / 'scenes').mkdir(parents=True, exist_ok=True)
    scenes = [make_scene(args.seed, i) for i in range(args.count)]
    paths = []
    for i, scene in enumerate(scenes):
        paths.append(out / 'scenes' / f'scene_{i:03d}.png')
        write_image_rgb(paths[-1], scene.image_rgb)
    if args.no_ros:
        asker = LibraryAsker(config)
    else:
        from hybridgl_ros.demo.ros_asker import RosAsker

        asker = RosAsker(config, timeout_s=args.timeout)
    rows, overlays = [], []
    with asker:
        for i, (scene, path) in enumerate(zip(scenes, paths)):
            asker.show(path, scene.image_rgb)
            for kind, text, target in demo_queries(scene, args.seed, i, args.per_scene):
                result = asker.ask(text)
                iou = mask_iou(result.mask, scene.masks[target]) if result.found else 0.0
                rows.append((kind, iou))
                mark = 'ok ' if iou >= 0.5 else 'MISS'
                print(f'scene {i:02d}  {kind:9s}  {text!r:44s} -> {mark} IoU {iou:.2f}  '
                      f'box {list(result.box_xywh)}  {result.timings_ms.get("total", 0):.0f} ms',
                      flush=True)
                overlay = draw_overlay(scene.image_rgb, result,
                                       label=f'{text}  IoU {iou:.2f}')
                overlays.append(overlay)
                write_image_rgb(out / 'overlays' / f'scene_{i:03d}_{len(overlays):03d}.png',
                                overlay)
        if args.track_frames > 0:
            from hybridgl_ros.demo.track_demo import run_track_demo

            tracked = run_track_demo(asker, out, args.track_frames)
    write_image_rgb(out / 'contact_sheet.png', contact_sheet(overlays, columns=4))
    print(summary(rows))
    print(f'overlays in {out / "overlays"}, contact sheet {out / "contact_sheet.png"}')
    if args.track_frames > 0:
        print(f'tracked {tracked["text"]!r} over a {args.track_frames}-frame clip: '
              f'{tracked["summary"]}; animation {out / "track.gif"}, strip '
              f'{out / "track_strip.png"}')
    return 0


def summary(rows: list[tuple[str, float]]) -> str:
    """Per-kind accuracy (IoU >= 0.5) lines."""
    lines = []
    for kind in sorted({k for k, _ in rows}):
        hits = [iou >= 0.5 for k, iou in rows if k == kind]
        lines.append(f'{kind:9s} {sum(hits)}/{len(hits)} correct')
    total = [iou >= 0.5 for _, iou in rows]
    lines.append(f'all       {sum(total)}/{len(total)} correct (IoU >= 0.5)')
    return '\n'.join(lines)


def register(subparsers) -> None:
    from hybridgl_ros.cli import add_config_arguments, non_negative_int, positive_int

    demo = subparsers.add_parser(
        'demo', help='held-out synthetic scenes through the ROS node: overlays + contact sheet')
    demo.add_argument('--out', default='demo_out', help='output folder (default demo_out)')
    demo.add_argument('--count', type=positive_int, default=6, help='scenes (default 6)')
    demo.add_argument('--per-scene', type=positive_int, default=4, help='expressions per scene')
    demo.add_argument('--seed', type=int, default=DEMO_SEED, help='scene series')
    demo.add_argument('--timeout', type=float, default=180.0,
                      help='seconds to wait for the node to load its models')
    demo.add_argument('--no-ros', action='store_true', help='call the library directly')
    demo.add_argument('--track-frames', type=non_negative_int, default=40,
                      help='frames of the clip followed by ~/track (0: no tracking part)')
    add_config_arguments(demo, config_help='YAML config file (default: config/demo_scenes.yaml, '
                         'the defaults with the vertical position ramps on)')
    demo.set_defaults(func=_cmd)


def _cmd(args: argparse.Namespace) -> int:
    from hybridgl_ros.ros.node_main import ros_missing

    if not args.no_ros and (missing := ros_missing('hybridgl demo')):
        raise HybridGLError(f'{missing} Or run the demo on the library alone: --no-ros.')
    return run_demo(args)
