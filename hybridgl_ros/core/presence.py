"""The signals of P(target present) (core/decision.py, step 2), read from a query's scores and
the frame's mask features, and the phrase form that picks the presence threshold.

Each signal is a number the decision's logistic weighs (``decision.presence_weights``, fitted
by ``hybridgl calibrate``): how well the best mask fits the look phrase and how far it stands
out from the frame's other masks, how far the answer stands out for its weakest look word, and
whether another colour or object word fits the best mask better (the contrasts).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

#: Cap of a word standout's size (logits).
WORD_STANDOUT_CAP = 50.0
#: Cap of a contrast's size (logits).
CONTRAST_CAP = 50.0
#: Positions in ``presence_x`` of "has anchor" and "names a contrast colour".
PRESENCE_ANCHORED = 2
PRESENCE_NAMES_COLOUR = 8


def phrase_form(presence_x) -> str:
    """The phrase form an expression's presence threshold is chosen by (``decision.
    presence_threshold``, ``_plain``, ``_anchored``), read from its P(present) signals:
    'anchored' with an anchor phrase ("the cube left of the blue ball"), else 'colour' when
    the target phrase names a contrast colour ("the red cube"), else 'plain' ("the cube on the
    left"). The forms' present targets reach different P(present) levels (an anchored one
    needs its anchor found and its relation to hold too), so one threshold held to a budget
    over all of them rejects more than the budget of the lower-scoring forms."""
    if presence_x[PRESENCE_ANCHORED]:
        return 'anchored'
    return 'colour' if presence_x[PRESENCE_NAMES_COLOUR] else 'plain'


def form_slopes(levels: tuple[float, float, float], names_colour: float,
                anchored: float) -> list[float]:
    """The last six signals of P(present): ``levels`` (best s, standout, word standout) again
    where the phrase names a contrast colour (else 0), then where the expression has an
    anchor (else 0), so each of the two phrase forms gets its own slopes on the three levels.
    The levels say different things per form: a no-target anchored expression is a relation
    that holds for nothing, its target look on the table (its best s about that of a present
    one), while a no-target phrase without an anchor names a look that is not there; one
    slope for every form weighs s as much where it says little as where it says much."""
    return [*(v * names_colour for v in levels), *(v * anchored for v in levels)]


def plain_object_contrast(contrast_values: tuple[float, float, float, float],
                          anchored: float) -> float:
    """The last signal of P(present): the object contrast again where the target phrase is
    plain, naming no contrast colour and with no anchor phrase ("the ball", "the small cube
    on the left"), else 0, so that form gets its own slope on it. With no colour word the
    object word is all that says what is looked for, and its contrast (the best mask's s for
    "the ball" minus its best s for "the cube", "the star", ...) is what tells a ball that is
    there from a cube that most resembles one; weighed once for every form it counts as much
    where a colour contrast also speaks as where it alone does. ``contrast_values``: the four
    values of :func:`contrasts`."""
    return contrast_values[1] * (1.0 - contrast_values[2]) * (1.0 - anchored)


def look_presence(s_class: torch.Tensor | None, view) -> tuple[float, float]:
    """(best s, its standout) for P(present): of the phrase without its size or position words
    (``QueryScores.class_similarities``) when the query is judged among look-alikes ("the
    purple star" for "the bigger purple star", "the cube" for "the cube on the left": those
    words say which of the look-alikes, not what is there), else of the whole target phrase
    (the view's)."""
    if s_class is None:
        return view.s_top, view.standout
    s = s_class.detach().float().cpu()
    best, values = int(s.argmax()), s.tolist()
    return values[best], standout(values, math.fsum(values), best)


def standout(s: list[float], s_sum: float, i: int) -> float:
    """s[i] minus the mean of the other entries (``s_sum``: their sum with s[i]); 0 for one."""
    others = len(s) - 1
    return s[i] - (s_sum - s[i]) / others if others else 0.0


def anchor_top(v: torch.Tensor, text, logit_scale: float) -> float:
    """The best mask's s for the anchor feature u (0 without other phrases); v: (N, D) the
    frame's L2-normalised mask features."""
    if text.other is None:
        return 0.0
    return float((logit_scale * v @ F.normalize(text.other.float(), dim=0)).max())


def word_standouts(v: torch.Tensor, text, logit_scale: float) -> torch.Tensor | None:
    """(N,) per mask: min over the target phrase's look words w of s(mask, w) − the mean
    s(n, w) of the frame's masks: how far the mask stands out for its weakest word. None
    without look words. v: (N, D) the frame's L2-normalised mask features."""
    if text.words is None:
        return None
    return weakest_word_standout(v, text.words, logit_scale).cpu()


def weakest_word_standout(v: torch.Tensor, words: torch.Tensor, logit_scale: float
                          ) -> torch.Tensor:
    """(N,) on v's device: min over the (W, D) word features w of s(mask, w) − the mean s(n, w)
    of the frame's masks. v: (N, D) the frame's L2-normalised mask features (float32)."""
    s = logit_scale * v @ F.normalize(words.float(), dim=-1).T             # (N, W)
    return (s - s.mean(dim=0)).min(dim=1).values


def contrast_similarities(v: torch.Tensor, text, logit_scale: float) -> torch.Tensor | None:
    """(N, 1 + C) s of every mask for the look phrase (column 0) and for each of its contrasts
    (``TextFeatures.contrast``), or None without any. v: (N, D) L2-normalised mask features."""
    if text.contrast is None:
        return None
    return logit_scale * v @ F.normalize(text.contrast.float(), dim=-1).T


def look_readings(v: torch.Tensor, text, logit_scale: float) -> torch.Tensor | None:
    """(N,) how much each mask reads as the look phrase ("the star") rather than as one of its
    swaps ("the ball", "the cube", ...; and other colours when it names one): the softmax of
    its s over the phrase and its swaps, at the phrase. None when the phrase has no object
    swap. v: (N, D) L2-normalised mask features."""
    if text.contrast is None or text.contrast_counts[1] == 0:
        return None
    return torch.softmax(contrast_similarities(v, text, logit_scale), dim=1)[:, 0]


def contrasts(v: torch.Tensor, text, logit_scale: float
               ) -> tuple[tuple[float, float, float, float], str]:
    """((colour contrast, object contrast, names a colour, names an object), closer): at the
    mask that best fits the look phrase ("the red cube"), its s minus the best s of the phrase
    with the colour word swapped ("the blue cube", ...), and with the object word swapped
    ("the red ball", ...), each within ±CONTRAST_CAP and 0 for a phrase without such a word;
    then whether it has one (1.0 / 0.0: a missing contrast is no evidence either way, and a
    phrase without a colour word is judged by a contrast less). A red ball beside a blue cube
    answers "the red cube" with a negative object contrast: it is more a red ball than a red
    cube, and ``closer`` is "the red ball" (the best-fitting swap when it fits that mask
    better than the phrase, else ''). v: (N, D) the frame's L2-normalised mask features."""
    s = contrast_similarities(v, text, logit_scale)
    if s is None:
        return (0.0, 0.0, 0.0, 0.0), ''
    row = s[int(s[:, 0].argmax())].cpu()
    margins = _contrast_margins(row, text.contrast_counts)
    best = int(row[1:].argmax())
    closer = (text.contrast_phrases[best]
              if float(row[1 + best]) > float(row[0]) and best < len(text.contrast_phrases)
              else '')
    colours, objects = text.contrast_counts
    return (margins[0], margins[1], float(colours > 0), float(objects > 0)), closer


def anchor_contrasts(v: torch.Tensor, text, logit_scale: float, anchor: int
                     ) -> tuple[float, float]:
    """(colour contrast, object contrast) of the anchor phrase at mask ``anchor`` (the best by
    q): its s for the anchor's look ("the blue ball") minus its best s for the look with the
    colour word swapped, and with the object word swapped, each within ±CONTRAST_CAP; 0
    without an anchor or without such a word (``TextFeatures.anchor_contrast``). "The cube
    left of the blue ball" beside an orange ball and no blue one: the anchor's best mask is
    more an orange ball than a blue one, so the relation is about something not there."""
    if text.anchor_contrast is None or anchor < 0:
        return 0.0, 0.0
    rows = F.normalize(text.anchor_contrast.float(), dim=-1)
    row = (logit_scale * v[anchor] @ rows.T).cpu()                            # (1 + C,)
    return _contrast_margins(row, text.anchor_contrast_counts)


def anchor_word_standout(v: torch.Tensor, text, logit_scale: float, anchor: int) -> float:
    """The anchor's word standout: at mask ``anchor`` (the best by q), its s for the anchor
    phrase's weakest look word minus the mean s of the frame's masks for that word, within
    ±WORD_STANDOUT_CAP; 0 without an anchor or its look words (``TextFeatures.other_words``:
    of the first other phrase that has look words; q averages the same reading over all of
    them, ``scoring.anchor_logits``). What the target's word standout asks of the answer, asked of
    the anchor: "the cube left of the blue ring" beside orange rings and a blue ball has no
    mask that stands out for both "blue" and "ring"."""
    if not text.other_words or anchor < 0:
        return 0.0
    words = text.other_words[0].to(v.device)
    return capped(weakest_word_standout(v, words, logit_scale).cpu(), anchor)


def _contrast_margins(row: torch.Tensor, counts: tuple[int, int]) -> tuple[float, float]:
    """(colour, object) contrast of one mask's s ``row`` = (the look phrase, then ``counts``
    colour swaps and object swaps): the phrase's s minus the best swap's of each group, within
    ±CONTRAST_CAP; 0 for a group without swaps."""
    margins, start = [], 1
    for count in counts:
        margin = float(row[0] - row[start:start + count].max()) if count else 0.0
        margins.append(min(max(margin, -CONTRAST_CAP), CONTRAST_CAP))
        start += count
    return margins[0], margins[1]


def capped(standouts: torch.Tensor | None, index: int) -> float:
    """Mask ``index``'s word standout within ±WORD_STANDOUT_CAP (0 without look words)."""
    if standouts is None:
        return 0.0
    return min(max(float(standouts[index]), -WORD_STANDOUT_CAP), WORD_STANDOUT_CAP)
