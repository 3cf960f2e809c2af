"""Relation, position and spatial guidance and the final score (spec §7.2–7.3, §9, §10); R
among look-alikes, the default mode's departure for size and position words, is in
``core/lookalikes.py``.

Pure functions on torch tensors (CPU or CUDA), vectorised over masks; N = 0 masks is allowed
everywhere. The ablation switches of ``GuidanceConfig`` and the parity rule for vertical ramps
are applied in one place, :func:`plan_guidance`; the other functions do exactly what their
arguments say.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from hybridgl_ros.core.config import GuidanceConfig
from hybridgl_ros.core.errors import InvalidInputError
from hybridgl_ros.core.text import DIRECTION_TRIGGERS, REGION_WORDS, RELATION_TRIGGERS
from hybridgl_ros.core.types import DIRECTIONS, RELATIONS, ParsedExpression

#: Mask pixels converted to float64 at once in ``spatial_scores``: bounds memory (32 MiB), not
#: the result.
_CHUNK_PIXELS = 1 << 22
#: Relations that compare sizes (spec §7.3 big / small).
SIZE_RELATIONS = ('big', 'small')
#: Relations and directions that say where the target lies (spec §7.3, §9).
POSITION_RELATIONS = ('left', 'right', 'up', 'down')
#: The words of a size comparative (spec §7.1 triggers).
SIZE_WORDS = frozenset(w for r in SIZE_RELATIONS for w in RELATION_TRIGGERS[r])
#: The words that say where the target lies (spec §7.1 and §9 triggers of POSITION_RELATIONS).
POSITION_WORDS = frozenset(w for r in POSITION_RELATIONS
                           for w in RELATION_TRIGGERS[r] + DIRECTION_TRIGGERS[r])


@dataclass(frozen=True)
class GuidancePlan:
    """What guidance one query gets, after the ablation switches and parity rules.

    Attributes:
        relation: drives R (§7) and β (§10); 'none' when ``use_relation`` is off.
        direction: drives the position ramp (§9); 'none' when ``use_position`` is off.
        vertical_ramps: whether up/down ramps apply (config switch; always off in parity mode,
            spec §12 bug 3).
        use_coherence: False: the coherence map is all ones (GEM need not run at all).
        beta: β of Eq. 8 for ``relation``.
        lookalike_relation: the relation R is judged with among look-alikes, the candidates
            weighted by the phrase without that word (``lookalikes.comparative_totals``;
            default mode only): a size comparative (``comparatives_by_class``) or a position
            word (``positions_by_class``) with no anchor phrase; 'none': R is the spec's.
    """

    relation: str
    direction: str
    vertical_ramps: bool
    use_coherence: bool
    beta: float
    lookalike_relation: str = 'none'

    @property
    def size_comparative(self) -> bool:
        """True when the relation is a size comparative judged among look-alikes."""
        return self.lookalike_relation in SIZE_RELATIONS


def plan_guidance(parsed: ParsedExpression, config: GuidanceConfig,
                  reference_parity: bool = False) -> GuidancePlan:
    """Applies the ablation switches of ``config`` to a parsed expression.

    ``use_relation=False`` removes the relation everywhere, β included (as if the expression had
    no relation word); ``use_position=False`` makes the ramp all ones; ``use_coherence=False``
    makes the coherence map all ones.
    """
    relation = parsed.relation if config.use_relation else 'none'
    direction = parsed.direction if config.use_position else 'none'
    lookalike = 'none' if reference_parity else lookalike_relation(
        parsed, relation, direction, config)
    if (config.direction_from_relation and config.use_position and direction == 'none'
            and lookalike in POSITION_RELATIONS):
        # "the cube in front", "the ball at the back": a position relation word with no anchor
        # names a place in the picture as "the cube at the bottom" does (default mode).
        direction = lookalike
    return GuidancePlan(
        relation=relation,
        direction=direction,
        vertical_ramps=config.vertical_ramps and not reference_parity,
        use_coherence=config.use_coherence,
        beta=beta_for(relation, config),
        lookalike_relation=lookalike)


def lookalike_relation(parsed: ParsedExpression, relation: str, direction: str,
                       config: GuidanceConfig) -> str:
    """The relation a query without an anchor phrase is judged with among look-alikes.

    "The smaller ball", "the cube on the left", "the top star", "the cube on the left side"
    compare the target with the objects that look like it, not with an anchor: a size
    comparative with no other phrase (``comparatives_by_class``), or a position relation or
    direction (``positions_by_class``) whose other phrases, if any, only name a part of the
    picture ("the left side", "the bottom": rooted in a spec §7.1 region word or a position
    word). 'none' otherwise (the spec's R).
    """
    if config.comparatives_by_class and relation in SIZE_RELATIONS:
        return 'none' if parsed.other_phrases else relation
    if not config.positions_by_class or not others_name_regions(parsed):
        return 'none'
    if relation in POSITION_RELATIONS:
        return relation
    if relation == 'none' and direction in POSITION_RELATIONS:
        return direction
    return 'none'


def others_name_regions(parsed: ParsedExpression) -> bool:
    """Whether every other noun phrase names only a part of the picture ("the left side" of
    "the cube on the left side"; true without any): then there is no anchor object."""
    return all(_names_a_region(phrase) for phrase in parsed.other_phrases)


def _names_a_region(phrase: str) -> bool:
    """Whether a noun phrase names a part of the picture ("the left side", "the top")."""
    words = phrase.split()
    return bool(words) and (words[-1] in REGION_WORDS or words[-1] in POSITION_WORDS)


def select_candidates(p: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the k masks with the highest p, best first (spec §7.2).

    k is lowered to N for this image only (spec §12 bug 2). Masks of exactly equal p (two
    copies of one mask) come in ``torch.topk``'s order, as in the authors' code: its argmax over
    F then picks the same copy (a stable sort, lower index first, picked the other one on a
    dump of the authors' code with duplicated proposals).

    Args:
        p: (N,) float, matching probabilities.
        k: candidate count.

    Returns:
        (min(k, N),) int64 on p's device.
    """
    return torch.topk(p, max(0, min(int(k), p.shape[0]))).indices


def relation_scores(relation: str, p: torch.Tensor, candidates: torch.Tensor,
                    boxes_xywh: Any, q: torch.Tensor | None = None,
                    partner_count: int = 6) -> torch.Tensor:
    """softmax(R) over the candidates (spec §7.2–7.3, Eq. 4–5); see :func:`relation_totals`.

    Returns:
        (K,) float32 (or p's dtype if wider) on p's device, summing to 1 (empty for K = 0).
    """
    return torch.softmax(relation_totals(relation, p, candidates, boxes_xywh, q,
                                         partner_count).totals, dim=0)


@dataclass(frozen=True)
class RelationTotals:
    """R of spec §7.3 with the partners it was summed over.

    Attributes:
        partners: (P,) int64 mask indices: the top-q masks with other nouns, else the candidates.
        partner_weights: (P,) w_j: q_j with other nouns, else p_j.
        totals: (K,) R_i = Σ_j r(i, j), at least float32.
    """

    partners: torch.Tensor
    partner_weights: torch.Tensor
    totals: torch.Tensor


def relation_totals(relation: str, p: torch.Tensor, candidates: torch.Tensor,
                    boxes_xywh: Any, q: torch.Tensor | None = None,
                    partner_count: int = 6) -> RelationTotals:
    """R_i = Σ_j r(i, j) over the partners j (spec §7.2–7.3, paper Eq. 4–5).

    Partners: with other nouns (``q`` given) the ``partner_count`` masks with the highest q,
    weight q_j; without, the candidates themselves, weight p_j. ``r(i, j) = p_i·w_j·f(i, j)``
    with f of the relation, and ``r(i, j) = p_i`` for 'none', so R_i = P·p_i over P partners
    (softmax(R) is then sharper than softmax(p), as in the released code).

    Args:
        relation: one of ``types.RELATIONS``.
        p: (N,) float, matching probabilities over all masks.
        candidates: (K,) int64 indices into the masks.
        boxes_xywh: (N, 4) x, y, width, height in pixels (tensor or array), image y down.
        q: (N,) float other-noun probabilities, or None when there is no other noun.
        partner_count: partners taken by q (lowered to N for this image only).

    Returns:
        The partners, their weights and (K,) R in float32 (or p's dtype if wider), on p's device.
    """
    if relation not in RELATIONS:
        raise InvalidInputError(f'unknown relation {relation!r}; expected one of {RELATIONS}')
    # float32 at least: box areas overflow float16.
    dtype = torch.promote_types(p.dtype, torch.float32)
    p_candidates = p[candidates].to(dtype)  # (K,)
    if q is None:
        partners, weights = candidates, p_candidates
    else:
        partners = select_candidates(q, partner_count)
        weights = q[partners].to(dtype)  # (P,)
    if relation == 'none':
        return RelationTotals(partners, weights, p_candidates * partners.shape[0])
    boxes = torch.as_tensor(boxes_xywh, device=p.device).to(dtype).reshape(-1, 4)
    pair = pair_factor(relation, boxes[candidates], boxes[partners])  # (K, P)
    return RelationTotals(partners, weights, p_candidates * (pair.to(dtype) @ weights))


def pair_factor(relation: str, box_i: torch.Tensor, box_j: torch.Tensor) -> torch.Tensor:
    """f(i, j) of spec §7.3 for every candidate box i (K, 4) and partner box j (P, 4): (K, P)."""
    if relation == 'within':
        return _overlap_fraction(box_i, box_j)
    if relation in ('left', 'right'):
        a, b = _centres(box_i)[0][:, None], _centres(box_j)[0][None, :]
    elif relation in ('up', 'down'):
        a, b = _centres(box_i)[1][:, None], _centres(box_j)[1][None, :]
    else:
        a, b = _areas(box_i)[:, None], _areas(box_j)[None, :]
    if relation in ('left', 'up', 'small'):
        return a < b
    return a > b


def aligned_factor(relation: str, box_i: torch.Tensor, box_j: torch.Tensor) -> torch.Tensor:
    """(K, P) bool: candidate i lies *mostly* in the relation's direction from partner j —
    on the said side (``pair_factor``) with the centres' offset along the direction larger
    than across it (within 45° of it: "left of" a ball straight to its left, not one far
    above it and a little to the left). Other relations: ``pair_factor`` as it is."""
    factor = pair_factor(relation, box_i, box_j)
    if relation not in POSITION_RELATIONS:
        return factor
    (xi, yi), (xj, yj) = _centres(box_i), _centres(box_j)
    dx = (xi[:, None] - xj[None, :]).abs()
    dy = (yi[:, None] - yj[None, :]).abs()
    along, across = (dx, dy) if relation in ('left', 'right') else (dy, dx)
    return factor.bool() & (along > across)


def _centres(boxes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(cx, cy) of (M, 4) XYWH boxes, each (M,)."""
    return boxes[:, 0] + boxes[:, 2] / 2, boxes[:, 1] + boxes[:, 3] / 2


def _areas(boxes: torch.Tensor) -> torch.Tensor:
    return boxes[:, 2] * boxes[:, 3]


def _overlap_fraction(box_i: torch.Tensor, box_j: torch.Tensor) -> torch.Tensor:
    """area(b_i ∩ b_j) / area(b_i): (K, P), 0 without overlap or when area(b_i) = 0."""
    lo = torch.maximum(box_i[:, None, :2], box_j[None, :, :2])  # (K, P, 2)
    hi = torch.minimum(box_i[:, None, :2] + box_i[:, None, 2:],
                       box_j[None, :, :2] + box_j[None, :, 2:])
    intersection = (hi - lo).clamp(min=0).prod(dim=-1)  # (K, P)
    area_i = _areas(box_i)[:, None]
    return torch.where(area_i > 0, intersection / area_i.clamp(min=1e-12),
                       torch.zeros_like(intersection))


def position_ramp(direction: str, height: int, width: int, vertical_ramps: bool,
                  device: torch.device | str | None = None) -> torch.Tensor:
    """The position ramp P(y, x) of spec §9.

    left: 1 at x = 0 to 0 at x = W−1; right: the mirror; middle: columns 0..W//2−1 rise 0→1 and
    columns W//2..W−1 fall 1→0, end points included (W = 5: 0, 1, 1, 0.5, 0); up: 1 at y = 0
    to 0 at y = H−1 and down its mirror, both all ones unless ``vertical_ramps``; none: ones.

    Returns:
        (height, width) float32 in [0, 1].
    """
    if direction not in DIRECTIONS:
        raise InvalidInputError(f'unknown direction {direction!r}; expected one of {DIRECTIONS}')
    kwargs = {'dtype': torch.float32, 'device': device}
    if direction in ('left', 'right', 'middle'):
        if direction == 'left':
            columns = torch.linspace(1, 0, width, **kwargs)
        elif direction == 'right':
            columns = torch.linspace(0, 1, width, **kwargs)
        else:
            half = width // 2
            columns = torch.cat([torch.linspace(0, 1, half, **kwargs),
                                 torch.linspace(1, 0, width - half, **kwargs)])
        return columns[None, :].expand(height, width).contiguous()
    if direction in ('up', 'down') and vertical_ramps:
        start, end = (1, 0) if direction == 'up' else (0, 1)
        rows = torch.linspace(start, end, height, **kwargs)
        return rows[:, None].expand(height, width).contiguous()
    return torch.ones((height, width), **kwargs)


def coherence_weighting(coherence_map: torch.Tensor, ramp: torch.Tensor) -> torch.Tensor:
    """A = map ⊙ ramp, then A / mean(A) (spec §9); an all-zero A stays zero (no NaN).

    Args:
        coherence_map: (H, W) float in [0, 1].
        ramp: (H, W) float in [0, 1].

    Returns:
        (H, W) float, mean 1 (or all zeros).
    """
    weighted = coherence_map * ramp
    mean = weighted.mean()
    return weighted / torch.where(mean > 0, mean, torch.ones_like(mean))


def guidance_map(coherence_map: torch.Tensor | None, ramp: torch.Tensor) -> torch.Tensor:
    """A of spec §9 for one query: the coherence map (ones without it) ⊙ the ramp, mean 1.

    Args:
        coherence_map: (H, W) float in [0, 1], or None (no GEM, or ``use_coherence`` off).
        ramp: (H, W) float32 position ramp from :func:`position_ramp`.

    Returns:
        (H, W) float32 on the ramp's device, mean 1 (or all zeros).
    """
    if coherence_map is None:
        coherence_map = torch.ones_like(ramp)
    return coherence_weighting(coherence_map.to(ramp), ramp)


def spatial_scores(weights: torch.Tensor, masks: Any, beta: float,
                   background: torch.Tensor | None = None) -> torch.Tensor:
    """S_n = (2 − β)·mean_{M_n} A − β·mean_{outside M_n} A (spec §10, paper Eq. 8).

    The sums accumulate in float64, so the outside sum (total − inside) keeps its precision
    when a mask covers most of the image. The mean over an empty region is 0: an empty mask has
    inside mean 0, a full-image mask outside mean 0.

    Args:
        weights: (H, W) float, A already weighted and normalised.
        masks: (N, H, W) bool, or float 0/1, as a tensor (ideally on A's device) or an array.
        beta: β.
        background: (H, W) bool or 0/1, or None: the "outside" of every mask is this common
            region instead of each mask's own complement (size comparatives, see
            :func:`common_background`).

    Returns:
        (N,) in A's dtype (at least float32), on A's device.
    """
    dtype = torch.promote_types(weights.dtype, torch.float32)
    masks = torch.as_tensor(masks, device=weights.device)
    flat_weights = weights.reshape(-1).to(torch.float64)  # (HW,)
    pixels = flat_weights.shape[0]
    inside, inside_count = _inside_sums(masks.reshape(masks.shape[0], pixels), flat_weights)
    if background is None:
        outside_count = pixels - inside_count
        outside = flat_weights.sum() - inside
    else:
        region = background.reshape(1, pixels)
        outside, outside_count = _inside_sums(region, flat_weights)
        outside, outside_count = outside.expand_as(inside), outside_count.expand_as(inside)
    inside_mean = inside / inside_count.clamp(min=1)
    outside_mean = torch.where(outside_count > 0, outside / outside_count.clamp(min=1),
                               torch.zeros_like(outside))
    return ((2 - beta) * inside_mean - beta * outside_mean).to(dtype)


def common_background(masks: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """(H, W) float 0/1: the pixels outside every candidate's mask.

    A size comparative compares candidates with each other; measured against each mask's own
    outside, S rewards the bigger mask for leaving less of its look-alike's map outside (with
    the map as high on both, S then always prefers the bigger one). Against the common
    background, S compares how well the map covers each candidate.
    """
    union = masks[candidates].amax(dim=0) if len(candidates) else masks.new_zeros(
        masks.shape[1:])
    return 1.0 - union.to(torch.float32)


def _inside_sums(flat_masks: torch.Tensor, flat_weights: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor]:
    """Σ_{p ∈ M_n} A(p) and |M_n| of (N, HW) masks, converted to float a chunk at a time."""
    step = max(1, _CHUNK_PIXELS // max(1, flat_weights.shape[0]))
    sums, counts = [flat_weights.new_zeros(0)], [flat_weights.new_zeros(0)]
    for start in range(0, flat_masks.shape[0], step):
        chunk = flat_masks[start:start + step].to(flat_weights.dtype)  # (C, HW)
        sums.append(chunk @ flat_weights)
        counts.append(chunk.sum(dim=1))
    return torch.cat(sums), torch.cat(counts).round()


def beta_for(relation: str, config: GuidanceConfig) -> float:
    """β of Eq. 8 (spec §10): ``beta_big`` for 'big', ``beta_small`` for 'small', else ``beta``."""
    if relation == 'big':
        return config.beta_big
    if relation == 'small':
        return config.beta_small
    return config.beta


def final_scores(relation_probs: torch.Tensor, spatial_candidates: torch.Tensor,
                 spatial_weight: float) -> torch.Tensor:
    """F_i = (1 − γ)·softmax(R)_i + γ·S_{n_i} (spec §10, paper Eq. 9).

    Args:
        relation_probs: (K,) softmax(R) over the candidates.
        spatial_candidates: (K,) S of the candidates, same order.
        spatial_weight: γ.

    Returns:
        (K,) F; the output mask is the candidate with the highest F.
    """
    return (1 - spatial_weight) * relation_probs + spatial_weight * spatial_candidates
