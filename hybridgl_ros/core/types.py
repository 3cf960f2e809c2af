"""The values that cross the library's edge: proposals, parsed expressions, frames, results."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

RELATIONS = ('none', 'left', 'right', 'up', 'down', 'big', 'small', 'within')
DIRECTIONS = ('none', 'left', 'right', 'middle', 'up', 'down')


def json_number(value: float) -> float | None:
    """``value`` for JSON: None for NaN ("no estimate"), else the number."""
    return None if math.isnan(value) else value


def without_nan(tree: Any) -> Any:
    """``tree`` (dicts, lists, tuples, numbers) with every non-finite float as None, so that
    strict JSON readers (JavaScript's, Python's with ``parse_constant`` refusing) read it: the
    centroid of "not found" is NaN."""
    if isinstance(tree, (float, np.floating)):
        return float(tree) if math.isfinite(tree) else None
    if isinstance(tree, dict):
        return {key: without_nan(value) for key, value in tree.items()}
    if isinstance(tree, (list, tuple)):
        return [without_nan(value) for value in tree]
    return tree


@dataclass(frozen=True)
class Proposals:
    """Mask proposals of one image, in SAM's output order.

    Attributes:
        masks: (N, H, W) bool, at the size of the image they were made for.
        boxes_xywh: (N, 4) int64, x, y, width, height in pixels (SAM's ``bbox``: width =
            x_max - x_min with an inclusive x_max, one less than the pixels spanned).
        scores: (N,) float32, SAM's predicted IoU (informative only).
        restorer: None, or what rebuilds proposal i at another resolution:
            ``len(restorer)`` proposals (the first ones) and ``restorer.mask(i, (H, W))`` ->
            (H, W) bool (SAM's logits, see ``mask_generation.LogitRestorer``).
    """

    masks: np.ndarray
    boxes_xywh: np.ndarray
    scores: np.ndarray
    restorer: Any = None

    def __len__(self) -> int:
        return int(self.masks.shape[0])

    @classmethod
    def empty(cls, height: int, width: int) -> 'Proposals':
        return cls(np.zeros((0, height, width), bool), np.zeros((0, 4), np.int64),
                   np.zeros((0,), np.float32))


@dataclass(frozen=True)
class ParsedExpression:
    """One spaCy parse of a referring expression (spec §5, §7.1, §9).

    Attributes:
        normalized: T', lower-cased tokens joined by single spaces.
        head_phrase: NP, the head noun phrase (T' itself when no chunk qualifies).
        other_phrases: O_k, the other noun phrases in sentence order.
        relation: one of RELATIONS.
        direction: one of DIRECTIONS.
        cannot_check: default mode: why the method cannot check this expression (a
            negation, no target before the place it names), '' when it can; such an
            expression is answered "not found" with this as the message.
    """

    normalized: str
    head_phrase: str
    other_phrases: tuple[str, ...] = ()
    relation: str = 'none'
    direction: str = 'none'
    cannot_check: str = ''


@dataclass
class Frame:
    """Everything text-independent about one image (spec §13), reused by every query on it.

    A frame larger than the pixel budget (``proposals.max_working_pixels``) is processed at a
    smaller *working* size (see ``core/resolution.py``): its proposals, mask tensor and
    spatial scores are at that size, ``mask(i)`` gives a proposal at the image's own size.

    Attributes:
        image_size: (height, width) of the source image.
        proposals: the SAM masks and boxes, at the working size.
        mask_features: (N, D) float32 torch tensor, v_n (not normalised), on the model's device.
        gem_tokens: (P, D) float32 torch tensor, L2-normalised GEM patch tokens, or None.
        gem_grid: (rows, cols) of the GEM patch grid.
        timings_ms: stage name -> milliseconds spent preparing this frame.
        mask_tensor: (N, h, w) bool torch tensor of the masks on the model's device.
        dropped: why the frame's state was released (e.g. out of memory), '' while usable.
    """

    image_size: tuple[int, int]
    proposals: Proposals
    mask_features: Any
    gem_tokens: Any = None
    gem_grid: tuple[int, int] = (0, 0)
    timings_ms: dict[str, float] = field(default_factory=dict)
    mask_tensor: Any = None
    dropped: str = ''

    @property
    def working_size(self) -> tuple[int, int]:
        """(h, w) the method ran at: ``image_size`` unless the frame was downscaled."""
        return tuple(int(v) for v in self.proposals.masks.shape[1:])

    def mask(self, index: int) -> np.ndarray:
        """Proposal ``index`` as an (H, W) bool mask at ``image_size``."""
        from hybridgl_ros.core.resolution import full_resolution_mask

        return full_resolution_mask(self.proposals, index, self.image_size)

    def release(self, reason: str) -> None:
        """Drops the masks, features and GEM tokens (their memory); queries then refuse."""
        height, width = self.working_size
        self.proposals = Proposals.empty(height, width)
        self.mask_features = self.gem_tokens = self.mask_tensor = None
        self.dropped = reason


@dataclass(frozen=True)
class Explanation:
    """Why a mask was chosen: every intermediate of one query (spec §5–§10), as numpy arrays.

    N = proposals, K = candidates, P = relation partners, (H, W) = the image, side = GEM's
    input side (448 for ViT-B/16). Float arrays are float32.

    Attributes:
        parse: the parsed expression (T', NP, other phrases, relation and direction words).
        relation: the relation that drove R and β, after the ablation switches.
        direction: the direction that drove the ramp, after the ablation switches.
        beta: β of Eq. 8.
        text_features: (D,) CLIP text features, not normalised: 'sentence' E(T'), 'head'
            E(NP), 'target' t, 'gem' E(GEM prompt), 'other' u (None without other phrases).
        similarities: (N,) s = 100·cos(v_n, t).
        matching_probs: (N,) p = softmax(s).
        other_probs: (N,) q, or None without other phrases.
        candidates: (K,) int64 top-k masks by p, best first.
        partners: (P,) int64 relation partners (top q, or the candidates).
        partner_weights: (P,) w_j.
        relation_totals: (K,) R.
        relation_probs: (K,) softmax(R).
        coherence_input_map: (side, side) GEM map in [0, 1], or None without GEM.
        coherence_map: (H, W) GEM map in [0, 1], or None without GEM.
        position_ramp: (H, W) P in [0, 1].
        guidance_map: (H, W) A = map ⊙ P, mean 1.
        spatial_scores: (N,) S of Eq. 8.
        final_scores: (K,) F of Eq. 9, candidates' order.
        chosen: the method's choice (argmax F over the candidates, a proposal index).
        pure_index: argmax of s.
        boxes_xywh: (N, 4) int64 the proposals' boxes (what the relations compare).
        decision: what the decision step (core/decision.py) saw and did: its signals, P(target
            present), the rule that made the answer; None before it ran.
        lookalike_relation: the relation R was judged with among look-alikes (default mode:
            size or position words without an anchor phrase, README), or 'none': the spec's R.
    """

    parse: ParsedExpression
    relation: str
    direction: str
    beta: float
    text_features: dict[str, np.ndarray | None]
    similarities: np.ndarray
    matching_probs: np.ndarray
    other_probs: np.ndarray | None
    candidates: np.ndarray
    partners: np.ndarray
    partner_weights: np.ndarray
    relation_totals: np.ndarray
    relation_probs: np.ndarray
    coherence_input_map: np.ndarray | None
    coherence_map: np.ndarray | None
    position_ramp: np.ndarray
    guidance_map: np.ndarray
    spatial_scores: np.ndarray
    final_scores: np.ndarray
    chosen: int
    pure_index: int
    boxes_xywh: np.ndarray
    decision: dict[str, Any] | None = None
    lookalike_relation: str = 'none'

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary: every per-proposal and per-candidate value, no maps."""
        def floats(values):
            return None if values is None else [float(v) for v in values]

        return {
            'relation': self.relation, 'direction': self.direction, 'beta': self.beta,
            'lookalike_relation': self.lookalike_relation,
            'text_feature_norms': {k: None if v is None else float(np.linalg.norm(v))
                                   for k, v in self.text_features.items()},
            'similarities': floats(self.similarities),
            'matching_probs': floats(self.matching_probs),
            'other_probs': floats(self.other_probs),
            'candidates': [int(v) for v in self.candidates],
            'partners': [int(v) for v in self.partners],
            'partner_weights': floats(self.partner_weights),
            'relation_totals': floats(self.relation_totals),
            'relation_probs': floats(self.relation_probs),
            'spatial_scores': floats(self.spatial_scores),
            'final_scores': floats(self.final_scores),
            'chosen': self.chosen, 'pure_index': self.pure_index,
            'boxes_xywh': np.asarray(self.boxes_xywh).tolist(), 'decision': self.decision}


@dataclass(frozen=True)
class Alternative:
    """Another object the expression fits about as well as the answer (a near tie).

    Attributes:
        index: its proposal index.
        box_xywh: (x, y, width, height) pixels of its SAM box.
        interior_xy: (x, y) of its mask pixel farthest from its boundary: a point on it.
        score: its F (Eq. 9), comparable with the answer's ``score``; NaN when it is not
            among the method's candidates (the top K by s; F is computed for those only).
        confidence: P(it is what the expression refers to), like the answer's ``confidence``.
    """

    index: int
    box_xywh: tuple[int, int, int, int]
    interior_xy: tuple[int, int]
    score: float
    confidence: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return {'index': self.index, 'box_xywh': list(self.box_xywh),
                'interior_xy': list(self.interior_xy), 'score': json_number(self.score),
                'confidence': json_number(self.confidence)}


@dataclass(frozen=True)
class Segmentation:
    """The answer to one query. ``found=False`` ("no object") is a normal outcome.

    Attributes:
        found: whether a mask was chosen; False also when the expression's target is judged
            absent ("no 'elephant' in view", in ``message``).
        text: the expression as asked.
        mask: (H, W) bool, the chosen SAM mask at full resolution (all False if not found).
        box_xywh: (x, y, width, height) pixels of the chosen mask's SAM box (width = x_max -
            x_min, inclusive x_max: one less than the pixels spanned; likewise height).
        score: F of the chosen candidate (Eq. 9), 0.0 if not found.
        centroid_xy: mean (x, y) pixel of the mask; may lie outside a ring-shaped mask.
        interior_xy: (x, y) of the mask pixel farthest from its boundary: a point on the object.
        index: the chosen proposal (into the frame's proposals), -1 if not found.
        pure_index: argmax of s_n ("pure HybridGL", no spatial guidance), -1 if none.
        matching_probs: (N,) p = softmax(s) over all proposals.
        spatial_scores: (N,) S_n of Eq. 8 over all proposals.
        candidate_indices: the k candidates, best p first.
        candidate_scores: F of each candidate.
        parse: the parsed expression.
        timings_ms: stage name -> milliseconds (frame stages included when computed for it).
        message: a human-readable remark (why nothing was found, text truncated, ...).
        explanation: every intermediate of the query, when asked for (``explain=True``).
        confidence: P(this answer is right) in [0, 1], calibrated (README): for a found object
            that it is the one referred to, for "not found" that nothing fits; NaN when there
            is no estimate (no proposals, or the calibration is for other CLIP weights).
        ambiguous: the expression fits other objects about as well (see ``alternatives``): a
            planner should ask "which one?".
        alternatives: those near-tied objects, best first (empty unless ``ambiguous``).
    """

    found: bool
    text: str
    mask: np.ndarray
    box_xywh: tuple[int, int, int, int]
    score: float
    centroid_xy: tuple[float, float]
    interior_xy: tuple[int, int]
    index: int
    pure_index: int
    matching_probs: np.ndarray
    spatial_scores: np.ndarray
    candidate_indices: tuple[int, ...]
    candidate_scores: tuple[float, ...]
    parse: ParsedExpression
    timings_ms: dict[str, float]
    message: str = ''
    explanation: Explanation | None = None
    confidence: float = float('nan')
    ambiguous: bool = False
    alternatives: tuple[Alternative, ...] = ()

    @classmethod
    def not_found(cls, text: str, parse: ParsedExpression, image_size: tuple[int, int],
                  proposal_count: int, message: str,
                  timings_ms: dict[str, float] | None = None,
                  confidence: float = float('nan')) -> 'Segmentation':
        """The "no object" answer: an empty mask of ``image_size`` (height, width), zero scores
        for each of the ``proposal_count`` proposals."""
        height, width = image_size
        return cls(
            found=False, text=text, mask=np.zeros((height, width), bool),
            box_xywh=(0, 0, 0, 0), score=0.0, centroid_xy=(float('nan'), float('nan')),
            interior_xy=(-1, -1), index=-1, pure_index=-1,
            matching_probs=np.zeros(proposal_count, np.float32),
            spatial_scores=np.zeros(proposal_count, np.float32), candidate_indices=(),
            candidate_scores=(), parse=parse, timings_ms=timings_ms or {}, message=message,
            confidence=confidence)

    def to_dict(self, include_mask: bool = False) -> dict[str, Any]:
        """A JSON-ready summary (the mask itself only if asked, as a nested list)."""
        out = {
            'found': self.found, 'text': self.text, 'box_xywh': list(self.box_xywh),
            'score': self.score, 'centroid_xy': list(self.centroid_xy),
            'interior_xy': list(self.interior_xy), 'index': self.index,
            'pure_index': self.pure_index, 'mask_area_px': int(self.mask.sum()),
            'matching_probs': [float(v) for v in self.matching_probs],
            'spatial_scores': [float(v) for v in self.spatial_scores],
            'candidate_indices': list(self.candidate_indices),
            'candidate_scores': list(self.candidate_scores),
            'parse': {
                'normalized': self.parse.normalized, 'head_phrase': self.parse.head_phrase,
                'other_phrases': list(self.parse.other_phrases),
                'relation': self.parse.relation, 'direction': self.parse.direction},
            'timings_ms': dict(self.timings_ms), 'message': self.message,
            'confidence': self.confidence,
            'ambiguous': self.ambiguous,
            'alternatives': [a.to_dict() for a in self.alternatives]}
        if self.explanation is not None:
            out['explanation'] = self.explanation.to_dict()
        out = without_nan(out)                 # strict JSON: null where there is no number
        if include_mask:
            out['mask'] = self.mask.astype(np.uint8).tolist()
        return out
