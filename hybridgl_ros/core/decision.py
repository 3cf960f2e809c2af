"""The answer a planner can trust: "not there", "which one?" and a calibrated confidence.

After the method has scored a query (:func:`~hybridgl_ros.core.scoring.score_query`, spec
§6-§10), :func:`decide` turns its scores into the answer:

1. **Choice.** The candidate with the highest F (spec §10). In default mode, when the
   expression relates the target to an anchor phrase ("the cube left of the blue ball"), the
   relation must hold: the answer is the best-F candidate that matches the target about as
   well as the best match (``match_margin``) and lies as the relation says of its anchors
   (probability-weighted over the relation's partners, spec §7.2) — one lying mostly in its
   direction first (``relation_aligned_first``, with its guards:
   :meth:`~hybridgl_ros.core.candidates.CandidateView.choose`); if none does, the relation
   *fails*, and the answer is "not found" whatever P(present) says
   (``decision.relation_fails_absent``: what the expression refers to is not there).
2. **Presence.** P(target present) = σ(w·x + b) on x = (best s, best anchor s, has anchor,
   relation fails, standout, word standout, colour contrast, object contrast, names a
   contrast colour, names a contrast object, and best s, standout and word standout again
   for a phrase naming a contrast colour and for an anchored expression: each phrase form its
   own slopes; then the anchor's colour and object contrasts and its word standout, at its
   best mask by q; last the object contrast again for a plain target phrase, naming no
   contrast colour and with no anchor: its own slope; the signals are computed in
   ``core/presence.py``), s = 100·cos(v_n, t) as in
   spec §6, the anchor's s with u (an anchor: an other noun phrase that is not a part of the
   picture — "the left
   side" of "the cube on the left side" is always there), standout = best s − the mean s of
   the image's other masks (a target that is there stands out from the rest of its image),
   and word standout = min over the target phrase's look words w ("green", "star" of "the
   green star") of s(answer, w) − mean_n s(n, w): a green ball answering "the green star"
   beside a red star stands out for "green" but not for "star", which the whole phrase's s,
   high on the colour, hides. When the query is judged among look-alikes ("the bigger purple
   star", "the cube on the left"), best s and standout are those of the phrase without its
   size or position words ("the purple star", "the cube"): those words say which look-alike,
   not what is there. The contrasts ask the mask that best fits the look phrase ("the red
   cube") whether another colour or object word fits it better ("the blue cube", "the red
   ball": ``decision.contrast_colours``, ``contrast_objects``): a comparison within one
   mask, less tied than s's level to how a camera or renderer draws things; the anchor's
   contrasts ask the same of the anchor phrase ("the blue ball" of "the cube left of the blue
   ball") at the anchor's best mask by q, and the anchor's word standout asks that mask
   whether it stands out for each of the anchor's look words ("blue" and "ball"). Below the
   threshold of the expression's form (``presence_threshold`` for a target phrase naming a
   colour, ``presence_threshold_plain`` for one naming none, ``presence_threshold_anchored``
   with an anchor phrase: ``presence.phrase_form``) the answer is "not found" ("no
   'elephant' in view").
3. **Near ties.** Other objects (not overlapping the answer) whose s is within
   ``ambiguity_margin`` of the answer's — and, when a relation or position word should have
   told them apart, whose F is within ``guided_ambiguity_margin`` — are the alternatives;
   with any, the answer is ambiguous. A size word of the target phrase ("the small red
   ball") tells the answer from an object whose mask is more than ``size_apart_ratio`` times
   larger (smaller for "big"): no tie; when a candidate it favours so over the answer is a
   look-alike (s within ``guidance.size_lookalike_margin``) and no position or relation word
   is there, that candidate is the answer (rule 'size'). The s margin to the nearest object
   that may tie is the ``tie_margin`` signal ``hybridgl calibrate`` fits
   ``ambiguity_margin`` on.
   Whatever the calibration, an expression whose target phrase has no content word the text
   encoder knows ("the the of", "?!.,;", for the demo CLIP a word outside its vocabulary) is
   "not found" (``TextEncoder.knows_a_word``), and so is a relation to an anchor phrase with
   none ("the ring left of the 🐘": the relation cannot be checked).
4. **Confidence.** P(right) = P(present) · P(right | present), the latter σ(w·x + b) on
   x = (s, s margin to the best other object, guided, F margin, relation fails, word
   standout, standout) of the answer (its standout: its s − the mean s of the image's other
   masks); for "not found", 1 − P(present).

The coefficients depend on the CLIP weights: ``hybridgl calibrate`` fits them on an eval
run's records; they apply only to the weights whose fingerprint (:func:`clip_fingerprint`)
is ``decision.calibrated_for``. With other weights nothing is rejected and the confidence is
NaN. Parity mode (``parity='reference'``) never rejects or changes the choice; its
ambiguity and confidence are extra information only.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from typing import Any

import logging

import numpy as np
import torch.nn.functional as F

from hybridgl_ros.core import guidance as g
from hybridgl_ros.core import presence as ps
from hybridgl_ros.core.candidates import CandidateView
from hybridgl_ros.core.config import DecisionConfig, HybridGLConfig
from hybridgl_ros.core.geometry import interior_point, mask_centroid
from hybridgl_ros.core.scoring import look_phrase
from hybridgl_ros.core.text import names_a_look
from hybridgl_ros.core.types import (
    Alternative, ParsedExpression, Segmentation, json_number)

LOG = logging.getLogger(__name__)
#: ``decision.calibrated_for`` that applies the coefficients to any CLIP weights.
ANY_WEIGHTS = 'any'

#: Relation words as a message says them ("no 'cube' left of 'the blue ball'").
RELATION_PHRASES = {'left': 'left of', 'right': 'right of', 'up': 'above', 'down': 'below',
                    'big': 'bigger than', 'small': 'smaller than', 'within': 'inside'}
DETERMINERS = ('the', 'a', 'an', 'this', 'that')
#: The size words a target phrase says its size with (after ``text.spatial_synonyms``).
SIZE_ADJECTIVES = ('small', 'big')


@dataclass(frozen=True)
class Decision:
    """What :func:`decide` made of a query's scores.

    Attributes:
        index: the answer's proposal index (-1 when not found).
        found: False when the target is judged absent.
        presence: P(target present), NaN when not calibrated for the loaded CLIP.
        confidence: P(the answer is right) in [0, 1], NaN when not calibrated.
        ambiguous: the expression fits the alternatives about as well.
        alternatives: (proposal index, confidence) of each near tie, best F first.
        message: why not found, in words ('' when found).
        rule: what made the answer: 'method' (argmax F), 'relation' (the best candidate the
            relation holds for, one lying mostly in its direction first), 'look' (the best F
            among the candidates that look like the target, ``decision.look_margin``), 'size'
            (the look-alike a size word of the target phrase favours,
            ``decision.size_apart_ratio``), 'absent' (judged absent).
        signals: the raw signals, for eval records and ``hybridgl calibrate``.
    """

    index: int
    found: bool
    presence: float
    confidence: float
    ambiguous: bool
    alternatives: tuple[tuple[int, float], ...]
    message: str
    rule: str
    signals: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """JSON-ready: everything but the alternatives' details."""
        return {'index': self.index, 'found': self.found,
                'presence': json_number(self.presence),
                'confidence': json_number(self.confidence), 'ambiguous': self.ambiguous,
                'alternatives': [i for i, _ in self.alternatives], 'rule': self.rule,
                'message': self.message, **self.signals}


