"""Look-alikes: the masks a size or position word without an anchor is judged among, and R
among them (default mode's departure from spec §7.3; the guidance plan that asks for it is
``guidance.plan_guidance``, its ``lookalike_relation``).

"The smaller ball", "the cube on the left": the words say which of the objects that look like
"the ball" or "the cube" is meant. The spec's R weighs each partner by its match to the whole
phrase, which names the size or position, so the look-alike the target is compared with gets
almost no weight. Here the look-alikes are found by the phrase without those words
(:func:`lookalike_candidates`, :func:`lookalikes_among`), compared with each other as objects,
not with their own parts (:func:`comparative_totals`, :func:`same_object`), and a size word
leaves S pooled over them (:func:`pooled_among`).

Pure functions on torch tensors (CPU or CUDA); N = 0 masks is allowed.
"""
from __future__ import annotations

from typing import Any

import torch

from hybridgl_ros.core.errors import InvalidInputError
from hybridgl_ros.core.guidance import (
    POSITION_RELATIONS, SIZE_RELATIONS, RelationTotals, pair_factor, select_candidates)

#: Two masks are one object when their IoU, or their overlap over the smaller one, is above
#: this (a mask and a part of it: half a ring and the ring).
SAME_OBJECT_OVERLAP = 0.5


def lookalike_candidates(s_class: torch.Tensor, p: torch.Tensor, margin: float, limit: int,
                         top: torch.Tensor, reads_as_named: torch.Tensor | None = None
                         ) -> tuple[torch.Tensor, bool]:
    """The masks a position word is judged among (default mode): every mask whose s^c (the
    head phrase without its position words) is within ``margin`` of the best s^c, or that
    ``reads_as_named``, the highest p first, at most ``limit``; ``top`` (the top-K by p) when
    fewer than two are.

    "The bottom triangle" among five triangles: the top 3 by p of the whole phrase are three
    triangles the CLIP happens to prefer, often not the bottom one; all five look alike to
    "the triangle".

    Args:
        s_class: (N,) s^c of every mask.
        p: (N,) matching probabilities of the whole phrase (the order).
        margin: logits below the best s^c still counted as a look-alike.
        limit: the most look-alikes compared.
        top: (K,) the spec's candidates, the fallback.
        reads_as_named: (N,) bool, masks counted as look-alikes whatever their s^c (further
            below the best, but read as the named look rather than another; None: none).

    Returns:
        The candidates, and whether they are look-alikes (False: the fallback).
    """
    inside = s_class >= s_class.max() - margin
    if reads_as_named is not None:
        inside = inside | reads_as_named
    near = torch.nonzero(inside).flatten()
    if len(near) < 2:
        return top, False
    return near[select_candidates(p[near], max(2, int(limit)))], True


def lookalikes_among(s_class: torch.Tensor, candidates: torch.Tensor,
                     margin: float) -> torch.Tensor:
    """The candidates whose s^c (the phrase without the size word) is within ``margin`` of the
    best candidate's: the look-alikes a size comparative compares ("the smaller ball": the
    balls, not a third candidate the CLIP barely takes for one, such as the mask of the table
    around them). May be fewer than two: then there is nothing to compare, and the caller
    neither pools S nor takes the common background outside them."""
    return candidates[s_class[candidates] >= s_class[candidates].max() - margin]


def pooled_among(spatial: torch.Tensor, lookalikes: torch.Tensor) -> torch.Tensor:
    """S with every look-alike's value replaced by their mean (size comparatives, default mode).

    The coherence map holds no size: for "the smaller ball" it is as bright on both balls or
    brighter on the bigger one, and with γ = 0.6 a difference in S outweighs the whole range
    of softmax(R), where the size is judged. Pooled, S still weighs the look-alikes against the
    other candidates, and R alone tells the look-alikes apart.

    Args:
        spatial: (N,) S of every mask.
        lookalikes: (L,) mask indices, two or more (:func:`lookalikes_among`; the caller
            pools nothing when it finds one, as S is then what tells it from the others).
    """
    pooled = spatial.clone()
    pooled[lookalikes] = spatial[lookalikes].mean()
    return pooled


