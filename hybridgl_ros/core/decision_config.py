"""The ``decision`` section of the configuration (``core/decision.py``): "not there", "which
one?" and the confidence, with their fitted coefficients (``hybridgl calibrate``).

Re-exported by :mod:`hybridgl_ros.core.config`, which holds the other sections.
"""
from __future__ import annotations

from dataclasses import dataclass


#: How many signals P(present) and P(right) read (``core/decision.py``).
PRESENCE_SIGNALS = 20
CONFIDENCE_SIGNALS = 7

#: The decision's phrase forms (``core.decision.phrase_form``) and the field of each one's
#: presence threshold.
PRESENCE_THRESHOLD_FIELDS = {'colour': 'presence_threshold', 'plain': 'presence_threshold_plain',
                             'anchored': 'presence_threshold_anchored'}


@dataclass(frozen=True)
class DecisionConfig:
    """Answers a planner can trust (core/decision.py): "not there", "which one?", a confidence.

    The coefficients are fitted per CLIP weights by ``hybridgl calibrate``; the defaults are the
    embedded demo models' (fitted on 540 generated scenes of the tuning series: seeds
    4001-4006, 30 shaded and 30 flat each, and seeds 4001-4003 with every object at any angle,
    with every kind of expression ``hybridgl make-scenes`` writes: README "Answers a planner
    can trust"). Parity mode never rejects or changes the choice.
    """

    reject_absent: bool = True
    """Answer found=false when P(target present) is below its phrase form's threshold (default
    mode)."""
    presence_threshold: float = 0.7456
    """P(target present) below which the answer is "not found" (fitted by hybridgl calibrate
    --budget-per --max-rejected 0.04 on the tuning series' shaded, flat and objects-at-any-angle
    runs, the shaded and flat ones also with objects at 0.6 times their size: the highest that
    rejects at most 4 % of the present targets of each group, a point of room
    for the spread between series under the 5 % target). For a target phrase that names a
    colour ("the red cube", "the small red cube on the left"); the two forms below have their
    own."""
    presence_threshold_plain: float = 0.6257
    """The threshold for a target phrase that names no colour ("the cube", "the small cube",
    "the cube on the left"): hybridgl calibrate lowers it below presence_threshold where that
    would reject more than the budget of such phrases' present targets in a style
    (docs/measurements.md "One rejection budget per phrase form")."""
    presence_threshold_anchored: float = 0.356
    """The threshold for an expression with an anchor phrase ("the cube left of the blue
    ball"), lowered likewise where presence_threshold would reject more than the budget of
    their present targets."""
    presence_weights: tuple[float, ...] = (0.102429, 0.0417, -1.274149, -8.541137, 0.004345,
                                           -0.010158, 0.056084, 0.067752, -1.703579, 0.0,
                                           0.025594, -0.000306, 0.032837, -0.080063, -0.042681,
                                           0.016236, 0.065388, 0.06931, 0.058942, 0.074304)
    """Logistic P(present) on (best s, best anchor s, has anchor, relation fails, standout,
    word standout, colour contrast, object contrast, names a contrast colour, names a
    contrast object; best s, standout, word standout where the phrase names a contrast
    colour; the same where the expression has an anchor; the anchor's colour contrast,
    object contrast and word standout; the object contrast where the target phrase names no
    contrast colour and has no anchor)."""
    presence_bias: float = -3.427733
    """Intercept of the P(present) logistic."""
    confidence_weights: tuple[float, float, float, float, float, float, float] = (
        0.084107, 0.023392, -1.032803, 1.603584, 0.0, 0.004408, 0.040498)
    """Logistic P(right), given the target is present, on (s, s margin, guided, F margin,
    relation fails, word standout, standout) of the answer; its confidence is P(present)
    times it."""
    confidence_bias: float = -1.203045
    """Intercept of that logistic."""
    ambiguity_margin: float = 21.5
    """Another object whose s is within this (logits, 100·cos) of the answer's is a near tie
    (fitted by hybridgl calibrate: the widest margin that flags at most 5 % of the
    single-target expressions of each group of runs of the tuning series; it flags 98.8 % of
    the multi-target ones there)."""
    guided_ambiguity_margin: float = 0.05
    """With a relation or position word, a near tie must also be within this of the answer's F."""
    size_apart_ratio: float = 1.6
    """A size word of the target phrase ("the small red ball", "the big cube") tells the
    answer from another object when their masks' areas differ by more than this factor in the
    word's direction (the answer the smaller for "small"): that object is then no near tie;
    a candidate the word favours so over the answer, within guidance.size_lookalike_margin
    of its s, answers instead when no position or relation word is there (0 = off; default
    mode). docs/measurements.md "A size word tells look-alikes apart"."""
    match_margin: float = 10.0
    """Candidates within this of the best s (logits) may answer when a relation must hold."""
    relation_must_hold: bool = True
    """With an anchor phrase, answer only with a candidate the relation holds for."""
    relation_aligned_first: bool = True
    """With relation_must_hold and several candidates the relation holds for, answer with
    one lying mostly in its direction (the centres' offset along it larger than across it)
    before one that lies on the said side but mostly elsewhere ("the star right of the blue
    star": the star straight to its right, not one far above it and a little to the right),
    each group in F's order (default mode). Moved ahead is only a candidate that matches the
    target about as well as F's pick (decision.relation_aligned_margin), reads as the target
    rather than as another object word's swap, and is no part of F's pick nor of the
    relation's anchor. Measured: docs/measurements.md "Mostly in the said direction"."""
    relation_aligned_margin: float = 3.0
    """With relation_aligned_first, a candidate is moved ahead only when its s is at most
    this many logits below the s of the candidate F would answer with (a mask that matches the
    target worse, a cube the demo CLIP half reads as a ball, stays behind)."""
    relation_aligned_only: bool = False
    """With relation_must_hold, the relation holds only for a candidate lying mostly in its
    direction (the centres' offset along it larger than across it), not for one merely on
    the said side (spec §7.3's test, the default): for a planner whose "left of" means
    mostly to the left. A ball far above the cube and a little to its left is then no answer
    to "the ball left of the cube" (not found, with relation_fails_absent). The generated
    scenes and the shipped fit use the spec's sense; docs/measurements.md "Mostly in the
    said direction" measures both (default mode)."""
    relation_fails_absent: bool = True
    """With relation_must_hold, answer "not found" when the relation holds for no candidate
    that looks like the target ("the cube left of the blue ball" with every cube to its
    right), whatever P(present) says (default mode; hybridgl calibrate counts these present
    targets in the rejection budget). docs/measurements.md "A relation that holds for nothing"."""
    look_margin: float = 30.0
    """Never answer with a candidate whose s is more than this below the best mask's (logits;
    0 = off; default mode): a position or size word picks among objects that look like the
    target, not a mask that does not ("the ring on the left" answered by a triangle because it
    lies leftmost). docs/measurements.md "A position word never picks another look"."""
    contrast_colours: str = 'red orange yellow green blue purple pink brown black white gray'
    """Colour words that exclude one another: "the red cube" is contrasted with "the blue
    cube", ... at its best mask (P(present)'s colour contrast); words the text encoder does
    not know are left out. Space-separated; '' = no colour contrast."""
    contrast_objects: str = 'ball cube triangle star ring'
    """Object words that exclude one another (no synonyms: "cube" beside "box" would contrast
    a cube with itself), for P(present)'s object contrast: "the red cube" against "the red
    ball", ... Add your robot's objects ("mug bottle bowl") and calibrate; '' = none."""
    calibrated_for: str = 'b8347417d62abdd3'
    """Fingerprint of the CLIP they fit; with other weights: no rejection, NaN confidence."""

    def threshold_for(self, form: str) -> float:
        """The presence threshold of a phrase form: 'colour', 'plain' or 'anchored'
        (``core.decision.phrase_form``)."""
        return getattr(self, PRESENCE_THRESHOLD_FIELDS[form])