def calibration_applies(config: DecisionConfig, fingerprint: str) -> bool:
    """Whether ``config``'s coefficients were fitted for the CLIP with ``fingerprint``; logs a
    warning (what that turns off, how to calibrate) when not."""
    if config.calibrated_for in (fingerprint, ANY_WEIGHTS):
        return True
    LOG.warning('decision.calibrated_for is %r but the loaded CLIP is %r: absent targets are '
                'not rejected and confidences are NaN until it is calibrated (hybridgl '
                'calibrate, README "Answers a planner can trust")',
                config.calibrated_for, fingerprint)
    return False


def clip_fingerprint(clip_model) -> str:
    """A short hash of a CLIP's projection weights: tells calibrations for other weights apart.

    Args:
        clip_model: an open_clip CLIP (any device).

    Returns:
        16 hex digits.
    """
    digest = hashlib.sha256()
    for tensor in (clip_model.text_projection, clip_model.visual.proj):
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def decide(scores, frame, parse: ParsedExpression, text, config: HybridGLConfig,
           calibrated: bool) -> Decision:
    """The answer of a scored query (see the module docstring).

    Args:
        scores: the query's :class:`~hybridgl_ros.core.scoring.QueryScores`.
        frame: the prepared frame (masks, boxes, mask features).
        parse: the parsed expression.
        text: the query's :class:`~hybridgl_ros.core.scoring.TextFeatures`.
        config: the method's configuration (``decision`` section, parity mode).
        calibrated: whether ``config.decision``'s coefficients fit the loaded CLIP.
    """
    cfg = config.decision
    v = F.normalize(frame.mask_features.float(), dim=-1)                # (N, D)
    verifiable = scores.plan.relation != 'none' and scores.other_probs is not None
    must_hold = verifiable and cfg.relation_must_hold and not config.reference
    # the masks' readings only where a relation must hold: the aligned-first order needs them
    aligned_first = cfg.relation_aligned_first and not config.reference
    view = CandidateView(scores, frame, cfg.match_margin,
                          0.0 if config.reference else cfg.look_margin, aligned_first,
                          cfg.relation_aligned_only and not config.reference,
                          ps.look_readings(v, text, config.text.logit_scale)
                          if aligned_first and must_hold else None,
                          cfg.relation_aligned_margin)
    choice, fails = view.choose(must_hold)
    # P(present) reads the answer the method itself points at (without the look margin, as
    # it was fitted): a position word that points at a mask which does not look like the
    # target says the target is not where it should be ("the ball at the top", no ball)
    pointed, _ = view.choose(must_hold, by_look=False)
    anchored = has_anchor(parse, text)
    anchor_s = ps.anchor_top(v, text, config.text.logit_scale) if anchored else 0.0
    words = ps.word_standouts(v, text, config.text.logit_scale)
    look_top, look_standout = ps.look_presence(scores.class_similarities, view)
    contrasts, closer = ps.contrasts(v, text, config.text.logit_scale)
    word_standout = ps.capped(words, pointed)
    best_anchor = (int(scores.other_probs.argmax())
                   if anchored and scores.other_probs is not None else -1)
    anchor_contrasts = ps.anchor_contrasts(v, text, config.text.logit_scale, best_anchor)
    presence_x = [look_top, anchor_s, float(anchored), float(fails), look_standout,
                  word_standout, *contrasts,
                  *ps.form_slopes((look_top, look_standout, word_standout),
                                names_colour=contrasts[2], anchored=float(anchored)),
                  *anchor_contrasts,
                  ps.anchor_word_standout(v, text, config.text.logit_scale, best_anchor),
                  ps.plain_object_contrast(contrasts, float(anchored))]
    presence = _logistic(cfg.presence_weights, cfg.presence_bias, presence_x, calibrated)
    guided = scores.plan.relation != 'none' or scores.plan.direction != 'none'
    word = size_word(parse) if cfg.size_apart_ratio > 0 and not config.reference else ''
    alternatives, tie_margin = view.near_ties(choice, cfg, guided, must_hold, word)
    # "the small red ball" answered by the bigger of two red balls: the size word picks the
    # look-alike it favours (a candidate within guidance.size_lookalike_margin of the
    # answer's s, as a size comparative's look-alikes are), with no position or relation
    # word to weigh against it
    reach = config.guidance.size_lookalike_margin
    favoured = [j for j in alternatives if j in view.f and view.s[choice] - view.s[j] <= reach
                and view.size_apart(j, choice, word, cfg.size_apart_ratio)]
    by_size = bool(word) and not guided and bool(favoured)
    if by_size:
        choice = favoured[0]
        alternatives, tie_margin = view.near_ties(choice, cfg, guided, must_hold, word)
    confidence_x = {i: view.confidence_x(i, guided, fails and i == choice)
                    + [ps.capped(words, i), view.standout_of(i)] for i in (choice, *alternatives)}
    # an answer is right when its target is there and the pick is that target: P(present)
    # times P(right | present), the logistic of the pick's own signals (fitted on answers
    # whose target is there). Where the CLIP reads a camera less surely, P(present) is lower
    # and so is every answer's confidence
    confidences = {i: presence * _logistic(cfg.confidence_weights, cfg.confidence_bias, x,
                                           calibrated)
                   for i, x in confidence_x.items()}
    # the relation holds for nothing that looks like the target: what the expression refers
    # to is not there, however well its target and anchor phrases fit ("the cube left of the
    # blue ball" with every cube to its right)
    relation_absent = fails and cfg.relation_fails_absent and cfg.reject_absent
    signals = {'presence_x': presence_x, 'confidence_x': confidence_x[choice],
               'tie_margin': max(tie_margin, 0.0),
               'relation_verifiable': verifiable, 'relation_fails': fails,
               'relation_absent': relation_absent,
               'method_choice': scores.chosen, 'choice': choice}
    # a relation to an anchor the text encoder has no word of ("the ring left of the 🐘")
    # cannot be checked: like a target phrase naming nothing it knows, not found
    unknown_anchor = (anchored and scores.plan.relation != 'none'
                      and not text.anchor_names_known_word)
    # a negation, a count, no target before the place (default mode's parse): not checkable
    unknown = not text.names_known_word or unknown_anchor or bool(parse.cannot_check)
    if unknown and cfg.reject_absent and not config.reference:
        presence = 0.0 if calibrated else float('nan')   # names nothing the model knows
    form = ps.phrase_form(presence_x)
    unlikely = calibrated and presence < cfg.threshold_for(form)
    reject = cfg.reject_absent and not config.reference and (unknown or unlikely
                                                              or relation_absent)
    if reject and parse.cannot_check:
        return Decision(-1, False, presence, 1.0 - presence, False, (), parse.cannot_check,
                        'absent', signals)
    if reject and unknown_anchor and text.names_known_word:
        anchor = _bare(parse.other_phrases[0])
        message = (f"the anchor '{anchor}' names no object the model knows: "
                   f"the relation cannot be checked")
        return Decision(-1, False, presence, 1.0 - presence, False, (), message, 'absent',
                        signals)
    if reject:
        # the anchor fits its best mask worse than the target's look fits its, or another
        # colour or object word fits that mask better: it is the likelier one missing ("the
        # star below the yellow triangle" among stars and a red triangle); a target
        # phrase the text encoder has no word of is missing whatever its s
        anchor_missing = anchored and text.names_known_word and (
            anchor_s < look_top or min(anchor_contrasts) < 0)
        message = (absent_message(parse, scores.plan.relation, fails or anchor_missing, closer)
                   if text.names_known_word or _names_a_word(parse.head_phrase)
                   else f"'{parse.normalized}' names no object")
        return Decision(-1, False, presence, 1.0 - presence, False, (), message, 'absent',
                        signals)
    rule = ('size' if by_size else 'method' if choice == scores.chosen
            else 'relation' if must_hold and not fails else 'look')
    return Decision(choice, True, presence, confidences[choice], bool(alternatives),
                    tuple((i, confidences[i]) for i in alternatives), '', rule, signals)


