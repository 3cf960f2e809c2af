"""The evaluation loop: image-side work once per image, every query on it, one line per query.

``evaluate(settings, config, model_factory)`` plans the queries (``--limit``, then
``--shard``), skips those already in the results file when resuming, and writes the summary
and the Markdown table at the end.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from hybridgl_ros.core.config import HybridGLConfig
from hybridgl_ros.core.errors import ConfigError, InvalidInputError
from hybridgl_ros.eval.cache import CachingProposer, FrameCache, frame_key, image_cache_name
from hybridgl_ros.eval.datasets import ImageItem, Query, ground_truth_rule, load_dataset
from hybridgl_ros.eval.grounding import answer_fields, answer_set, target_masks
from hybridgl_ros.eval.metrics import intersection_union
from hybridgl_ros.eval.records import ResultsFileError, ResultsWriter, read_results
from hybridgl_ros.eval.report import build_summary, render_tables

_LOG = logging.getLogger(__name__)

#: Header fields that must match for --resume to continue a file.
RUN_IDENTITY = ('dataset', 'split', 'limit', 'shard', 'config')


@dataclass(frozen=True)
class EvalSettings:
    """What to evaluate and where to write. ``shard`` is (k, n) with 1 <= k <= n."""

    dataset: str
    split: str
    data_root: Path
    out_dir: Path
    image_dir: Path | None = None
    limit: int | None = None
    shard: tuple[int, int] = (1, 1)
    resume: bool = False
    cache_dir: Path | None = None
    progress: bool = True

    def file(self, stem: str, suffix: str) -> Path:
        """An output path: ``results.jsonl``, or ``results.shard-2-of-4.jsonl`` for a shard."""
        k, n = self.shard
        tag = f'.shard-{k}-of-{n}' if n > 1 else ''
        return self.out_dir / f'{stem}{tag}{suffix}'


@dataclass(frozen=True)
class PlannedImage:
    """An image and its queries with their positions in the whole (unsharded) plan."""

    item: ImageItem
    queries: tuple[tuple[int, Query], ...]


def parse_shard(text: str) -> tuple[int, int]:
    """'K/N' -> (K, N) with 1 <= K <= N."""
    try:
        k, n = (int(v) for v in text.split('/'))
    except ValueError as exc:
        raise ConfigError(f'--shard takes K/N (e.g. 2/4), not {text!r}') from exc
    if not 1 <= k <= n:
        raise ConfigError(f'--shard K/N needs 1 <= K <= N, not {text!r}')
    return k, n


def plan(items: Sequence[ImageItem], limit: int | None,
         shard: tuple[int, int]) -> tuple[list[PlannedImage], int]:
    """The first ``limit`` queries in image order, then every N-th image from the K-th.

    Returns:
        (this shard's images, the number of queries in the whole plan).
    """
    planned, order = [], 0
    for item in items:
        if limit is not None and order >= limit:
            break
        take = item.queries if limit is None else item.queries[:limit - order]
        planned.append(PlannedImage(item, tuple(enumerate(take, start=order))))
        order += len(take)
    k, n = shard
    return planned[k - 1::n], order


def query_record(order: int, item: ImageItem, query: Query, **fields: Any) -> dict:
    """One line of the results file."""
    return {'kind': 'query', 'order': order, 'query_id': query.query_id,
            'image_id': item.image_id, 'ref_id': query.ref_id, 'text': query.text, **fields}


def _json_config(config: HybridGLConfig) -> dict:
    return json.loads(json.dumps(config.to_flat()))


def _previous_records(settings: EvalSettings, header: dict) -> tuple[list[dict], int | None]:
    """Records already in the results file and its good length, or ([], None) if none.

    Raises:
        ResultsFileError: the file exists and --resume is not set, or it belongs to another run.
    """
    path = settings.file('results', '.jsonl')
    if not path.exists():
        return [], None
    if not settings.resume:
        raise ResultsFileError(
            f'{path} exists: pass --resume to continue it, or choose another --out')
    old_header, records, good_bytes = read_results(path)
    for name in RUN_IDENTITY:
        if old_header.get(name) != header[name]:
            raise ResultsFileError(
                f'{path} was written by another run ({name} differs); use another --out')
    _LOG.info('resuming %s: %d queries already done', path, len(records))
    return records, good_bytes


def evaluate(settings: EvalSettings, config: HybridGLConfig,
             model_factory: Callable[[HybridGLConfig], Any]) -> dict:
    """Runs (or resumes) an evaluation; returns the summary also written to ``summary.json``.

    Args:
        settings: dataset, split, output folder and run options.
        config: the method's config (ablation switches already applied).
        model_factory: builds the model (``prepare(image) -> Frame``,
            ``query(frame, text) -> Segmentation``); called only if a query is left to do,
            before the results file is created (a model that fails to load leaves none).
    """
    items = load_dataset(settings.dataset, settings.split, settings.data_root,
                         settings.image_dir)
    images, total = plan(items, settings.limit, settings.shard)
    header = {'dataset': settings.dataset, 'split': settings.split, 'limit': settings.limit,
              'shard': list(settings.shard), 'config': _json_config(config),
              'frame_key': frame_key(config), 'ground_truth': ground_truth_rule(config.parity),
              'planned_total': total,
              'planned_queries': sum(len(p.queries) for p in images),
              'planned_images': len(images)}
    started = time.perf_counter()
    records, good_bytes = _previous_records(settings, header)
    done = {r['query_id'] for r in records}
    todo = [p for p in images if any(q.query_id not in done for _, q in p.queries)]
    model = model_factory(config) if todo else None
    header['clip_fingerprint'] = getattr(model, 'clip_fingerprint', '')
    path = settings.file('results', '.jsonl')
    writer = (ResultsWriter.create(path, header) if good_bytes is None
              else ResultsWriter.reopen(path, good_bytes))
    with writer:
        if todo:
            loop = _Loop(settings, config, model, writer, records)
            loop.run(todo, header['planned_queries'], len(done))
    summary = build_summary(header, records)
    summary['wall_s'] = time.perf_counter() - started
    write_outputs(settings.file('summary', '.json'), settings.file('table', '.md'), [summary])
    return summary


def write_outputs(summary_path: Path, table_path: Path, summaries: Sequence[Mapping]) -> str:
    """Writes the JSON summary (one object, or a list for several runs) and the table."""
    summary_path.parent.mkdir(parents=True, exist_ok=True)
    body = summaries[0] if len(summaries) == 1 else list(summaries)
    summary_path.write_text(json.dumps(body, indent=2, sort_keys=True) + '\n')
    table = render_tables(summaries)
    table_path.write_text(table)
    return table


class UnreadableImageError(InvalidInputError):
    """An image file that is missing or cannot be decoded."""


def load_image(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB, without EXIF rotation (annotations use the stored pixel grid).

    Raises:
        UnreadableImageError: the file is missing, truncated or not an image.
    """
    from PIL import Image

    try:
        with Image.open(path) as image:
            return np.array(image.convert('RGB'))
    except (OSError, ValueError, Image.DecompressionBombError) as exc:
        raise UnreadableImageError(f'cannot read {path}: {exc}') from exc


def _out_of_memory_errors() -> tuple[type[BaseException], ...]:
    """Out-of-memory errors: an image too big for the device is skipped, not fatal."""
    import torch

    return (MemoryError, torch.cuda.OutOfMemoryError)


def _release_gpu_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


class _Loop:
    """The per-image loop of one run: frames, queries, records, progress."""

    def __init__(self, settings: EvalSettings, config: HybridGLConfig, model: Any,
                 writer: ResultsWriter, records: list[dict]) -> None:
        self.model = model
        self.writer = writer
        self.records = records
        self.cache = self.proposals = None
        if settings.cache_dir is not None:
            device = getattr(self.model, 'device', 'cpu')
            self.cache = FrameCache(settings.cache_dir, config, device)
            if hasattr(self.model, 'proposer'):  # HybridGL's injected proposer (SAM)
                self.proposals = CachingProposer(self.model.proposer, settings.cache_dir, config)
                self.model.proposer = self.proposals
        self.progress = settings.progress
        self.ground_truth = ground_truth_rule(config.parity)
        # the progress bar's running oIoU: over the queries with a target, as the summary's
        self.totals = [sum(r.get('inter', 0) for r in records if not r.get('no_target')),
                       sum(r.get('union', 0) for r in records if not r.get('no_target'))]

    def run(self, images: list[PlannedImage], total: int, initial: int) -> None:
        from tqdm import tqdm

        done = {r['query_id'] for r in self.records}
        self.bar = tqdm(total=total, initial=initial, unit='query', dynamic_ncols=True,
                        disable=not self.progress, smoothing=0.05)
        try:
            for planned in images:
                self.image([(o, q) for o, q in planned.queries if q.query_id not in done],
                           planned.item)
        finally:
            self.bar.close()

    def _emit(self, record: dict) -> None:
        self.writer.write(record)
        self.records.append(record)
        if not record.get('no_target'):
            self.totals[0] += record.get('inter', 0)
            self.totals[1] += record.get('union', 0)
        self.bar.update(1)
        if self.totals[1] and self.bar.n % 10 == 0:
            self.bar.set_postfix(oIoU=f'{100 * self.totals[0] / self.totals[1]:.2f}')

    def frame(self, item: ImageItem) -> tuple[Any, str]:
        """The image's frame, from the cache or computed (then stored), and the cache state:
        'hit', 'proposals' (only SAM's part was cached), 'miss' or 'off'."""
        if self.cache is None:
            return self.model.prepare(load_image(item.path)), 'off'
        try:
            name = image_cache_name(item.path)
        except OSError as exc:
            raise UnreadableImageError(f'cannot read {item.path}: {exc}') from exc
        frame = self.cache.load(name)
        if frame is not None:
            return frame, 'hit'
        image = load_image(item.path)
        state = 'miss'
        if self.proposals is None:
            frame = self.model.prepare(image)
        else:
            hits = self.proposals.hits
            with self.proposals.naming(name):
                frame = self.model.prepare(image)
            if self.proposals.hits > hits:
                state = 'proposals'
        self.cache.store(name, frame)
        return frame, state

    def image(self, pending: list[tuple[int, Query]], item: ImageItem) -> None:
        """Evaluates an image's pending queries; a bad image skips them, recorded."""
        start = time.perf_counter()
        try:
            frame, cache_state = self.frame(item)
        except UnreadableImageError as exc:
            self._skip_image(pending, item, 'unreadable image', exc)
            return
        except InvalidInputError as exc:  # the model refuses the image (e.g. too small)
            self._skip_image(pending, item, 'invalid image', exc)
            return
        except _out_of_memory_errors() as exc:
            _release_gpu_memory()
            self._skip_image(pending, item, 'out of memory', exc)
            return
        frame_ms = 1000.0 * (time.perf_counter() - start)
        height, width = frame.image_size
        if item.size_hw is not None and tuple(item.size_hw) != (height, width):
            detail = f'image {height}x{width}, annotations {item.size_hw[0]}x{item.size_hw[1]}'
            for order, query in pending:
                self._emit(query_record(order, item, query, status='skipped',
                                        reason='image size mismatch', detail=detail))
            return
        for index, (order, query) in enumerate(pending):
            record = self.query(frame, order, item, query)
            record.update(frame_ms=frame_ms if index == 0 else None, cache=cache_state)
            self._emit(record)

    def _skip_image(self, pending: list[tuple[int, Query]], item: ImageItem, reason: str,
                    exc: BaseException) -> None:
        _LOG.warning('image %s skipped (%s): %s', item.path, reason, exc)
        for order, query in pending:
            self._emit(query_record(order, item, query, status='skipped', reason=reason,
                                    detail=str(exc)))

    def query(self, frame: Any, order: int, item: ImageItem, query: Query) -> dict:
        """Scores one query on a prepared frame: I and U for pure and guided predictions, and
        of the answer set (gRefCOCO), found / ambiguous / confidence and the decision's
        signals (for ``hybridgl calibrate``)."""
        height, width = frame.image_size
        try:
            targets = target_masks(query, height, width, self.ground_truth)
        except ValueError as exc:
            return query_record(order, item, query, status='skipped',
                                reason='unreadable ground truth', detail=str(exc))
        gt = np.logical_or.reduce(targets) if targets else np.zeros((height, width), bool)
        if not query.no_target and not gt.any():
            return query_record(order, item, query, status='skipped', reason='empty ground truth')
        start = time.perf_counter()
        try:
            seg = self.model.query(frame, query.text, explain=True)
        except InvalidInputError as exc:
            return query_record(order, item, query, status='skipped', reason='invalid query',
                                detail=str(exc))
        query_ms = 1000.0 * (time.perf_counter() - start)
        masks = FullSizeMasks(frame)
        pure = frame.mask(seg.pure_index) if seg.pure_index >= 0 else np.zeros_like(gt)
        inter, union = intersection_union(seg.mask, gt)
        inter_pure, union_pure = intersection_union(pure, gt)
        inter_set, union_set = intersection_union(answer_set(seg, masks), gt)
        gt_area = int(gt.sum())
        return query_record(
            order, item, query, status='ok', inter=inter, union=union, inter_pure=inter_pure,
            union_pure=union_pure, gt_area=gt_area, target_side=target_side(frame, gt_area),
            found=bool(seg.found),
            index=int(seg.index), pure_index=int(seg.pure_index), proposals=int(len(masks)),
            relation=seg.parse.relation, query_ms=query_ms,
            # the direction that drove the ramp: a direction word, or (default mode) a
            # position relation word without an anchor ("the cube in front")
            direction=(seg.explanation.direction if seg.explanation is not None
                       else seg.parse.direction),
            **answer_fields(seg, query, targets, masks, (inter_set, union_set)))


def target_side(frame: Any, area: int) -> float | None:
    """The side (pixels) of a square with the target's area (``area`` pixels of the image) at
    the frame's working size (the size the models saw: ``core/resolution.py``), or None
    without a target. How small an object the models can read depends on this, not on the
    camera's pixels (``grounding.by_target_size``)."""
    if not area:
        return None
    height, width = frame.image_size
    working_h, working_w = frame.working_size
    return round(float(np.sqrt(area * working_h * working_w / float(height * width))), 2)


class FullSizeMasks:
    """A frame's proposals as (H, W) bool masks at the image's size (``masks[i]``), restored
    one at a time when the frame ran downscaled."""

    def __init__(self, frame: Any) -> None:
        self.frame = frame

    def __len__(self) -> int:
        return len(self.frame.proposals)

    def __getitem__(self, index: int) -> np.ndarray:
        return self.frame.mask(int(index))
