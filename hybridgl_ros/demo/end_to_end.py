"""End-to-end accuracy of a HybridGL pipeline on generated scenes, per expression kind.

A query counts as correct when the chosen mask has IoU >= 0.5 with the referred object (the
issue's criterion); "pure" is the same for the pure-HybridGL choice (argmax of s_n, no spatial
guidance).
"""
from __future__ import annotations

import time

import numpy as np

from hybridgl_ros.demo.expressions import KINDS, scene_expressions
from hybridgl_ros.demo.scenes import make_scene

#: Scene series for end-to-end checks (never used in training).
END_TO_END_SEED = 3001
IOU_HIT = 0.5
#: Spatial words of the expressions, reported separately for the spatial-only kind.
SPATIAL_WORDS = {'left': 'left', 'right': 'right', 'top': 'top', 'bottom': 'bottom',
                 'bigger': 'bigger', 'larger': 'bigger', 'smaller': 'smaller',
                 'tinier': 'smaller'}


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two (H, W) bool masks (0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def evaluate_pipeline(pipeline, seed: int = END_TO_END_SEED, count: int = 20) -> dict:
    """Per-kind accuracy of ``pipeline`` (a ``HybridGL``) on ``count`` scenes of ``seed``.

    Returns:
        ``{'kinds': {kind: {'queries', 'accuracy', 'pure_accuracy', 'mean_iou'}},
        'spatial_words': {word: {...}}, 'overall': {...}, 'scenes': count,
        'prepare_seconds_per_image': s, 'query_ms': mean}``; spatial-only queries are also
        grouped by their spatial word (see :func:`spatial_word`).
    """
    rows: list[tuple[str, float, float, str]] = []
    prepare_s, query_s = 0.0, 0.0
    for index in range(count):
        scene = make_scene(seed, index)
        start = time.perf_counter()
        frame = pipeline.prepare(scene.image_rgb)
        prepare_s += time.perf_counter() - start
        for ref in scene_expressions(scene.objects, seed, index):
            truth = scene.masks[ref.target]
            for sentence in ref.sentences:
                start = time.perf_counter()
                result = pipeline.query(frame, sentence)
                query_s += time.perf_counter() - start
                iou = mask_iou(result.mask, truth) if result.found else 0.0
                pure = mask_iou(frame.mask(result.pure_index), truth) \
                    if result.pure_index >= 0 else 0.0
                rows.append((ref.kind, iou, pure, spatial_word(sentence)))
    spatial = sorted({r[3] for r in rows if r[0] == 'spatial'})
    return {'scenes': count, 'kinds': {k: _summary([r for r in rows if r[0] == k])
                                       for k in KINDS},
            'spatial_words': {w: _summary([r for r in rows if r[0] == 'spatial' and r[3] == w])
                              for w in spatial},
            'overall': _summary(rows),
            'prepare_seconds_per_image': round(prepare_s / max(1, count), 3),
            'query_ms': round(1000 * query_s / max(1, len(rows)), 2)}


def spatial_word(sentence: str) -> str:
    """The spatial word of a sentence as a group (left/right/top/bottom/bigger/smaller), or ''."""
    words = [SPATIAL_WORDS[w] for w in sentence.split() if w in SPATIAL_WORDS]
    return words[0] if words else ''


def _summary(rows: list[tuple]) -> dict:
    if not rows:
        return {'queries': 0, 'accuracy': 0.0, 'pure_accuracy': 0.0, 'mean_iou': 0.0}
    ious = np.array([r[1] for r in rows])
    pure = np.array([r[2] for r in rows])
    return {'queries': len(rows), 'accuracy': round(float((ious >= IOU_HIT).mean()), 4),
            'pure_accuracy': round(float((pure >= IOU_HIT).mean()), 4),
            'mean_iou': round(float(ious.mean()), 4)}


def format_table(results: dict) -> str:
    """A small text table of per-kind accuracy."""
    lines = [f'{"kind":<10} {"queries":>7} {"acc@0.5":>8} {"pure":>6} {"mIoU":>6}']
    groups = list(results['kinds'].items()) + [('overall', results['overall'])]
    groups += [(f'  {w}', row) for w, row in results.get('spatial_words', {}).items()]
    for kind, row in groups:
        lines.append(f'{kind:<10} {row["queries"]:>7} {row["accuracy"]:>8.3f} '
                     f'{row["pure_accuracy"]:>6.3f} {row["mean_iou"]:>6.3f}')
    return '\n'.join(lines)