def size_word(parse: ParsedExpression) -> str:
    """'small' or 'big' when the target phrase says its size with one of them ("the small red
    ball"; "little", "tiny", "large", "huge" are read as them in default mode), else ''."""
    words = set(parse.head_phrase.split()) & set(SIZE_ADJECTIVES)
    return words.pop() if len(words) == 1 else ''


def has_anchor(parse: ParsedExpression, text) -> bool:
    """Whether the expression names another object the target is placed by ("the cube left of
    the ball"): an other noun phrase that is not a part of the picture ("the cube on the left
    side", "the star at the bottom" name regions, which are always there)."""
    return text.other is not None and not g.others_name_regions(parse)


def absent_message(parse: ParsedExpression, relation: str, name_relation: bool,
                   closer: str = '') -> str:
    """"no 'elephant' in view", "no 'cube' left of 'the blue ball' in view", or with
    ``closer`` (a contrast phrase that fits the best mask better) "no 'red cube' in view (the
    closest looks more like 'red ball')". The target is named by its look, without its size
    or position words ("no 'cube' in view" for "the left cube": those words pick among
    look-alikes, and an absent answer means the look is not there). ``name_relation``: the
    relation held for no candidate, or the anchor is the likelier one missing: the message
    names the target with its relation and anchor, which is true whichever is missing (a
    relation the guidance has no word for, "next to", "near", is named by the expression's
    own words: "no 'ball' next to 'star' in view")."""
    # a target phrase without a look ("the one left of the ball"): "no object", placed
    looks = names_a_look(parse.head_phrase)
    head = f"'{_bare(look_phrase(parse))}'" if looks else 'object'
    if (name_relation or not looks) and parse.other_phrases:
        link = RELATION_PHRASES.get(relation) or _words_between(parse)
        if link:
            return f"no {head} {link} '{_bare(parse.other_phrases[0])}' in view"
    if not looks:
        return (f"'{_bare(parse.head_phrase)}' does not say what the target looks like: name "
                f"its colour or shape (e.g. 'the red cube')")
    if closer:
        return f"no {head} in view (the closest looks more like '{_bare(closer)}')"
    return f"no {head} in view"


