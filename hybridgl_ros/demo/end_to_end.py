"""End-to-end accuracy of a HybridGL pipeline on generated scenes, per expression kind.

Every expression of :func:`~hybridgl_ros.demo.gref_expressions.general_expressions` is asked:
the single-target kinds, the no-target ones and the look-alikes said plainly. An answer is
right (``grounding.is_right``) when it finds a mask with IoU >= 0.5 with a referred object, or
answers "not found" to a no-target expression; "pure" is the same for the pure-HybridGL choice
(argmax of s_n, no spatial guidance, never "not found"). ``hybridgl make-scenes`` + ``hybridgl
eval --dataset grefcoco`` measure the same on written files; this is the in-memory version the
accuracy test uses.
"""
from __future__ import annotations

import time

import numpy as np

from hybridgl_ros.demo.expressions import (
    KINDS, MULTI_TARGET_KINDS, NO_TARGET_KINDS, SHAPE_KINDS)
from hybridgl_ros.demo.gref_expressions import general_expressions
from hybridgl_ros.demo.scenes import make_scene
from hybridgl_ros.eval.grounding import spatial_word

#: Scene series for end-to-end checks (never used in training).
END_TO_END_SEED = 3001
IOU_HIT = 0.5
SINGLE_TARGET_KINDS = KINDS + SHAPE_KINDS
ALL_KINDS = SINGLE_TARGET_KINDS + NO_TARGET_KINDS + MULTI_TARGET_KINDS


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two (H, W) bool masks (0 when both are empty)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 0.0


def evaluate_pipeline(pipeline, seed: int = END_TO_END_SEED, count: int = 20,
                      style: str = 'shaded') -> dict:
    """Per-kind accuracy of ``pipeline`` (a ``HybridGL``) on ``count`` scenes of ``seed``.

    Returns:
        ``{'kinds': {kind: {'queries', 'accuracy', 'pure_accuracy', 'found', 'ambiguous'}},
        'spatial_words': {word: {...}}, 'overall': {...}, 'single_target': {...}, 'scenes',
        'style', 'prepare_seconds_per_image', 'query_ms'}``; spatial-only queries are also
        grouped by their spatial word (see :func:`spatial_word`).
    """
    rows: list[dict] = []
    prepare_s, query_s = 0.0, 0.0
    for index in range(count):
        scene = make_scene(seed, index, style)
        start = time.perf_counter()
        frame = pipeline.prepare(scene.image_rgb)
        prepare_s += time.perf_counter() - start
        for ref in general_expressions(scene.objects, seed, index):
            truth = [scene.masks[t] for t in ref.targets]
            for sentence in ref.sentences:
                start = time.perf_counter()
                result = pipeline.query(frame, sentence)
                query_s += time.perf_counter() - start
                rows.append(_row(ref.kind, sentence, result, frame, truth))
    spatial = sorted({r['word'] for r in rows if r['kind'] == 'spatial'})
    return {'scenes': count, 'style': style,
            'kinds': {k: _summary([r for r in rows if r['kind'] == k]) for k in ALL_KINDS},
            'spatial_words': {w: _summary([r for r in rows
                                           if r['kind'] == 'spatial' and r['word'] == w])
                              for w in spatial},
            'single_target': _summary([r for r in rows if r['kind'] in SINGLE_TARGET_KINDS]),
            'overall': _summary(rows),
            'prepare_seconds_per_image': round(prepare_s / max(1, count), 3),
            'query_ms': round(1000 * query_s / max(1, len(rows)), 2)}


def _row(kind: str, sentence: str, result, frame, truth: list[np.ndarray]) -> dict:
    def best(mask: np.ndarray) -> float:
        return max((mask_iou(mask, t) for t in truth), default=0.0)

    pure = (best(frame.mask(result.pure_index)) >= IOU_HIT
            if result.pure_index >= 0 and truth else False)
    right = (not result.found) if not truth else (result.found and best(result.mask) >= IOU_HIT)
    return {'kind': kind, 'word': spatial_word(sentence), 'right': bool(right), 'pure': pure,
            'found': bool(result.found), 'ambiguous': bool(result.ambiguous)}


def _summary(rows: list[dict]) -> dict:
    if not rows:
        return {'queries': 0, 'accuracy': 0.0, 'pure_accuracy': 0.0, 'found': 0.0,
                'ambiguous': 0.0}
    return {'queries': len(rows),
            **{name: round(float(np.mean([r[key] for r in rows])), 4) for name, key in (
                ('accuracy', 'right'), ('pure_accuracy', 'pure'), ('found', 'found'),
                ('ambiguous', 'ambiguous'))}}


def format_table(results: dict) -> str:
    """A small text table of per-kind accuracy (right, pure, found and ambiguous rates)."""
    lines = [f'{"kind":<16} {"queries":>7} {"right":>6} {"pure":>6} {"found":>6} {"ambig":>6}']
    groups = [(k, v) for k, v in results['kinds'].items() if v['queries']]
    groups += [('single-target', results['single_target']), ('overall', results['overall'])]
    groups += [(f'  {w}', row) for w, row in results.get('spatial_words', {}).items()]
    for kind, row in groups:
        lines.append(f'{kind:<16} {row["queries"]:>7} {row["accuracy"]:>6.3f} '
                     f'{row["pure_accuracy"]:>6.3f} {row["found"]:>6.3f} '
                     f'{row["ambiguous"]:>6.3f}')
    return '\n'.join(lines)
