"""Metrics of answers that may be "not found" or ambiguous (gRefCOCO's and calibration's).

Per query the runner records whether the expression has a target (``no_target``), whether the
answer found one, flagged it ambiguous, its confidence, and I/U of the answer's set (the chosen
mask, plus the alternatives when ambiguous — gRefCOCO's answer to a multi-target expression is
all of them). From those:

* **N-acc** (no-target accuracy): share of no-target expressions answered "not found".
* **T-acc** (target accuracy): share of expressions with a target answered "found"; 1 − T-acc
  is the share of present targets rejected.
* **gIoU**: mean per-query IoU of the answer set, a no-target expression scoring 1 when
  answered "not found" and 0 otherwise; **cIoU**: ΣI / ΣU over all queries (a right "not
  found" adds 0 to both). Both ×100, as gRefCOCO (Liu et al., CVPR 2023) defines them.
* **right**: a found answer whose chosen mask has IoU >= 0.5 with a target, or "not found"
  for a no-target expression; per expression kind and spatial word where the data says them.
* **ambiguity flags**: share of multi-target expressions flagged ambiguous, and of
  single-target ones flagged anyway.
* **ECE** (expected calibration error): Σ_b n_b/N · |right rate − mean confidence| over 10
  equal-width confidence bins, on the answers with a confidence.
* **by target size**: right, found (1 − found: the present target rejected), ambiguous and
  the mean confidence for single-target expressions, grouped by the side of a square with
  the target's area at the working size, the pixels the models saw (<8, 8-16, 16-32, 32-64,
  64-128, >=128).
"""
from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import numpy as np

from hybridgl_ros.core.text import SPATIAL_SYNONYMS
from hybridgl_ros.eval.datasets import Query, decode_segmentation
from hybridgl_ros.eval.metrics import intersection_union, iou

IOU_HIT = 0.5
CALIBRATION_BINS = 10
#: Spatial words of the generated expressions, grouped (the issue's six), and the other words
#: the default mode reads as them ("leftmost" as "left", "biggest" as "bigger": text.py).
SPATIAL_WORDS = {'left': 'left', 'right': 'right', 'top': 'top', 'bottom': 'bottom',
                 'bigger': 'bigger', 'larger': 'bigger', 'smaller': 'smaller',
                 'tinier': 'smaller'}
SPATIAL_WORDS.update({word: SPATIAL_WORDS[base] for word, base in SPATIAL_SYNONYMS.items()
                      if base in SPATIAL_WORDS})


#: Decision signals kept in the records (what ``hybridgl calibrate`` fits on).
SIGNAL_FIELDS = ('presence_x', 'confidence_x', 'tie_margin', 'presence', 'rule', 'relation_fails',
                 'relation_absent', 'choice')


def target_masks(query: Query, height: int, width: int, rule: str = 'union'
                 ) -> list[np.ndarray]:
    """Each target's (height, width) bool mask, decoded by ``rule`` (``datasets.
    GROUND_TRUTH_RULES``); none for a no-target expression."""
    return [decode_segmentation(t, height, width, rule) for t in query.targets]


def answer_set(seg: Any, masks: np.ndarray) -> np.ndarray:
    """The answer's mask, with the alternatives' when it is ambiguous (gRefCOCO's answer to
    an expression that fits several objects is all of them)."""
    union = np.array(seg.mask, bool, copy=True)
    if getattr(seg, 'ambiguous', False):
        for alternative in seg.alternatives:
            union |= masks[alternative.index]
    return union


def answer_fields(seg: Any, query: Query, targets: list[np.ndarray], masks: np.ndarray,
                  set_iu: tuple[int, int]) -> dict:
    """The record fields of a generalised answer: ground-truth shape, what the answer said,
    the best IoU with a single target of the answer's mask (``best_iou``) and of the
    decision's choice even when rejected (``choice_iou``), and the decision's signals."""
    def best_iou(mask: np.ndarray) -> float:
        return max((iou(*intersection_union(mask, t)) for t in targets), default=0.0)

    confidence = getattr(seg, 'confidence', float('nan'))
    explanation = getattr(seg, 'explanation', None)
    decision = getattr(explanation, 'decision', None) or {}
    choice = decision.get('choice', seg.index)
    return {'no_target': bool(query.no_target), 'targets': len(targets),
            'query_kind': query.kind, 'best_iou': best_iou(seg.mask),
            'choice_iou': best_iou(masks[choice]) if choice >= 0 else 0.0,
            'inter_set': set_iu[0], 'union_set': set_iu[1],
            'ambiguous': bool(getattr(seg, 'ambiguous', False)),
            'alternatives': [a.index for a in getattr(seg, 'alternatives', ())],
            'confidence': None if confidence != confidence else float(confidence),
            'signals': {k: decision[k] for k in SIGNAL_FIELDS if k in decision}}


def is_right(record: Mapping) -> bool:
    """A right answer: "not found" for no target, else a found chosen mask on a target."""
    if record.get('no_target'):
        return not record['found']
    return bool(record['found']) and record.get('best_iou', 0.0) >= IOU_HIT


def spatial_word(text: str) -> str:
    """The first spatial word of an expression as its group, or ''."""
    words = [SPATIAL_WORDS[w] for w in text.lower().split() if w in SPATIAL_WORDS]
    return words[0] if words else ''