def _words_between(parse: ParsedExpression, most: int = 4) -> str:
    """The words of T' between NP and the first other noun phrase ("next to" of "the ball
    next to the star"; before it when NP is the whole text: "next to the star"), or '' when
    they are not found or more than ``most``."""
    text = parse.normalized
    start = text.find(parse.head_phrase)
    if start < 0:
        return ''
    if parse.head_phrase != text:         # NP is the whole text: no target word before
        start += len(parse.head_phrase)
    end = text.find(parse.other_phrases[0], start)
    words = text[start:end].split() if end >= 0 else []
    return ' '.join(words) if 0 < len(words) <= most else ''


def _names_a_word(phrase: str) -> bool:
    """Whether ``phrase`` has a word that is not a function word or punctuation."""
    from hybridgl_ros.core.text_features import named_words

    return bool(named_words(phrase))


def _bare(phrase: str) -> str:
    words = phrase.split()
    while len(words) > 1 and words[0] in DETERMINERS:
        words = words[1:]
    return ' '.join(words) or phrase


def _logistic(weights, bias: float, x, calibrated: bool) -> float:
    if not calibrated:
        return float('nan')
    z = float(np.dot(np.asarray(weights, np.float64), np.asarray(x, np.float64)) + bias)
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def answer(frame, text: str, parse: ParsedExpression, scores, decision: Decision,
           timings: dict[str, float], message: str, explanation) -> Segmentation:
    """The library's result of a decided query (per-proposal scores kept when not found)."""
    candidates = tuple(int(c) for c in scores.candidates)
    final = tuple(float(f) for f in scores.final)
    common = dict(
        text=text, pure_index=scores.pure_index,
        matching_probs=scores.matching_probs.detach().float().cpu().numpy(),
        spatial_scores=scores.spatial.detach().float().cpu().numpy(),
        candidate_indices=candidates, candidate_scores=final, parse=parse, timings_ms=timings,
        explanation=explanation, confidence=decision.confidence)
    if not decision.found:
        height, width = frame.image_size
        return Segmentation(
            found=False, mask=np.zeros((height, width), bool), box_xywh=(0, 0, 0, 0),
            score=0.0, centroid_xy=(float('nan'), float('nan')), interior_xy=(-1, -1),
            index=-1, message=join_messages(message, decision.message), **common)
    index = decision.index
    mask = frame.mask(index)  # at the image's size, restored if it ran downscaled
    alternatives = tuple(_alternative(frame, i, final[candidates.index(i)] if i in candidates
                                      else float('nan'), conf)
                         for i, conf in decision.alternatives)
    return Segmentation(
        found=True, mask=mask, box_xywh=_box(frame, index, mask),
        score=final[candidates.index(index)], centroid_xy=mask_centroid(mask),
        interior_xy=interior_point(mask), index=index, message=message,
        ambiguous=decision.ambiguous, alternatives=alternatives, **common)


def _alternative(frame, index: int, score: float, confidence: float) -> Alternative:
    mask = frame.mask(index)  # restored once: restoring from SAM's logits is not free
    return Alternative(index=index, box_xywh=_box(frame, index, mask),
                       interior_xy=interior_point(mask), score=score, confidence=confidence)


def _box(frame, index: int, mask: np.ndarray) -> tuple[int, int, int, int]:
    """SAM's box of proposal ``index`` at the image's size (from ``mask``, the proposal at
    that size, when the frame ran downscaled)."""
    from hybridgl_ros.core.resolution import sam_box_xywh

    if frame.working_size != tuple(frame.image_size):
        return sam_box_xywh(mask)
    return tuple(int(v) for v in frame.proposals.boxes_xywh[index])


def join_messages(*parts: str) -> str:
    """The non-empty parts of an answer's message, joined by '; '."""
    return '; '.join(p for p in parts if p)