def comparative_totals(relation: str, p: torch.Tensor, p_class: torch.Tensor,
                       candidates: torch.Tensor, boxes_xywh: Any,
                       same: torch.Tensor | None = None) -> RelationTotals:
    """R among look-alikes (default mode's departure from spec §7.3; see
    :func:`~hybridgl_ros.core.guidance.lookalike_relation`).

    "The smaller X" is the X smaller than the other X's, "the X on the left" the X left of
    the other X's. The spec weighs each partner j by p_j, the match to the whole phrase; but
    the phrase names the size (or the position), so the look-alike it is compared with gets
    p_j ≈ 0 and R vanishes for every candidate (softmax(R) uniform); without a relation word
    ("the X at the bottom") R = K·p_i sharpens whatever the whole phrase's s prefers. Here
    the partners (the candidates) are weighted by p^c, the match to the phrase *without* the
    size or position words ("the red ball", "the X"), normalised over the other candidates
    and scaled so the weights average 1 over the K partners, as the 'none' relation's do:

        R_i = p_i · Σ_{j ≠ i} K·p^c_j / Σ_{j' ≠ i} p^c_{j'} · f(i, j).

    With ``same``, j runs over the other *objects'* masks only: a mask and a part of it (half
    a ring and the ring, both look-alikes of "the ring") are one object, which lies neither
    left of nor is smaller than itself. Without it the half ring is "the left ring" beside
    its whole, being left of the whole's centre, and "the smaller ring" for being smaller. A
    candidate with no other object among the candidates gets R_i = 0.

    Args:
        relation: 'big', 'small', 'left', 'right', 'up' or 'down'.
        p: (N,) matching probabilities of the whole phrase (or, for a position word among
            look-alikes, each mask's reading as the look phrase: ``positions_by_geometry``).
        p_class: (N,) matching probabilities of the phrase without the size or position words.
        candidates: (K,) int64 mask indices (the partners too).
        boxes_xywh: (N, 4) boxes in pixels.
        same: (K, K) bool, which candidates are one object (:func:`same_object`), or None:
            every other candidate is another object.
    """
    if relation not in SIZE_RELATIONS + POSITION_RELATIONS:
        raise InvalidInputError(f'{relation!r} is not a size or position relation')
    dtype = torch.promote_types(p.dtype, torch.float32)
    boxes = torch.as_tensor(boxes_xywh, device=p.device).to(dtype).reshape(-1, 4)
    pair = pair_factor(relation, boxes[candidates], boxes[candidates]).to(dtype)  # (K, K)
    share = p_class[candidates].to(dtype)[None, :].expand(len(candidates), -1).clone()
    share.fill_diagonal_(0.0)
    if same is not None:
        share = share.masked_fill(same.to(share.device), 0.0)
    share = share / share.sum(dim=1, keepdim=True).clamp(min=1e-12)  # rows: j ≠ i, sum 1
    totals = p[candidates].to(dtype) * len(candidates) * (pair * share).sum(dim=1)
    return RelationTotals(candidates, p_class[candidates].to(dtype), totals)


def same_object(masks: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """(K, K) bool: which of the masks ``indices`` are one object, their IoU or their overlap
    over the smaller one above SAME_OBJECT_OVERLAP (the diagonal is True).

    Args:
        masks: (N, h, w) bool masks (any device).
        indices: (K,) int64 mask indices.
    """
    if len(indices) == 0:
        return torch.zeros((0, 0), dtype=torch.bool, device=masks.device)
    flat = masks[indices.to(masks.device)].reshape(len(indices), -1)             # (K, hw)
    # one row of intersections at a time: K·hw bools, not K·K·hw
    inter = torch.stack([(flat & row).sum(dim=1) for row in flat]).float()       # (K, K)
    area = inter.diagonal()
    same = one_object(inter, area[:, None], area[None, :])
    return same | torch.eye(len(flat), dtype=torch.bool, device=same.device)


def one_object(inter: torch.Tensor, area_a: torch.Tensor, area_b: torch.Tensor
               ) -> torch.Tensor:
    """Whether masks of areas ``area_a`` and ``area_b`` that share ``inter`` pixels are one
    object: their IoU, or their overlap over the smaller one, above SAME_OBJECT_OVERLAP
    (float tensors, broadcast)."""
    union = area_a + area_b - inter
    smaller = torch.minimum(area_a, area_b)
    return ((inter / union.clamp(min=1) > SAME_OBJECT_OVERLAP)
            | (inter / smaller.clamp(min=1) > SAME_OBJECT_OVERLAP))