def calibration_bins(confidences: Iterable[float], right: Iterable[bool],
                     bins: int = CALIBRATION_BINS) -> tuple[float, list[dict]]:
    """ECE and the reliability table.

    Args:
        confidences: confidence of each answer in [0, 1] (NaN ones are left out).
        right: whether each answer was right.

    Returns:
        (ECE in [0, 1], one {'low', 'high', 'count', 'confidence', 'accuracy'} per bin; empty
        bins have count 0 and None means).
    """
    conf = np.asarray(list(confidences), np.float64)
    hits = np.asarray(list(right), np.float64)
    keep = np.isfinite(conf)
    conf, hits = conf[keep], hits[keep]
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        inside = which == b
        count = int(inside.sum())
        row = {'low': float(edges[b]), 'high': float(edges[b + 1]), 'count': count,
               'confidence': None, 'accuracy': None}
        if count:
            row['confidence'] = float(conf[inside].mean())
            row['accuracy'] = float(hits[inside].mean())
            ece += count / len(conf) * abs(row['accuracy'] - row['confidence'])
        table.append(row)
    return ece, table


def grounding_metrics(records: Iterable[Mapping]) -> dict:
    """The metrics above from ``status == 'ok'`` query records that carry ``found``.

    Returns:
        {'queries', 'N_acc', 'T_acc', 'present_rejected', 'gIoU', 'cIoU', 'right',
        'ambiguity_flagged', 'false_ambiguity', 'ECE', 'mean_confidence', 'reliability',
        'by_kind', 'by_spatial_word', 'by_target_size'}; a rate over no query is None.
    """
    records = [r for r in records if r.get('status') == 'ok' and 'found' in r]
    empty = [r for r in records if r.get('no_target')]
    targeted = [r for r in records if not r.get('no_target')]
    multi = [r for r in targeted if r.get('targets', 1) > 1]
    single = [r for r in targeted if r.get('targets', 1) <= 1]
    ious = [_set_iou(r) for r in records]
    inter = sum(r.get('inter_set', r['inter']) for r in records if not _right_empty(r))
    union = sum(r.get('union_set', r['union']) for r in records if not _right_empty(r))
    with_conf = [r for r in records if r.get('confidence') is not None]
    ece, table = calibration_bins([r['confidence'] for r in with_conf],
                                  [is_right(r) for r in with_conf])
    return {
        'queries': len(records),
        'N_acc': _rate(not r['found'] for r in empty),
        'T_acc': _rate(bool(r['found']) for r in targeted),
        'present_rejected': _rate(not r['found'] for r in targeted),
        'gIoU': 100.0 * math.fsum(ious) / len(ious) if ious else None,
        'cIoU': 100.0 * inter / union if union else None,
        'right': _rate(is_right(r) for r in records),
        'ambiguity_flagged': _rate(bool(r.get('ambiguous')) for r in multi),
        'false_ambiguity': _rate(bool(r.get('ambiguous')) for r in single),
        'ECE': ece if with_conf else None,
        'mean_confidence': (math.fsum(r['confidence'] for r in with_conf) / len(with_conf)
                            if with_conf else None),
        'answers_with_confidence': len(with_conf),
        'reliability': table,
        'by_kind': _groups(records, lambda r: r.get('query_kind', '')),
        'by_spatial_word': _groups([r for r in records if r.get('query_kind') == 'spatial'],
                                   lambda r: spatial_word(r['text'])),
        'by_target_size': by_target_size(single)}


#: Edges (pixels) of the target-size groups: the side of a square with the target's area at
#: the working size (``runner.target_side``), doubling.
TARGET_SIDE_EDGES = (8, 16, 32, 64, 128)


def target_size_group(side: float) -> str:
    """The group of a target side (pixels at the working size): '<8', '8-16', ... '>=128'."""
    edges = TARGET_SIDE_EDGES
    if side < edges[0]:
        return f'<{edges[0]}'
    for low, high in zip(edges, edges[1:]):
        if side < high:
            return f'{low}-{high}'
    return f'>={edges[-1]}'


def size_group_key(name: str) -> float:
    """Sort key of a target-size group name, smallest first (a summary read back from JSON
    has its groups in the file's key order, not by size)."""
    low = float(name.lstrip('<>=').split('-')[0])
    return low - 0.5 if name.startswith('<') else low


def by_target_size(single: list[Mapping]) -> dict[str, dict]:
    """Right, found, ambiguous and the mean confidence (None without one) per target-size
    group, smallest first, over single-target expressions whose records carry ``target_side``
    (records of older runs do not: then {}). Where the models stop reading an object is where
    a robot must come closer; the mean confidence beside the right rate says whether the
    confidence knows it."""
    sized = [r for r in single if r.get('target_side') is not None]
    groups = _groups(sized, lambda r: target_size_group(r['target_side']))
    confident: dict[str, list[float]] = {}
    for r in sized:
        if r.get('confidence') is not None:
            confident.setdefault(target_size_group(r['target_side']), []).append(r['confidence'])
    for name, group in groups.items():
        values = confident.get(name)
        group['confidence'] = math.fsum(values) / len(values) if values else None
    return {name: groups[name] for name in sorted(groups, key=size_group_key)}


def _right_empty(record: Mapping) -> bool:
    return bool(record.get('no_target')) and not record['found']


def _set_iou(record: Mapping) -> float:
    if record.get('no_target'):
        return 0.0 if record['found'] else 1.0
    union = record.get('union_set', record['union'])
    return record.get('inter_set', record['inter']) / union if union else 0.0


def _rate(values: Iterable[bool]) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None


def _groups(records: list[Mapping], key) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for name in sorted({key(r) for r in records} - {''}):
        group = [r for r in records if key(r) == name]
        out[name] = {'queries': len(group), 'right': _rate(is_right(r) for r in group),
                     'found': _rate(bool(r['found']) for r in group),
                     'ambiguous': _rate(bool(r.get('ambiguous')) for r in group)}
    return out
