"""Per-query scoring on a prepared frame (spec §6–§10): s, p, q, R, the maps, S and F.

:func:`score_query` runs the steps in the paper's order and keeps every intermediate in a
:class:`QueryScores` (torch tensors on the model's device). The pipeline reads the choice from
it; :meth:`QueryScores.explanation` turns it into the numpy :class:`~hybridgl_ros.core.types.
Explanation` a user asks for with ``query(..., explain=True)``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from hybridgl_ros.core import guidance as g
from hybridgl_ros.core import lookalikes as la
from hybridgl_ros.core.config import HybridGLConfig
from hybridgl_ros.core.gem import coherence_input_map, resize_coherence_map
from hybridgl_ros.core.presence import look_readings, weakest_word_standout
from hybridgl_ros.core.types import Explanation, Frame, ParsedExpression


@dataclass(frozen=True)
class TextFeatures:
    """The CLIP text features of one query (spec §5.4), each (D,) float32, not normalised.

    Attributes:
        sentence: E(T').
        head: E(NP).
        target: t = w·E(T') + (1 − w)·E(NP).
        gem: E of the GEM prompt ("a photo of a {NP}.").
        other: u = mean_k E("a photo of " + O_k), or None without other noun phrases.
        comparison: the target feature of the phrase without its size or position words
            ("the red ball" for "the smaller red ball", "the cube" for "the cube on the
            left"), or None when the query is not judged among look-alikes (see
            :func:`comparison_phrases`).
        names_known_word: the target phrase has a content word the text encoder knows
            (``TextEncoder.knows_a_word``); "the the of", "?!" and, for the demo CLIP, words
            outside its vocabulary do not.
        anchor_names_known_word: every other noun phrase has such a word (True without any).
        words: (W, D) E of each word of the target phrase that says what the object looks
            like (``TextEncoder.content_words``: "red", "ball"), or None without any; the
            decision reads how far the answer stands out for each of them.
        contrast: (1 + C, D) E of the look phrase (:func:`look_phrase`) and of its contrasts
            (:func:`contrast_phrases`: its colour word, then its object word, swapped for the
            others of ``decision.contrast_colours`` / ``contrast_objects``), or None without
            any contrast.
        contrast_counts: how many of the contrasts swap a colour word, an object word.
        contrast_phrases: the contrasts' phrases, in the rows' order (after the look phrase).
        anchor_contrast: (1 + C, D) E of the first anchor phrase's look ("the blue ball" of
            "the cube left of the blue ball") and of its contrasts, as ``contrast`` is of the
            target's; None without an anchor phrase or without a contrast word in it.
        anchor_contrast_counts: how many of them swap a colour word, an object word.
        other_words: per other noun phrase with look words, (W_k, D) E of each of them
            ("red", "star" of "the red star"); empty unless ``guidance.anchor_by_words`` in
            default mode (q then reads them, :func:`anchor_logits`).
    """

    sentence: torch.Tensor
    head: torch.Tensor
    target: torch.Tensor
    gem: torch.Tensor
    other: torch.Tensor | None
    comparison: torch.Tensor | None = None
    names_known_word: bool = True
    anchor_names_known_word: bool = True
    words: torch.Tensor | None = None
    contrast: torch.Tensor | None = None
    contrast_counts: tuple[int, int] = (0, 0)
    contrast_phrases: tuple[str, ...] = ()
    anchor_contrast: torch.Tensor | None = None
    anchor_contrast_counts: tuple[int, int] = (0, 0)
    other_words: tuple[torch.Tensor, ...] = ()


def _without(phrase: str, words: frozenset[str]) -> str:
    """``phrase`` without ``words`` (all of it when nothing would be left)."""
    return ' '.join(w for w in phrase.split() if w not in words) or phrase


def look_phrase(parse: ParsedExpression) -> str:
    """The target phrase without its size or position words: what the object looks like ("the
    red cube" of "the smaller red cube", "the cube" of "the cube on the left")."""
    return _without(parse.head_phrase, g.SIZE_WORDS | g.POSITION_WORDS)


def contrast_phrases(phrase: str, vocabulary: str, knows) -> list[str]:
    """``phrase`` with each of its words of ``vocabulary`` (space-separated words that exclude
    one another) swapped for every other word of it: "the red cube" with "red green blue" →
    ["the green cube", "the blue cube"]. Words ``knows(word)`` rejects (the text encoder has
    no embedding for them) are not in the vocabulary."""
    group = [w for w in dict.fromkeys(vocabulary.split()) if knows(w)]
    words = phrase.split()
    return [' '.join(words[:k] + [other] + words[k + 1:])
            for k, word in enumerate(words) if word in group
            for other in group if other != word]


def _contrast_rows(look: str, encoder, config: HybridGLConfig
                   ) -> tuple[list[str], tuple[list[str], list[str]]]:
    """([look, *colour swaps, *object swaps] or [] without any swap, (the colour swaps, the
    object swaps)) of a look phrase (:func:`contrast_phrases` with the decision's
    vocabularies)."""
    colours = contrast_phrases(look, config.decision.contrast_colours, encoder.knows_a_word)
    objects = contrast_phrases(look, config.decision.contrast_objects, encoder.knows_a_word)
    return ([look, *colours, *objects] if colours or objects else []), (colours, objects)


def comparison_phrases(parse: ParsedExpression, config: HybridGLConfig
                       ) -> tuple[str, str] | None:
    """T' and NP without the size or position words, when the query is judged among
    look-alikes (``GuidancePlan.lookalike_relation``, default mode); else None.

    A size comparative drops its word from both ("the smaller red ball" → "the red ball"); a
    position query keeps NP without its position words for both ("the cube on the left side",
    "the left cube" → "the cube"): T' holds them in phrases that make no sense alone.
    """
    plan = g.plan_guidance(parse, config.guidance, config.reference)
    if plan.lookalike_relation == 'none':
        return None

    if plan.size_comparative:
        return (_without(parse.normalized, g.SIZE_WORDS),
                _without(parse.head_phrase, g.SIZE_WORDS))
    head = _without(parse.head_phrase, g.POSITION_WORDS)
    return head, head


def prompts(parse: ParsedExpression, config: HybridGLConfig) -> tuple[str, list[str]]:
    """(the GEM prompt of the head phrase, the other phrases' prompts): the strings built from
    the text that the text encoder reads beside it (``gem.prompt``, ``text.other_prompt``)."""
    return (config.gem.prompt.format(parse.head_phrase),
            [config.text.other_prompt.format(o) for o in parse.other_phrases])


def text_features(encoder, parse: ParsedExpression, config: HybridGLConfig) -> TextFeatures:
    """E of every string the query needs, in one text-encoder batch (spec §5.4).

    Args:
        encoder: a :class:`~hybridgl_ros.core.text_features.TextEncoder`.
    """
    cfg = config.text
    gem_text, others = prompts(parse, config)
    comparison = comparison_phrases(parse, config) or ()
    words = encoder.content_words(parse.head_phrase)
    contrast, (colours, objects) = _contrast_rows(look_phrase(parse), encoder, config)
    anchor_contrast, (anchor_colours, anchor_objects) = (
        _contrast_rows(_without(parse.other_phrases[0], g.SIZE_WORDS | g.POSITION_WORDS),
                       encoder, config) if parse.other_phrases else ([], ([], [])))
    by_words = config.guidance.anchor_by_words and not config.reference
    anchor_words = [w for w in (encoder.content_words(o) for o in parse.other_phrases)
                    if w] if by_words else []
    e = encoder.encode([parse.normalized, parse.head_phrase, gem_text, *others,
                        *comparison, *words, *contrast, *anchor_contrast,
                        *(w for phrase in anchor_words for w in phrase)])  # (B, D)
    w = cfg.sentence_weight
    other = e[3:3 + len(others)].mean(0) if others else None
    c = 3 + len(others)
    k = c + len(comparison) + len(words)
    a = k + len(contrast)                   # the anchor's contrasts, then its words
    anchor_rows = e[a:a + len(anchor_contrast)] if anchor_contrast else None
    a += len(anchor_contrast)
    other_words = []
    for phrase in anchor_words:
        other_words.append(e[a:a + len(phrase)])
        a += len(phrase)
    return TextFeatures(sentence=e[0], head=e[1], target=w * e[0] + (1.0 - w) * e[1],
                        gem=e[2], other=other,
                        comparison=w * e[c] + (1.0 - w) * e[c + 1] if comparison else None,
                        names_known_word=encoder.knows_a_word(parse.head_phrase),
                        anchor_names_known_word=all(encoder.knows_a_word(o)
                                                    for o in parse.other_phrases),
                        words=e[c + len(comparison):k] if words else None,
                        contrast=e[k:k + len(contrast)] if contrast else None,
                        contrast_counts=(len(colours), len(objects)),
                        contrast_phrases=(*colours, *objects), anchor_contrast=anchor_rows,
                        anchor_contrast_counts=(len(anchor_colours), len(anchor_objects)),
                        other_words=tuple(other_words))


@dataclass(frozen=True)
class QueryScores:
    """Every intermediate of one query (tensors on the model's device).

    Attributes:
        plan: the guidance the query got (relation, direction, β, switches).
        similarities: (N,) s = logit_scale·cos(v_n, t).
        matching_probs: (N,) p = softmax(s).
        other_probs: (N,) q, or None without other noun phrases.
        candidates: (K,) int64, the top-k masks by p, best first.
        relation: R with its partners (spec §7.3).
        relation_probs: (K,) softmax(R).
        coherence_input: (side, side) coherence map at GEM's input side, or None.
        coherence: (H, W) coherence map, or None (no GEM, or ``use_coherence`` off).
        ramp: (H, W) position ramp P.
        guidance_map: (H, W) A = map ⊙ P / mean.
        spatial: (N,) S of Eq. 8.
        final: (K,) F of Eq. 9, candidates' order.
        class_similarities: (N,) s^c = logit_scale·cos(v_n, the comparison feature) when the
            query is judged among look-alikes (``TextFeatures.comparison``), else None.
    """

    plan: g.GuidancePlan
    similarities: torch.Tensor
    matching_probs: torch.Tensor
    other_probs: torch.Tensor | None
    candidates: torch.Tensor
    relation: g.RelationTotals
    relation_probs: torch.Tensor
    coherence_input: torch.Tensor | None
    coherence: torch.Tensor | None
    ramp: torch.Tensor
    guidance_map: torch.Tensor
    spatial: torch.Tensor
    final: torch.Tensor
    class_similarities: torch.Tensor | None = None

    @property
    def chosen(self) -> int:
        """The output mask: the candidate with the highest F."""
        return int(self.candidates[int(torch.argmax(self.final))])

    @property
    def pure_index(self) -> int:
        """argmax of s: "pure HybridGL", no spatial guidance."""
        return int(torch.argmax(self.similarities))

    def explanation(self, parse: ParsedExpression, text: TextFeatures,
                    boxes_xywh: np.ndarray, decision=None) -> Explanation:
        """The numpy view of these scores (and of the decision made of them, if given), for
        ``query(..., explain=True)``.

        Args:
            parse: the parsed expression.
            text: its text features.
            boxes_xywh: (N, 4) the frame's proposal boxes.
            decision: the query's :class:`~hybridgl_ros.core.decision.Decision`, or None.
        """
        def arr(value):
            return None if value is None else value.detach().float().cpu().numpy()

        return Explanation(
            parse=parse, relation=self.plan.relation, direction=self.plan.direction,
            beta=self.plan.beta,
            text_features={'sentence': arr(text.sentence), 'head': arr(text.head),
                           'target': arr(text.target), 'gem': arr(text.gem),
                           'other': arr(text.other),
                           'other_words': (np.concatenate([arr(w) for w in text.other_words])
                                           if text.other_words else None)},
            similarities=arr(self.similarities), matching_probs=arr(self.matching_probs),
            other_probs=arr(self.other_probs),
            candidates=self.candidates.cpu().numpy().astype(np.int64),
            partners=self.relation.partners.cpu().numpy().astype(np.int64),
            partner_weights=arr(self.relation.partner_weights),
            relation_totals=arr(self.relation.totals), relation_probs=arr(self.relation_probs),
            coherence_input_map=arr(self.coherence_input), coherence_map=arr(self.coherence),
            position_ramp=arr(self.ramp), guidance_map=arr(self.guidance_map),
            spatial_scores=arr(self.spatial), final_scores=arr(self.final),
            chosen=self.chosen, pure_index=self.pure_index,
            boxes_xywh=np.asarray(boxes_xywh, np.int64),
            decision=None if decision is None else decision.summary(),
            lookalike_relation=self.plan.lookalike_relation)


def score_query(frame: Frame, parse: ParsedExpression, text: TextFeatures,
                config: HybridGLConfig, gem_input_side: int) -> QueryScores:
    """Scores every proposal of a frame with at least one proposal (spec §6–§10).

    Args:
        frame: the prepared frame (masks, mask features, GEM tokens).
        parse: the parsed expression.
        text: its text features.
        config: the method's configuration (text, guidance, parity).
        gem_input_side: GEM's input side in pixels (448 for ViT-B/16).
    """
    cfg = config.guidance
    s = _similarities(frame.mask_features, text.target, config.text.logit_scale)
    p = torch.softmax(s, dim=0)
    q = (None if text.other is None else torch.softmax(
        anchor_logits(frame.mask_features, text, config.text.logit_scale), dim=0))
    plan = g.plan_guidance(parse, cfg, config.reference)
    candidates = g.select_candidates(p, cfg.candidate_count)
    boxes = torch.as_tensor(frame.proposals.boxes_xywh, dtype=torch.float32, device=p.device)
    background = s_class = lookalikes = None
    if text.comparison is not None and plan.lookalike_relation != 'none':
        s_class = _similarities(frame.mask_features, text.comparison, config.text.logit_scale)
        p_class = torch.softmax(s_class, dim=0)
        first = p
        if plan.lookalike_relation in g.POSITION_RELATIONS and cfg.lookalike_margin > 0:
            reading = look_readings(F.normalize(frame.mask_features.float(), dim=-1), text,
                                    config.text.logit_scale)
            named = None
            if reading is not None and cfg.lookalike_reach > cfg.lookalike_margin:
                named = (reading > 0.5) & (s_class >= s_class.max() - cfg.lookalike_reach)
            candidates, among = la.lookalike_candidates(
                s_class, p, cfg.lookalike_margin, cfg.partner_count, candidates, named)
            if among and reading is not None and cfg.positions_by_geometry:
                first = reading
        relation = la.comparative_totals(plan.lookalike_relation, first, p_class, candidates,
                                         boxes, la.same_object(frame.mask_tensor, candidates))
        if plan.size_comparative:
            near = la.lookalikes_among(s_class, candidates, cfg.size_lookalike_margin)
            # with one look-alike there is nothing to compare: S tells it from the others
            lookalikes = near if len(near) >= 2 else None
            background = g.common_background(
                frame.mask_tensor, candidates if lookalikes is None else lookalikes)
    else:
        relation = g.relation_totals(plan.relation, p, candidates, boxes, q=q,
                                     partner_count=cfg.partner_count)
    relation_probs = torch.softmax(relation.totals, dim=0)
    coherence_input = coherence = None
    if plan.use_coherence and frame.gem_tokens is not None:
        coherence_input = coherence_input_map(frame.gem_tokens, frame.gem_grid, text.gem,
                                              gem_input_side)
        coherence = resize_coherence_map(coherence_input, frame.working_size)
    height, width = frame.working_size   # the masks' size (the image's unless downscaled)
    ramp = g.position_ramp(plan.direction, height, width, plan.vertical_ramps, p.device)
    weights = g.guidance_map(coherence, ramp)
    spatial = g.spatial_scores(weights, frame.mask_tensor, plan.beta, background)
    if lookalikes is not None:
        spatial = la.pooled_among(spatial, lookalikes)
    final = g.final_scores(relation_probs, spatial[candidates], cfg.spatial_weight)
    return QueryScores(plan, s, p, q, candidates, relation, relation_probs, coherence_input,
                       coherence, ramp, weights, spatial, final, s_class)


def anchor_logits(features: torch.Tensor, text: TextFeatures, logit_scale: float
                  ) -> torch.Tensor:
    """(N,) the logits of q: s_u = logit_scale·cos(v_n, u) (spec §7.2), or with the anchor
    phrases' look words (``text.other_words``) (s_u + a_n) / 2, a_n = the mean over the anchor
    phrases of mask n's standout for the phrase's weakest look word
    (:func:`~hybridgl_ros.core.presence.weakest_word_standout`). The whole phrase's s follows
    what the encoder sees most of ("star" on a big purple star for "the red star"); the weakest
    word asks that every word fit."""
    s_u = _similarities(features, text.other, logit_scale)
    if not text.other_words:
        return s_u
    v = F.normalize(features.float(), dim=-1)
    a = torch.stack([weakest_word_standout(v, words.to(v.device), logit_scale)
                     for words in text.other_words]).mean(dim=0)
    return (s_u + a.to(s_u.dtype)) / 2


def _similarities(features: torch.Tensor, text_feature: torch.Tensor,
                  logit_scale: float) -> torch.Tensor:
    """(N,) logit_scale·cos(v_n, x) of (N, D) mask features and a (D,) text feature."""
    v = F.normalize(features, dim=-1)
    return logit_scale * (v @ F.normalize(text_feature, dim=0))
