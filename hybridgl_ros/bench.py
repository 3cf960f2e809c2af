"""``hybridgl bench``: per-stage latency and peak memory of a first and a repeat query.

Full-size architectures (SAM vit_b / vit_h, CLIP ViT-B/16) with randomly initialised weights:
they cost the same as the real ones, so nothing needs downloading. Random SAM weights predict
meaningless quality scores, so the bench sets SAM's two quality thresholds to 0 (every mask
reaches NMS) and reports how many masks that gave: the CLIP cost grows with that number.

Each (SAM, image size) row runs in a fresh process, so that its peak memory over idle (the
resident set once the models are loaded) is not flattered or spoiled by an earlier row.
"""
from __future__ import annotations

import argparse
import json
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from multiprocessing import get_context

import numpy as np

from hybridgl_ros.cli import non_negative_int, positive_int
from hybridgl_ros.core.errors import HybridGLError

PAGE = os.sysconf('SC_PAGE_SIZE')
DEFAULT_SIZES = '640x480,1920x1080'
#: The per-query stages of the timings (matching and guidance: before scoring.py).
_QUERY_STAGES = ('parse', 'text', 'scoring', 'matching', 'guidance')


class PeakMemory:
    """Samples resident memory (CPU) or reads the allocator peak (CUDA) over a block.

    ``idle_mb`` is the reading at entry (resident set, or CUDA memory allocated), ``peak_mb``
    the highest reading within the block.
    """

    def __init__(self, device, interval_s: float = 0.005) -> None:
        self.device = device
        self.interval_s = interval_s
        self.idle_mb = 0.0
        self.peak_mb = 0.0

    def __enter__(self) -> 'PeakMemory':
        import torch

        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.idle_mb = torch.cuda.memory_allocated(self.device) / 2**20
            return self
        self._stop = threading.Event()
        self.idle_mb = self.peak_mb = rss_mb()
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


class ModuleClock:
    """Adds up the wall time spent in a module's forward (hooks; GPU work synchronised)."""

    def __init__(self, module, device) -> None:
        self.device = device
        self.seconds = 0.0
        self._start = 0.0
        self._handles = [module.register_forward_pre_hook(self._before),
                         module.register_forward_hook(self._after)]

    def _sync(self) -> None:
        if self.device.type == 'cuda':
            import torch

            torch.cuda.synchronize(self.device)

    def _before(self, *_) -> None:
        self._sync()
        self._start = time.perf_counter()

    def _after(self, *_) -> None:
        self._sync()
        self.seconds += time.perf_counter() - self._start

    def take_ms(self) -> float:
        """Milliseconds since the last call."""
        ms, self.seconds = self.seconds * 1000.0, 0.0
        return ms


def bench_image(height: int = 480, width: int = 640, seed: int = 0) -> np.ndarray:
    """A seeded table-top-like picture: textured background and a few coloured shapes."""
    import cv2

    rng = np.random.default_rng(seed)
    scale = min(height, width) / 480
    margin = int(60 * scale)
    image = (rng.normal(120, 12, (height, width, 3))).clip(0, 255).astype(np.uint8)
    for _ in range(6):
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        centre = (int(rng.integers(margin, width - margin)),
                  int(rng.integers(margin, height - margin)))
        half = int(rng.integers(20, 60) * scale)
        if rng.random() < 0.5:
            cv2.circle(image, centre, half, colour, -1)
        else:
            cv2.rectangle(image, (centre[0] - half, centre[1] - half),
                          (centre[0] + half, centre[1] + half), colour, -1)
    return image


