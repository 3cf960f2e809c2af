"""oIoU and mIoU exactly as spec §11: per query I and U at image resolution, then
oIoU = ΣI / ΣU and mIoU = mean(I / U) with IoU = 0 where U = 0, both ×100.

Two predictions are scored per query: "pure" HybridGL (the mask at ``pure_index``, empty if -1)
and "guided", the final mask with spatial guidance (``Segmentation.mask``).

They are the paper's metrics for expressions that have a target. The no-target expressions of
a gRefCOCO-layout dataset are left out of them: there a right answer is the empty mask, whose
U = 0 would count as IoU 0 (and the method's own mask, which "pure" always is, as a miss);
they are scored by N-acc and gIoU (:func:`~hybridgl_ros.eval.grounding.grounding_metrics`).
"""
from __future__ import annotations

import math
from typing import Iterable, Mapping

import numpy as np

#: The two predictions scored per query, and the record fields holding their I and U.
VARIANTS = {'pure': ('inter_pure', 'union_pure'), 'guided': ('inter', 'union')}


def intersection_union(pred: np.ndarray, gt: np.ndarray) -> tuple[int, int]:
    """I = |pred ∧ gt| and U = |pred ∨ gt| in pixels.

    Args:
        pred: (H, W) bool, the predicted mask.
        gt: (H, W) bool, the ground truth, same shape.

    Raises:
        ValueError: the shapes differ.
    """
    if pred.shape != gt.shape:
        raise ValueError(f'prediction {pred.shape} and ground truth {gt.shape} differ in shape')
    return (int(np.count_nonzero(np.logical_and(pred, gt))),
            int(np.count_nonzero(np.logical_or(pred, gt))))


def iou(inter: int, union: int) -> float:
    """I / U, 0.0 where U = 0."""
    return inter / union if union > 0 else 0.0


def scores(pairs: Iterable[tuple[int, int]]) -> dict[str, float | int]:
    """oIoU and mIoU (×100) of (I, U) pairs; order-independent (exact sums).

    Returns:
        {'oIoU': float, 'mIoU': float, 'count': int}; both 0.0 for no pairs.
    """
    pairs = list(pairs)
    total_i = sum(i for i, _ in pairs)
    total_u = sum(u for _, u in pairs)
    mean = math.fsum(iou(i, u) for i, u in pairs) / len(pairs) if pairs else 0.0
    return {'oIoU': 100.0 * iou(total_i, total_u), 'mIoU': 100.0 * mean, 'count': len(pairs)}


def summarize_records(records: Iterable[Mapping]) -> dict:
    """Metrics, counts and timings of per-query records (see ``runner.query_record``).

    Skipped queries (status != 'ok') are counted by reason and left out of the metrics, and
    so are no-target ones (``with_target`` counts the queries the metrics are over).
    """
    records = list(records)
    done = [r for r in records if r['status'] == 'ok']
    skipped: dict[str, int] = {}
    for r in records:
        if r['status'] != 'ok':
            skipped[r['reason']] = skipped.get(r['reason'], 0) + 1
    with_target = [r for r in done if not r.get('no_target')]
    metrics = {name: scores((r[i], r[u]) for r in with_target)
               for name, (i, u) in VARIANTS.items()}
    return {'queries': len(records), 'evaluated': len(done), 'with_target': len(with_target),
            'skipped': sum(skipped.values()), 'skipped_by_reason': skipped,
            'metrics': {k: {'oIoU': v['oIoU'], 'mIoU': v['mIoU']} for k, v in metrics.items()},
            'timing': _timing(records)}


def _timing(records: list[Mapping]) -> dict[str, float | int]:
    """Time per query with the frame work (SAM + CLIP, or a cache read) spread over queries."""
    frames = [r for r in records if r.get('frame_ms') is not None]
    hits = [r['frame_ms'] for r in frames if r.get('cache') == 'hit']
    misses = [r['frame_ms'] for r in frames if r.get('cache') != 'hit']
    query_ms = [r['query_ms'] for r in records if r.get('query_ms') is not None]
    total = math.fsum(hits) + math.fsum(misses) + math.fsum(query_ms)
    return {
        'frames': len(frames), 'cache_hits': len(hits),
        'proposal_cache_hits': sum(1 for r in frames if r.get('cache') == 'proposals'),
        'frame_ms_mean_computed': _mean(misses), 'frame_ms_mean_cached': _mean(hits),
        'query_ms_mean': _mean(query_ms),
        'ms_per_query': total / len(query_ms) if query_ms else 0.0}


def _mean(values: list[float]) -> float:
    return math.fsum(values) / len(values) if values else 0.0
