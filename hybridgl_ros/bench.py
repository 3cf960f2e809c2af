"""``hybridgl bench``: per-stage latency and peak memory of a first and a repeat query.

Full-size architectures (SAM vit_b / vit_h, CLIP ViT-B/16) with randomly initialised weights:
they cost the same as the real ones, so nothing needs downloading. Random SAM weights predict
meaningless quality scores, so the bench sets SAM's two quality thresholds to 0 (every mask
reaches NMS) and reports how many masks that gave: the CLIP cost grows with that number.
"""
from __future__ import annotations

import argparse
import json
import os
import threading
import time
from dataclasses import replace

import numpy as np

PAGE = os.sysconf('SC_PAGE_SIZE')


class PeakMemory:
    """Samples resident memory (CPU) or reads the allocator peak (CUDA) over a block."""

    def __init__(self, device, interval_s: float = 0.005) -> None:
        self.device = device
        self.interval_s = interval_s
        self.peak_mb = 0.0

    def __enter__(self) -> 'PeakMemory':
        import torch

        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return self
        self._stop = threading.Event()
        self.peak_mb = rss_mb()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak_mb = max(self.peak_mb, rss_mb())

    def __exit__(self, *exc) -> None:
        import torch

        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            self.peak_mb = torch.cuda.max_memory_allocated(self.device) / 2**20
            return
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, rss_mb())


def rss_mb() -> float:
    """Resident set size of this process in MiB."""
    with open('/proc/self/statm') as statm:
        return int(statm.read().split()[1]) * PAGE / 2**20


def bench_image(height: int = 480, width: int = 640, seed: int = 0) -> np.ndarray:
    """A seeded table-top-like picture: textured background and a few coloured shapes."""
    import cv2

    rng = np.random.default_rng(seed)
    image = (rng.normal(120, 12, (height, width, 3))).clip(0, 255).astype(np.uint8)
    for _ in range(6):
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        centre = (int(rng.integers(60, width - 60)), int(rng.integers(60, height - 60)))
        if rng.random() < 0.5:
            cv2.circle(image, centre, int(rng.integers(20, 60)), colour, -1)
        else:
            half = int(rng.integers(20, 60))
            cv2.rectangle(image, (centre[0] - half, centre[1] - half),
                          (centre[0] + half, centre[1] + half), colour, -1)
    return image