class ToppedUpProposer:
    """SAM's real proposals, topped up with rectangle masks to a fixed count.

    With ``drop_split`` (the default mode's ``proposals.drop_split_masks``) SAM's masks in
    pieces are dropped before the top-up, so that the CLIP stage still encodes ``count``
    masks; the pipeline's own drop then counts the pieces again and finds none."""

    def __init__(self, proposer, count: int, drop_split: bool = False) -> None:
        self.proposer = proposer
        self.count = count
        self.drop_split = drop_split
        self.sam_count = 0

    @property
    def takes_hole_area(self) -> bool:
        return getattr(self.proposer, 'takes_hole_area', False)

    def propose(self, image_rgb: np.ndarray, **told):
        found = self.proposer.propose(image_rgb, **told)
        if self.drop_split:
            from hybridgl_ros.core.proposals import drop_split_masks

            found = drop_split_masks(found)
        self.sam_count = len(found)
        extra = max(0, self.count - len(found))
        height, width = found.masks.shape[1:]
        masks = np.zeros((extra, height, width), bool)
        boxes = np.zeros((extra, 4), np.int64)
        rng = np.random.default_rng(1)
        for i in range(extra):
            w, h = int(rng.integers(width // 16, width // 2)), \
                int(rng.integers(height // 12, height // 2))
            x, y = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
            masks[i, y:y + h, x:x + w] = True
            boxes[i] = (x, y, w - 1, h - 1)
        return replace(found, masks=np.concatenate([found.masks, masks]),
                       boxes_xywh=np.concatenate([found.boxes_xywh, boxes]),
                       scores=np.concatenate([found.scores, np.ones(extra, np.float32)]))


def run_bench(sam_type: str, size_hw: tuple[int, int] = (480, 640), device_name: str = 'auto',
              threads: int = 0, masks: int = 30, overrides: dict | None = None,
              track_frames: int = 0) -> dict:
    """Benchmarks one SAM size with CLIP ViT-B/16 on one image size (``demo``: the embedded demo
    models, real weights, the demo settings); returns a JSON-ready record. ``track_frames`` > 0
    adds the tracker's per-frame cost over that many frames (``record['track']``)."""
    import torch

    from hybridgl_ros.core.config import HybridGLConfig
    from hybridgl_ros.core.models import build_clip, build_sam, load_clip, load_sam, resolve_device
    from hybridgl_ros.core.pipeline import HybridGL
    from hybridgl_ros.demo import demo_config

    if threads > 0:
        torch.set_num_threads(threads)
    flat = {'models.device': device_name, **(overrides or {})}
    config = HybridGLConfig.from_flat(flat, demo_config() if sam_type == 'demo' else None)
    device = resolve_device(config.models.device)
    start = time.perf_counter()
    torch.manual_seed(0)
    if sam_type == 'demo':  # the embedded demo models, real weights, their real proposals
        clip_model, sam = load_clip(config.models, device), load_sam(config.models, device)
        masks = 0
    else:
        clip_model = build_clip('ViT-B-16')[0].to(device).eval()
        sam = build_sam(sam_type).to(device).eval()
        config = replace(config, proposals=replace(config.proposals, pred_iou_thresh=0.0,
                                                   stability_score_thresh=0.0))
    segmenter = HybridGL.from_models(config, clip_model, sam)
    proposer = ToppedUpProposer(segmenter.proposer, masks, segmenter.drops_split_masks)
    segmenter.proposer = proposer
    encoder_clock = ModuleClock(sam.image_encoder, device)
    segmenter.parser.parse('warm up the parser')
    load_s = time.perf_counter() - start
    image = bench_image(*size_hw)
    with PeakMemory(device) as first_mem:
        first_start = time.perf_counter()
        frame = segmenter.prepare(image)
        first = segmenter.query(frame, 'the red ball left of the blue box')
        first_ms = (time.perf_counter() - first_start) * 1000
    frame.timings_ms['sam_encoder'] = encoder_clock.take_ms()
    with PeakMemory(device) as repeat_mem:
        repeat_start = time.perf_counter()
        repeat = segmenter.query(frame, 'the bigger green cube on the right')
        repeat_ms = (time.perf_counter() - repeat_start) * 1000
    return {
        'sam': sam_type, 'clip': 'demo' if sam_type == 'demo' else 'ViT-B-16',
        'device': str(device),
        'device_name': _device_name(device), 'torch_threads': torch.get_num_threads(),
        'precision': config.models.precision, 'overrides': overrides or {},
        'image': list(image.shape),
        'working_size': list(getattr(frame, 'working_size', image.shape[:2])),
        'masks': len(frame.proposals), 'masks_from_sam': proposer.sam_count,
        'load_s': round(load_s, 2),
        'first_query': _query_record(first_ms, first_mem, {
            **{f'frame.{k}': v for k, v in frame.timings_ms.items()}, **first.timings_ms}),
        'repeat_query': _query_record(repeat_ms, repeat_mem, repeat.timings_ms),
        'repeat_over_first': round(repeat_ms / first_ms, 4),
        **({'track': run_track_bench(segmenter, sam, track_frames)} if track_frames else {})}


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


def _query_record(total_ms: float, memory: PeakMemory, stages_ms: dict) -> dict:
    return {'total_ms': round(total_ms, 1), 'peak_mb': round(memory.peak_mb, 1),
            'idle_mb': round(memory.idle_mb, 1),
            'peak_over_idle_mb': round(memory.peak_mb - memory.idle_mb, 1),
            'stages_ms': {k: round(v, 1) for k, v in stages_ms.items()}}


def _device_name(device) -> str:
    import platform

    import torch

    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return f'{platform.processor() or platform.machine()}, {os.cpu_count()} cores'


def run_rows(sam_types: list[str], sizes_hw: list[tuple[int, int]], device_name: str,
             threads: int, masks: int, overrides: dict, track_frames: int = 0) -> list[dict]:
    """One record per (SAM, size), each measured in a fresh process; the tracking row (if
    ``track_frames``) on the 640x480 rows only."""
    records = []
    for sam_type in sam_types:
        for size in sizes_hw:
            with ProcessPoolExecutor(1, mp_context=get_context('spawn')) as pool:
                frames = track_frames if size == (480, 640) else 0
                records.append(pool.submit(run_bench, sam_type, size, device_name, threads,
                                           masks, overrides, frames).result())
    return records


def format_table(records: list[dict]) -> str:
    """A Markdown table of bench records: seconds per stage, MiB of memory."""
    memory = 'GPU MiB' if records and records[0]['device'].startswith('cuda') else 'RSS MiB'
    lines = [f'| SAM | image | query | total s | SAM encoder | SAM masks | features | GEM | '
             f'per query | peak {memory} | over idle |',
             '|---|---|---|---|---|---|---|---|---|---|---|']
    for r in records:
        height, width = r['image'][:2]
        for kind in ('first_query', 'repeat_query'):
            q = r[kind]
            stages = q['stages_ms']
            encoder = stages.get('frame.sam_encoder', 0.0)
            proposals = stages.get('frame.proposals', 0.0)
            per_query = sum(stages.get(k, 0.0) for k in _QUERY_STAGES)
            cells = [_s(encoder), _s(proposals - encoder), _s(stages.get('frame.features', 0)),
                     _s(stages.get('frame.gem', 0))] if kind == 'first_query' else ['–'] * 4
            lines.append(
                f"| {r['sam']} | {width}x{height} | {kind.replace('_query', '')} | "
                f"{_s(q['total_ms'])} | {' | '.join(cells)} | {_s(per_query)} | "
                f"{q['peak_mb']:.0f} | {q['peak_over_idle_mb']:.0f} |")
    return '\n'.join(lines)


def format_comparison(before: list[dict], after: list[dict]) -> str:
    """A Markdown table of two bench runs row by row: seconds and peak MiB over idle, before →
    after, for the (SAM, image size) rows both have."""
    lines = ['| SAM | image | query | total s | SAM encoder | SAM masks | features | GEM | '
             'per query | peak over idle MiB |', '|---|---|---|---|---|---|---|---|---|---|']
    earlier = {(r['sam'], tuple(r['image'][:2])): r for r in before}
    for r in after:
        old = earlier.get((r['sam'], tuple(r['image'][:2])))
        if old is None:
            continue
        height, width = r['image'][:2]
        for kind in ('first_query', 'repeat_query'):
            pairs = [(_stage_seconds(old[kind], name), _stage_seconds(r[kind], name))
                     for name in ('total', 'encoder', 'masks', 'features', 'gem', 'query')]
            if kind == 'repeat_query':
                pairs[1:5] = [None] * 4
            cells = ['–' if p is None else f'{_s(p[0] * 1000)} → {_s(p[1] * 1000)}'
                     for p in pairs]
            memory = f"{old[kind]['peak_over_idle_mb']:.0f} → {r[kind]['peak_over_idle_mb']:.0f}"
            lines.append(f"| {r['sam']} | {width}x{height} | {kind.replace('_query', '')} | "
                         f"{' | '.join(cells)} | {memory} |")
    return '\n'.join(lines)


def _stage_seconds(query: dict, name: str) -> float:
    """Seconds of one column of the tables from a query record."""
    stages = query['stages_ms']
    encoder = stages.get('frame.sam_encoder', 0.0)
    ms = {'total': query['total_ms'], 'encoder': encoder,
          'masks': stages.get('frame.proposals', 0.0) - encoder,
          'features': stages.get('frame.features', 0.0), 'gem': stages.get('frame.gem', 0.0),
          'query': sum(stages.get(k, 0.0) for k in _QUERY_STAGES)}[name]
    return ms / 1000.0


def _s(ms: float) -> str:
    """Milliseconds as seconds with 2 significant-ish digits."""
    seconds = ms / 1000.0
    return f'{seconds:.2f}' if seconds < 10 else f'{seconds:.1f}'


def parse_size(text: str) -> tuple[int, int]:
    """'WIDTHxHEIGHT' -> (height, width); HybridGLError unless both are whole numbers >= 16."""
    width, _, height = text.lower().partition('x')
    try:
        size = int(height), int(width)
    except ValueError:
        raise HybridGLError(f'--sizes: {text!r} is not WIDTHxHEIGHT, e.g. 640x480') from None
    if min(size) < 16:
        raise HybridGLError(f'--sizes: {text!r} has a side below 16 pixels')
    return size


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
    from hybridgl_ros.cli import _parse_value

    overrides = {}
    for item in args.set:
        name, _, value = item.partition('=')
        overrides[name.strip()] = _parse_value(value.strip())
    records = run_rows([s.strip() for s in args.sam.split(',')],
                       [parse_size(s) for s in args.sizes.split(',')], args.device,
                       args.threads, args.masks, overrides, args.track_frames)
    if args.json:
        print(json.dumps(records, indent=2))
        return 0
    print(format_table(records))
    if args.track_frames > 0:
        print('\ntracking (640x480, per frame after the first answer):')
        print(format_track_table(records))
    if args.compare:
        with open(args.compare) as stream:
            print(f'\nagainst {args.compare}:\n' + format_comparison(json.load(stream), records))
    for r in records:
        print(f"{r['sam']} {r['image'][1]}x{r['image'][0]} (method at "
              f"{r['working_size'][1]}x{r['working_size'][0]}, precision {r['precision']}): "
              f"{r['masks_from_sam']} of the {r['masks']} masks from SAM; repeat / first = "
              f"{r['repeat_over_first']:.4f}; load {r['load_s']} s; idle RSS "
              f"{r['first_query']['idle_mb']:.0f} MiB; torch threads {r['torch_threads']}")
    return 0


def register(subparsers) -> None:
    bench = subparsers.add_parser(
        'bench', help='latency and peak memory of a first and a repeat query')
    bench.add_argument('--sam', default='vit_b,vit_h', help='SAM sizes, comma-separated; '
                       'demo = the embedded demo models (real weights)')
    bench.add_argument('--sizes', default=DEFAULT_SIZES,
                       help='image sizes WIDTHxHEIGHT, comma-separated')
    bench.add_argument('--device', default='auto', choices=('auto', 'cpu', 'cuda'))
    bench.add_argument('--threads', type=non_negative_int, default=0,
                       help='torch CPU threads (0: default)')
    bench.add_argument('--masks', type=positive_int, default=30,
                       help='masks the CLIP stage encodes (SAM\'s, topped up with rectangles)')
    bench.add_argument('--set', action='append', default=[], metavar='FIELD=VALUE',
                       help='a config field for every row, e.g. --set models.precision=fp32')
    bench.add_argument('--track-frames', type=non_negative_int, default=30,
                       help='frames the tracker follows for the tracking row at 640x480 '
                       '(0: none)')
    bench.add_argument('--json', action='store_true', help='print JSON instead of a table')
    bench.add_argument('--compare', metavar='JSON',
                       help='also print this run against an earlier one (its --json output)')
    bench.set_defaults(func=cmd_bench)