class ToppedUpProposer:
    """SAM's real proposals, topped up with rectangle masks to a fixed count."""

    def __init__(self, proposer, count: int) -> None:
        self.proposer = proposer
        self.count = count
        self.sam_count = 0

    def propose(self, image_rgb: np.ndarray):
        from hybridgl_ros.core.types import Proposals

        found = self.proposer.propose(image_rgb)
        self.sam_count = len(found)
        extra = max(0, self.count - len(found))
        height, width = image_rgb.shape[:2]
        masks = np.zeros((extra, height, width), bool)
        boxes = np.zeros((extra, 4), np.int64)
        rng = np.random.default_rng(1)
        for i in range(extra):
            w, h = int(rng.integers(40, width // 2)), int(rng.integers(40, height // 2))
            x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
            masks[i, y:y + h, x:x + w] = True
            boxes[i] = (x, y, w, h)
        return Proposals(np.concatenate([found.masks, masks]),
                         np.concatenate([found.boxes_xywh, boxes]),
                         np.concatenate([found.scores, np.ones(extra, np.float32)]))


def run_bench(sam_type: str, device_name: str = 'auto', threads: int = 0,
              masks: int = 30, track_frames: int = 0) -> dict:
    """Benchmarks one SAM size with CLIP ViT-B/16 (``demo``: the embedded demo models, real
    weights, the demo settings); returns a JSON-ready record. ``track_frames`` > 0 adds the
    tracker's per-frame cost over that many frames (``record['track']``)."""
    import torch

    from hybridgl_ros.core.config import HybridGLConfig
    from hybridgl_ros.core.models import autocast_dtype, build_clip, build_sam, resolve_device
    from hybridgl_ros.core.pipeline import HybridGL
    from hybridgl_ros.core.proposals import SamProposer

    if threads > 0:
        torch.set_num_threads(threads)
    config = HybridGLConfig.from_flat({'models.device': device_name})
    device = resolve_device(config.models.device)
    start = time.perf_counter()
    torch.manual_seed(0)
    if sam_type == 'demo':
        config, clip_model, sam = _demo_models(device_name)
        proposals, masks = config.proposals, 0        # the real proposals, as many as they are
    else:
        clip_model = build_clip('ViT-B-16')[0].to(device).eval()
        sam = build_sam(sam_type).to(device).eval()
        proposals = replace(config.proposals, pred_iou_thresh=0.0, stability_score_thresh=0.0)
    dtype = autocast_dtype(config.models.precision, device, config.reference)
    proposer = ToppedUpProposer(SamProposer(sam, proposals, dtype), masks)
    segmenter = HybridGL(config, clip_model=clip_model, proposer=proposer)
    segmenter.parser.parse('warm up the parser')
    load_s = time.perf_counter() - start
    image = bench_image()
    with PeakMemory(device) as first_mem:
        first_start = time.perf_counter()
        frame = segmenter.prepare(image)
        first = segmenter.query(frame, 'the red ball left of the blue box')
        first_ms = (time.perf_counter() - first_start) * 1000
    with PeakMemory(device) as repeat_mem:
        repeat_start = time.perf_counter()
        repeat = segmenter.query(frame, 'the bigger green cube on the right')
        repeat_ms = (time.perf_counter() - repeat_start) * 1000
    return {
        'sam': sam_type, 'clip': 'demo' if sam_type == 'demo' else 'ViT-B-16',
        'device': str(device),
        'device_name': _device_name(device), 'torch_threads': torch.get_num_threads(),
        'image': list(image.shape), 'masks': len(frame.proposals),
        'masks_from_sam': proposer.sam_count, 'load_s': round(load_s, 2),
        'first_query': {'total_ms': round(first_ms, 1), 'peak_mb': round(first_mem.peak_mb, 1),
                        'stages_ms': _rounded({**{f'frame.{k}': v for k, v in
                                                  frame.timings_ms.items()},
                                               **first.timings_ms})},
        'repeat_query': {'total_ms': round(repeat_ms, 1),
                         'peak_mb': round(repeat_mem.peak_mb, 1),
                         'stages_ms': _rounded(repeat.timings_ms)},
        'repeat_over_first': round(repeat_ms / first_ms, 4),
        **({'track': run_track_bench(segmenter, sam, track_frames)} if track_frames else {})}


def _demo_models(device_name: str):
    """(the demo config, CLIP, SAM): the embedded demo models with their real weights."""
    from hybridgl_ros.core.config import HybridGLConfig
    from hybridgl_ros.core.models import load_clip, load_sam, resolve_device
    from hybridgl_ros.demo import demo_config

    config = HybridGLConfig.from_flat({'models.device': device_name}, demo_config())
    device = resolve_device(config.models.device)
    return config, load_clip(config.models, device), load_sam(config.models, device)


def bench_clip(frames: int, height: int = 480, width: int = 640, seed: int = 0):
    """(frames, first mask): a disc sliding 5 px per frame across a table that pans 3 px per
    frame; (H, W, 3) uint8 pictures and the disc's (H, W) bool mask on the first."""
    import cv2

    rng = np.random.default_rng(seed)
    table = cv2.GaussianBlur(rng.normal(130, 25, (height, width + 3 * frames, 3)), (0, 0), 2)
    images, first = [], None
    for t in range(frames):
        image = np.ascontiguousarray(table[:, 3 * t:3 * t + width].clip(0, 255).astype(np.uint8))
        centre = (200 + 5 * t, height // 2)
        cv2.circle(image, centre, 50, (200, 40, 40), -1)
        cv2.circle(image, (centre[0] - 15, centre[1] - 15), 18, (235, 120, 120), -1)
        if first is None:
            first = np.zeros((height, width), np.uint8)
            cv2.circle(first, centre, 50, 1, -1)
        images.append(image)
    return images, first.astype(bool)


def run_track_bench(segmenter, sam, frames: int) -> dict:
    """The tracker's cost per frame (motion, SAM, appearance check) on ``bench_clip``, at
    640x480. The track never ends here (``lost_after`` set out of reach), so random SAM weights
    cost what real ones do; ``statuses`` says what the tracker made of the frames."""
    from collections import Counter

    from hybridgl_ros.core.tracking import Tracker
    from hybridgl_ros.core.types import ParsedExpression, Segmentation

    config = replace(segmenter.config.tracking, lost_after=10 ** 9)
    tracker = Tracker(sam, config, segmenter.encoder, segmenter.autocast_dtype)
    images, mask = bench_clip(frames + 1)
    choice = replace(Segmentation.not_found('the red disc', ParsedExpression('', ''),
                                            mask.shape, 0, ''), found=True, mask=mask)
    tracker.start(images[0], choice)
    totals, stages, statuses = [], {}, Counter()
    with PeakMemory(tracker.predictor.device) as memory:
        for image in images[1:]:
            update = tracker.update(image)
            statuses[update.status] += 1
            totals.append(update.timings_ms['total'])
            for name in ('motion', 'sam', 'appearance'):
                stages.setdefault(name, []).append(update.timings_ms.get(name, 0.0))
    mean = float(np.mean(totals))
    return {'frames': frames, 'ms_mean': round(mean, 1),
            'ms_p90': round(float(np.percentile(totals, 90)), 1),
            'rate_hz': round(1000.0 / mean, 2), 'peak_mb': round(memory.peak_mb, 1),
            'stages_ms': {k: round(float(np.mean(v)), 1) for k, v in stages.items()},
            'statuses': dict(statuses)}


def _rounded(values: dict) -> dict:
    return {k: round(v, 1) for k, v in values.items()}


def _device_name(device) -> str:
    import platform

    import torch

    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return f'{platform.processor() or platform.machine()}, {os.cpu_count()} cores'


def format_table(records: list[dict]) -> str:
    """A Markdown table of bench records."""
    memory = 'peak GPU MiB' if records and records[0]['device'].startswith('cuda') \
        else 'peak RSS MiB'
    lines = [f'| SAM | device | masks | query | total ms | proposals | features | gem | '
             f'text+guidance | {memory} |',
             '|---|---|---|---|---|---|---|---|---|---|']
    for r in records:
        for kind in ('first_query', 'repeat_query'):
            q = r[kind]
            stages = q['stages_ms']
            per_query = sum(stages.get(k, 0.0) for k in ('parse', 'text', 'scoring'))
            lines.append(
                f"| {r['sam']} | {r['device_name']} | {r['masks']} | "
                f"{kind.replace('_query', '')} | {q['total_ms']:.0f} | "
                f"{stages.get('frame.proposals', 0):.0f} | "
                f"{stages.get('frame.features', 0):.0f} | {stages.get('frame.gem', 0):.0f} | "
                f"{per_query:.0f} | {q['peak_mb']:.0f} |")
    return '\n'.join(lines)


def format_track_table(records: list[dict]) -> str:
    """A Markdown table of the tracking rows (one per record that has one)."""
    lines = ['| SAM | CLIP | device | tracked frames | ms per frame (mean / p90) | frames/s | '
             'motion | SAM | appearance | peak MiB |', '|---|---|---|---|---|---|---|---|---|---|']
    for r in records:
        if 'track' in r:
            t, st = r['track'], r['track']['stages_ms']
            lines.append(f"| {r['sam']} | {r['clip']} | {r['device_name']} | {t['frames']} | "
                         f"{t['ms_mean']:.0f} / {t['ms_p90']:.0f} | {t['rate_hz']:.1f} | "
                         f"{st['motion']:.0f} | {st['sam']:.0f} | {st['appearance']:.0f} | "
                         f"{t['peak_mb']:.0f} |")
    return '\n'.join(lines)


def cmd_bench(args: argparse.Namespace) -> int:
    records = [run_bench(sam.strip(), args.device, args.threads, args.masks, args.track_frames)
               for sam in args.sam.split(',')]
    if args.json:
        print(json.dumps(records, indent=2))
    else:
        print(format_table(records))
        if args.track_frames > 0:
            print('\ntracking (640x480, per frame after the first answer):')
            print(format_track_table(records))
        for r in records:
            print(f"{r['sam']}: {r['masks_from_sam']} of the {r['masks']} masks from SAM; "
                  f"repeat query / first query = {r['repeat_over_first']:.4f}; "
                  f"load {r['load_s']} s; torch threads {r['torch_threads']}")
    return 0


def register(subparsers) -> None:
    bench = subparsers.add_parser(
        'bench', help='latency and peak memory of a first and a repeat query')
    bench.add_argument('--sam', default='vit_b,vit_h', help='SAM sizes, comma-separated; '
                       'demo = the embedded demo models (real weights)')
    bench.add_argument('--device', default='auto', choices=('auto', 'cpu', 'cuda'))
    bench.add_argument('--threads', type=int, default=0, help='torch CPU threads (0: default)')
    bench.add_argument('--masks', type=int, default=30,
                       help='masks the CLIP stage encodes (SAM\'s, topped up with rectangles)')
    bench.add_argument('--track-frames', type=int, default=30,
                       help='frames the tracker follows for the tracking row (0: none)')
    bench.add_argument('--json', action='store_true', help='print JSON instead of a table')
    bench.set_defaults(func=cmd_bench)
