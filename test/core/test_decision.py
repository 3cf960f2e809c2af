"""The decision step (core/decision.py) on hand-built scores: not found, near ties, the relation
that must hold, confidence, parity and uncalibrated weights."""
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from hybridgl_ros.core import guidance as g
from hybridgl_ros.core.config import DecisionConfig, HybridGLConfig
from hybridgl_ros.core.decision import (
    absent_message, answer, clip_fingerprint, decide, has_anchor)
from hybridgl_ros.core.presence import CONTRAST_CAP, WORD_STANDOUT_CAP, phrase_form
from hybridgl_ros.core.scoring import QueryScores, TextFeatures
from hybridgl_ros.core.types import Frame, ParsedExpression, Proposals

H, W = 40, 120
#: Three disjoint 20x20 squares at x = 10, 50, 90 and a mask that is the first one's left half.
BOXES = [[10, 10, 20, 20], [50, 10, 20, 20], [90, 10, 20, 20], [10, 10, 10, 20]]
#: P(present) = σ(s_top − 40): present above s = 40; P(right) = σ(0.5·s margin).
CALIBRATION = DecisionConfig(presence_weights=(1.0, 0.0, 0.0, -30.0) + (0.0,) * 14,
                             presence_bias=-40.0,
                             confidence_weights=(0.0, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0),
                             confidence_bias=0.0, ambiguity_margin=3.0,
                             guided_ambiguity_margin=0.05, calibrated_for='x')


def _frame(boxes=BOXES):
    masks = np.zeros((len(boxes), H, W), bool)
    for k, (x, y, w, h) in enumerate(boxes):
        masks[k, y:y + h, x:x + w] = True
    return Frame((H, W), Proposals(masks, np.asarray(boxes, np.int64),
                                   np.ones(len(boxes), np.float32)),
                 mask_features=torch.eye(len(boxes), 8),
                 mask_tensor=torch.from_numpy(masks).float())


def _scores(s, final, relation='none', direction='none', q=None, partners=None, weights=None):
    """QueryScores with the given s (N,) and F (per candidate, candidates = top-3 by s)."""
    s = torch.tensor(s, dtype=torch.float32)
    p = torch.softmax(s, 0)
    candidates = g.select_candidates(p, 3)
    final = torch.tensor(final, dtype=torch.float32)
    if partners is None:
        partners, weights = candidates, p[candidates]
    totals = g.RelationTotals(torch.as_tensor(partners), torch.as_tensor(weights).float(),
                              torch.zeros(len(candidates)))
    plan = g.GuidancePlan(relation, direction, False, True, 1.8)
    return QueryScores(plan, s, p, q, candidates, totals, torch.softmax(totals.totals, 0), None,
                       None, torch.ones(H, W), torch.ones(H, W), torch.zeros(len(s)), final)


def _text(other=False):
    feature = torch.ones(8)
    return TextFeatures(feature, feature, feature, feature, feature if other else None)


def _config(**decision):
    return HybridGLConfig(decision=replace(CALIBRATION, **decision))


PARSE = ParsedExpression('the elephant', 'the elephant')


def test_an_absent_target_is_not_found_and_the_message_names_it():
    d = decide(_scores([30.0, 20.0, 10.0, 5.0], [0.5, 0.2, 0.1]), _frame(), PARSE, _text(),
               _config(), calibrated=True)
    assert not d.found and d.index == -1 and d.rule == 'absent'
    assert d.message == "no 'elephant' in view"
    assert d.presence < 0.01 and math.isclose(d.confidence, 1 - d.presence)


def test_a_present_target_is_found_with_a_confidence_in_0_1():
    d = decide(_scores([60.0, 40.0, 10.0, 5.0], [0.5, 0.2, 0.1]), _frame(), PARSE, _text(),
               _config(), calibrated=True)
    assert d.found and d.index == 0 and d.rule == 'method' and not d.ambiguous
    assert d.presence > 0.99
    # s margin to the best other object: 60 - 40 = 20 -> σ(10)
    assert d.confidence == pytest.approx(1 / (1 + math.exp(-10)))


def test_uncalibrated_weights_never_reject_and_give_no_confidence():
    d = decide(_scores([30.0, 20.0, 10.0, 5.0], [0.5, 0.2, 0.1]), _frame(), PARSE, _text(),
               _config(), calibrated=False)
    assert d.found and d.index == 0
    assert math.isnan(d.confidence) and math.isnan(d.presence)


def test_reference_parity_never_rejects():
    config = replace(_config(), parity='reference')
    d = decide(_scores([30.0, 20.0, 10.0, 5.0], [0.5, 0.2, 0.1]), _frame(), PARSE, _text(),
               config, calibrated=True)
    assert d.found and d.index == 0


def test_a_near_tied_look_alike_makes_the_answer_ambiguous():
    d = decide(_scores([60.0, 58.5, 30.0, 5.0], [0.5, 0.45, 0.1]), _frame(), PARSE, _text(),
               _config(), calibrated=True)
    assert d.found and d.index == 0 and d.ambiguous
    assert [i for i, _ in d.alternatives] == [1]
    assert 0.0 < d.alternatives[0][1] < 1.0


def test_a_clear_margin_is_not_ambiguous():
    d = decide(_scores([60.0, 55.0, 30.0, 5.0], [0.5, 0.45, 0.1]), _frame(), PARSE, _text(),
               _config(), calibrated=True)
    assert not d.ambiguous and d.alternatives == ()


def test_a_mask_of_the_same_object_is_no_alternative():
    # proposal 3 is the left half of proposal 0: tied in s, but the same object
    d = decide(_scores([60.0, 10.0, 5.0, 59.5], [0.5, 0.45, 0.1]), _frame(), PARSE, _text(),
               _config(), calibrated=True)
    assert d.found and not d.ambiguous


def test_a_position_word_that_separates_the_look_alikes_is_not_ambiguous():
    scores = _scores([60.0, 59.5, 30.0, 5.0], [0.9, 0.4, 0.1], direction='left')
    d = decide(scores, _frame(), PARSE, _text(), _config(), calibrated=True)
    assert d.found and d.index == 0 and not d.ambiguous


def test_a_position_word_that_does_not_separate_them_is_ambiguous():
    scores = _scores([60.0, 59.5, 30.0, 5.0], [0.50, 0.48, 0.1], direction='left')
    d = decide(scores, _frame(), PARSE, _text(), _config(), calibrated=True)
    assert d.ambiguous and [i for i, _ in d.alternatives] == [1]


def _relation_query(final):
    """'the square left of the ring': candidates 0 (x 10) and 1 (x 50) match the target, the
    anchor (q = 1) is proposal 2 at x 90."""
    q = torch.tensor([0.0, 0.0, 1.0, 0.0])
    return _scores([60.0, 59.0, 20.0, 5.0], final, relation='left', q=q,
                   partners=torch.tensor([2]), weights=torch.tensor([1.0]))


def test_the_relation_must_hold_for_the_answer():
    parse = ParsedExpression('the square left of the ring', 'the square', ('the ring',),
                             relation='left')
    # anchor at x = 90; candidate 0 (x = 10) and 1 (x = 50) are both left of it: F decides
    d = decide(_relation_query([0.2, 0.6, 0.1]), _frame(), parse, _text(other=True),
               _config(), calibrated=True)
    assert d.found and d.index == 1 and d.rule == 'method'


def test_a_relation_that_holds_for_no_candidate_is_not_found_and_says_so():
    parse = ParsedExpression('the square right of the ring', 'the square', ('the ring',),
                             relation='right')
    scores = _relation_query([0.2, 0.6, 0.1])
    scores = replace(scores, plan=replace(scores.plan, relation='right'))
    # nothing but the anchor itself lies right of x = 90: the relation fails
    d = decide(scores, _frame(), parse, _text(other=True), _config(), calibrated=True)
    assert not d.found and d.rule == 'absent'
    assert d.message == "no 'square' right of 'ring' in view"


def test_a_rejected_expression_names_the_anchor_when_it_is_the_likelier_one_missing():
    """'the square below the ring' rejected: the anchor's best s (100 / sqrt(8) = 35.4 here)
    below the target look's best says the ring is the likelier one missing, above it the
    square."""
    parse = ParsedExpression('the square below the ring', 'the square', ('the ring',),
                             relation='down')
    anchor_s = 100.0 / math.sqrt(8)
    for look_top, message in ((anchor_s + 2.0, "no 'square' below 'ring' in view"),
                              (anchor_s - 5.0, "no 'square' in view")):
        scores = _scores([look_top, 20.0, 10.0, 5.0], [0.5, 0.2, 0.1], relation='down')
        d = decide(scores, _frame(), parse, _text(other=True), _config(), calibrated=True)
        assert not d.found and d.rule == 'absent' and not d.signals['relation_fails']
        assert d.message == message
    # a target phrase the text encoder knows no word of is the missing one, whatever its s
    scores = _scores([anchor_s + 2.0, 20.0, 10.0, 5.0], [0.5, 0.2, 0.1], relation='down')
    unknown = replace(_text(other=True), names_known_word=False)
    d = decide(scores, _frame(), parse, unknown, _config(), calibrated=True)
    assert not d.found and d.message == "no 'square' in view"


def test_relation_choice_moves_to_the_candidate_the_relation_holds_for():
    parse = ParsedExpression('the square left of the ring', 'the square', ('the ring',),
                             relation='left')
    q = torch.tensor([0.0, 1.0, 0.0, 0.0])                         # anchor: proposal 1 (x 50)
    # candidates by s: 0 (x 10), 2 (x 90), 1 (the anchor); F prefers 2, right of the anchor
    scores = _scores([60.0, 20.0, 59.0, 5.0], [0.2, 0.6, 0.1], relation='left', q=q,
                     partners=torch.tensor([1]), weights=torch.tensor([1.0]))
    d = decide(scores, _frame(), parse, _text(other=True), _config(), calibrated=True)
    assert d.found and d.index == 0 and d.rule == 'relation'
    assert d.signals['method_choice'] == 2


def test_the_anchor_never_answers_its_own_relation():
    """'the square right of the ring' where the ring (proposal 2, x 90, q ≈ 1) is also a
    candidate: what little weight proposal 0 (x 10) has as a partner once lay left of the
    ring, and the ring was 'right of' it. Its own weight counts against it now, and so does
    that of its part (proposal 3 is proposal 0's left half: a part of 0 answers nothing
    about 0 either)."""
    parse = ParsedExpression('the square right of the ring', 'the square', ('the ring',),
                             relation='right')
    q = torch.tensor([1e-9, 0.0, 1.0, 0.0])
    # candidates by s: 0, 2 (the ring, within match_margin), 1; F prefers 2
    scores = _scores([60.0, 20.0, 55.0, 5.0], [0.2, 0.6, 0.1], relation='right', q=q,
                     partners=torch.tensor([2, 0]), weights=torch.tensor([1.0, 1e-9]))
    d = decide(scores, _frame(), parse, _text(other=True), _config(), calibrated=True)
    assert d.signals['relation_fails'] and not d.found
    assert d.message == "no 'square' right of 'ring' in view"
    # the anchor is proposal 3, the left half of candidate 0: 0 lies right of its own half
    # (centre x 20 > 15) but does not answer; candidate 2 (x 90) does
    q = torch.tensor([0.0, 0.0, 1e-9, 1.0])
    scores = _scores([60.0, 20.0, 55.0, 5.0], [0.6, 0.2, 0.1], relation='right', q=q,
                     partners=torch.tensor([3, 2]), weights=torch.tensor([1.0, 1e-9]))
    d = decide(scores, _frame(), parse, _text(other=True), _config(), calibrated=True)
    assert d.found and d.index == 2 and d.rule == 'relation'


def test_a_relation_to_an_anchor_naming_nothing_the_model_knows_is_not_found():
    """"the square left of the 🐘": the relation cannot be checked; not found whatever the
    calibration (as for a target phrase naming nothing), and parity mode answers."""
    parse = ParsedExpression('the square left of the 🐘', 'the square', ('the 🐘',),
                             relation='left')
    text = replace(_text(other=True), anchor_names_known_word=False)
    for calibrated in (True, False):
        d = decide(_relation_query([0.2, 0.6, 0.1]), _frame(), parse, text, _config(),
                   calibrated=calibrated)
        assert not d.found and d.rule == 'absent'
        assert d.message == ("the anchor '🐘' names no object the model knows: the relation "
                             "cannot be checked")
    reference = replace(_config(), parity='reference')
    assert decide(_relation_query([0.2, 0.6, 0.1]), _frame(), parse, text, reference,
                  calibrated=True).found
    # without a relation word the anchor does not matter ("the square with the 🐘")
    scores = _relation_query([0.2, 0.6, 0.1])
    scores = replace(scores, plan=replace(scores.plan, relation='none'))
    assert decide(scores, _frame(), replace(parse, relation='none'), text, _config(),
                  calibrated=True).found


def test_an_expression_the_method_cannot_check_is_not_found_with_why():
    """The default mode's parse says why ("the ring not left of the ring", text.everyday_
    phrasing): not found whatever the calibration, the reason is the message; parity mode and
    decision.reject_absent off answer."""
    why = "'not' negates, which the method cannot check"
    parse = ParsedExpression('the square not left of the ring', 'the square', ('the ring',),
                             relation='left', cannot_check=why)
    for calibrated in (True, False):
        d = decide(_relation_query([0.2, 0.6, 0.1]), _frame(), parse, _text(other=True),
                   _config(), calibrated=calibrated)
        assert not d.found and d.rule == 'absent' and d.message == why
    reference = replace(_config(), parity='reference')
    assert decide(_relation_query([0.2, 0.6, 0.1]), _frame(), parse, _text(other=True),
                  reference, calibrated=True).found
    assert decide(_relation_query([0.2, 0.6, 0.1]), _frame(), parse, _text(other=True),
                  _config(reject_absent=False), calibrated=True).found


def test_a_position_word_never_picks_a_candidate_that_does_not_look_like_the_target():
    """"the ring on the left": the method's F prefers candidate 2 (leftmost) whose s is 43
    below the best; with decision.look_margin (30) the answer is the best F among the
    candidates that look like the target (1, s 38); off (0) and parity mode keep argmax F."""
    parse = ParsedExpression('the ring on the left', 'the ring', relation='left',
                             direction='left')
    scores = _scores([50.0, 38.0, 7.0, -1.0], [-0.3, 0.0, 0.12], relation='left',
                     direction='left')
    assert scores.chosen == 2
    d = decide(scores, _frame(), parse, _text(), _config(), calibrated=True)
    assert d.found and d.index == 1 and d.rule == 'look'
    assert decide(scores, _frame(), parse, _text(), _config(look_margin=0.0),
                  calibrated=True).index == 2
    reference = replace(_config(), parity='reference')
    assert decide(scores, _frame(), parse, _text(), reference, calibrated=True).index == 2
    # within the margin the method's choice stands
    close = _scores([50.0, 38.0, 30.0, -1.0], [-0.3, 0.0, 0.12], relation='left',
                    direction='left')
    d = decide(close, _frame(), parse, _text(), _config(), calibrated=True)
    assert d.index == 2 and d.rule == 'method'


def test_without_relation_must_hold_the_method_choice_stands():
    parse = ParsedExpression('the square left of the ring', 'the square', ('the ring',),
                             relation='left')
    q = torch.tensor([0.0, 1.0, 0.0, 0.0])
    scores = _scores([60.0, 20.0, 59.0, 5.0], [0.2, 0.6, 0.1], relation='left', q=q,
                     partners=torch.tensor([1]), weights=torch.tensor([1.0]))
    d = decide(scores, _frame(), parse, _text(other=True), _config(relation_must_hold=False),
               calibrated=True)
    assert d.index == 2 and d.rule == 'method'


def test_absent_message_drops_the_determiner_and_names_the_relation():
    parse = ParsedExpression('the cube left of the blue ball', 'the cube', ('the blue ball',),
                             relation='left')
    assert absent_message(parse, 'left', True) == "no 'cube' left of 'blue ball' in view"
    assert absent_message(parse, 'left', False) == "no 'cube' in view"
    assert absent_message(parse, 'left', False, 'the ball') == (
        "no 'cube' in view (the closest looks more like 'ball')")
    # a failed relation says so, whatever the contrasts
    assert absent_message(parse, 'left', True, 'the ball') == (
        "no 'cube' left of 'blue ball' in view")
    # the look, without the size and position words that pick among look-alikes
    for text in ('the left cube', 'the bigger red cube'):
        head = text[4:]
        look = ' '.join(w for w in head.split() if w not in ('left', 'bigger'))
        assert absent_message(ParsedExpression(text, text), 'none', False) == (
            f"no '{look}' in view")


def test_absent_message_names_a_relation_without_a_word_of_the_guidance_by_its_own_words():
    """"next to", "near": the anchor may be the one missing; the message says both."""
    parse = ParsedExpression('the ball next to the red star', 'the ball', ('the red star',))
    assert absent_message(parse, 'none', True) == "no 'ball' next to 'red star' in view"
    assert absent_message(parse, 'none', False) == "no 'ball' in view"
    near = ParsedExpression('the ball near the star', 'the ball', ('the star',))
    assert absent_message(near, 'none', True) == "no 'ball' near 'star' in view"
    # words not found between them, or too many: the target alone
    odd = ParsedExpression('the ball , which is very close to the star', 'the ball',
                           ('the star',))
    assert absent_message(odd, 'none', True) == "no 'ball' in view"


def test_absent_message_of_a_target_without_a_look_says_so():
    """"the one left of the ball": no object is placed so (not "no 'one' in view", which
    reads as if nothing were there); "the thing" alone says what to say instead."""
    placed = ParsedExpression('the one left of the ball', 'the one', ('the ball',),
                              relation='left')
    assert absent_message(placed, 'left', False) == "no object left of 'ball' in view"
    assert absent_message(ParsedExpression('the thing', 'the thing'), 'none', False) == (
        "'thing' does not say what the target looks like: name its colour or shape (e.g. "
        "'the red cube')")


def test_the_fingerprint_tells_weights_apart(tiny_clip):
    first = clip_fingerprint(tiny_clip)
    assert len(first) == 16 and first == clip_fingerprint(tiny_clip)
    with torch.no_grad():
        tiny_clip.text_projection.add_(1.0)
    try:
        assert clip_fingerprint(tiny_clip) != first
    finally:
        with torch.no_grad():
            tiny_clip.text_projection.sub_(1.0)


def test_presence_reads_how_far_the_best_match_stands_out_from_the_other_masks():
    d = decide(_scores([60.0, 40.0, 10.0, 6.0], [0.5, 0.2, 0.1]), _frame(), PARSE, _text(),
               _config(), calibrated=True)
    assert d.signals['presence_x'][4] == pytest.approx(60.0 - (40.0 + 10.0 + 6.0) / 3)


def test_a_target_phrase_naming_nothing_the_model_knows_is_not_found_even_uncalibrated():
    text = replace(_text(), names_known_word=False)
    for calibrated in (True, False):
        d = decide(_scores([60.0, 40.0, 10.0, 5.0], [0.5, 0.2, 0.1]), _frame(), PARSE, text,
                   _config(), calibrated=calibrated)
        assert not d.found and d.message == "no 'elephant' in view"
    parity = decide(_scores([60.0, 40.0, 10.0, 5.0], [0.5, 0.2, 0.1]), _frame(), PARSE, text,
                    replace(_config(), parity='reference'), calibrated=True)
    assert parity.found


def test_an_expression_of_function_words_says_it_names_no_object():
    text = replace(_text(), names_known_word=False)
    d = decide(_scores([60.0, 40.0, 10.0, 5.0], [0.5, 0.2, 0.1]), _frame(),
               ParsedExpression('the the of', 'the the of'), text, _config(), calibrated=True)
    assert not d.found and d.message == "'the the of' names no object"


def test_the_word_standout_is_how_far_the_answer_stands_out_for_its_weakest_look_word():
    # mask features are the unit vectors e0..e3, s(n, w) = 100·[n = w]; "green" is e0 (mask
    # 0's look), "star" is e1 (mask 1's): mask 0 answers "the green star" by s but stands
    # out for "green" only: 100 - 25 for it, 0 - 25 for "star"
    words = torch.eye(4, 8)[[0, 1]]
    d = decide(_scores([60.0, 40.0, 10.0, 6.0], [0.5, 0.2, 0.1]), _frame(), PARSE,
               replace(_text(), words=words), _config(), calibrated=True)
    assert d.index == 0
    assert d.signals['presence_x'][5] == pytest.approx(-25.0)
    assert d.signals['confidence_x'][5] == pytest.approx(-25.0)
    # its only look word is its own: 75, capped
    d = decide(_scores([60.0, 40.0, 10.0, 6.0], [0.5, 0.2, 0.1]), _frame(), PARSE,
               replace(_text(), words=words[:1]), _config(), calibrated=True)
    assert d.signals['presence_x'][5] == pytest.approx(WORD_STANDOUT_CAP)
    # no look word (the phrase names only a generic noun): 0
    d = decide(_scores([60.0, 40.0, 10.0, 6.0], [0.5, 0.2, 0.1]), _frame(), PARSE, _text(),
               _config(), calibrated=True)
    assert d.signals['presence_x'][5] == 0.0


def test_the_contrasts_ask_whether_another_colour_or_object_word_fits_the_best_mask_better():
    # mask features are the unit vectors e0..e3; the contrast rows are the look phrase ("the
    # red cube": e0, mask 0 fits it best, s = 100), two colour swaps, one object swap
    e = torch.eye(8)
    blue, green, ball = 0.6 * e[0] + 0.8 * e[1], e[2], e[0] + e[3]   # s(mask 0): 60, 0, 70.7
    text = replace(_text(), contrast=torch.stack([e[0], blue, green, ball]),
                   contrast_counts=(2, 1))
    scores = _scores([60.0, 40.0, 10.0, 6.0], [0.5, 0.2, 0.1])
    d = decide(scores, _frame(), PARSE, text, _config(), calibrated=True)
    assert d.signals['presence_x'][6:10] == [pytest.approx(100.0 - 60.0),
                                             pytest.approx(100.0 - 100.0 / math.sqrt(2.0)),
                                             1.0, 1.0]
    # read at the mask that fits the look phrase best (mask 3 here, s = 99.5), within the cap
    text = replace(text, contrast=torch.stack([0.1 * e[0] + e[3], blue, green, e[0]]))
    d = decide(scores, _frame(), PARSE, text, _config(), calibrated=True)
    assert d.signals['presence_x'][6:8] == [pytest.approx(CONTRAST_CAP)] * 2
    # a phrase with an object word only has no colour contrast (0); with neither, (0, 0)
    text = replace(_text(), contrast=torch.stack([e[0], 0.8 * e[0] + 0.6 * e[3]]),
                   contrast_counts=(0, 1))
    d = decide(scores, _frame(), PARSE, text, _config(), calibrated=True)
    assert d.signals['presence_x'][6:10] == [0.0, pytest.approx(20.0), 0.0, 1.0]
    d = decide(scores, _frame(), PARSE, _text(), _config(), calibrated=True)
    assert d.signals['presence_x'][6:10] == [0.0, 0.0, 0.0, 0.0]


def test_a_phrase_naming_a_colour_and_an_anchored_expression_get_their_own_slopes():
    # x[10:13] = (best s, standout, word standout) where the phrase names a contrast colour,
    # x[13:16] the same where the expression has an anchor; 0 where it does not
    e = torch.eye(8)
    scores = _scores([60.0, 40.0, 10.0, 6.0], [0.5, 0.2, 0.1])
    words = torch.eye(4, 8)[[0]]
    coloured = replace(_text(), words=words, contrast=torch.stack([e[0], e[1], e[2]]),
                       contrast_counts=(1, 1))
    d = decide(scores, _frame(), PARSE, coloured, _config(), calibrated=True)
    x = d.signals['presence_x']
    assert len(x) == 18 and x[8] == 1.0 and x[2] == 0.0
    assert x[10:13] == [pytest.approx(x[0]), pytest.approx(x[4]), pytest.approx(x[5])]
    assert x[13:16] == [0.0, 0.0, 0.0]
    anchored = ParsedExpression('the cube left of the ball', 'the cube', ('the ball',),
                                relation='left')
    d = decide(scores, _frame(), anchored, replace(_text(other=True), words=words), _config(),
               calibrated=True)
    x = d.signals['presence_x']
    assert x[2] == 1.0 and x[8] == 0.0 and x[10:13] == [0.0, 0.0, 0.0]
    assert x[13:16] == [pytest.approx(x[0]), pytest.approx(x[4]), pytest.approx(x[5])]
    # their weights act: a negative slope on the coloured phrase's s rejects it
    config = _config(presence_weights=(1.0, 0.0, 0.0, -30.0) + (0.0,) * 6
                     + (-1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0))
    assert decide(scores, _frame(), PARSE, _text(), config, calibrated=True).found
    assert not decide(scores, _frame(), PARSE, coloured, config, calibrated=True).found


def test_each_phrase_form_is_judged_by_its_own_presence_threshold():
    # P(present) = σ(s_top − 40); s_top = 41: P ≈ 0.73, under a threshold of 0.8, above 0.5
    e = torch.eye(8)
    scores = _scores([41.0, 30.0, 10.0, 6.0], [0.5, 0.2, 0.1])
    coloured = replace(_text(), contrast=torch.stack([e[0], e[1], e[2]]),
                       contrast_counts=(1, 1))
    plain = replace(_text(), contrast=torch.stack([e[0], e[1]]), contrast_counts=(0, 1))
    anchored = ParsedExpression('the cube left of the ball', 'the cube', ('the ball',),
                                relation='left')
    strict = dict(presence_threshold=0.8, presence_threshold_plain=0.8,
                  presence_threshold_anchored=0.8)
    cases = [(PARSE, coloured, 'presence_threshold', 'colour'),
             (PARSE, plain, 'presence_threshold_plain', 'plain'),
             (anchored, _text(other=True), 'presence_threshold_anchored', 'anchored')]
    for parse, text, field, form in cases:
        d = decide(scores, _frame(), parse, text, _config(**strict), calibrated=True)
        assert not d.found and phrase_form(d.signals['presence_x']) == form
        # lowering the form's own threshold keeps it; lowering another form's does not
        assert decide(scores, _frame(), parse, text, _config(**{**strict, field: 0.5}),
                      calibrated=True).found
        other = next(f for f in strict if f != field)
        assert not decide(scores, _frame(), parse, text, _config(**{**strict, other: 0.5}),
                          calibrated=True).found
    assert HybridGLConfig().decision.threshold_for('plain') == (
        HybridGLConfig().decision.presence_threshold_plain)


def test_an_anchor_whose_best_mask_another_colour_fits_better_is_the_one_missing():
    """x[16:18] = the anchor phrase's colour and object contrasts at its best mask by q:
    "the square left of the blue ring" beside an orange ring reads a negative colour
    contrast, and rejected, the message names the relation (the anchor is the likelier one
    missing)."""
    e = torch.eye(8)
    parse = ParsedExpression('the square left of the blue ring', 'the square',
                             ('the blue ring',), relation='left')
    q = torch.tensor([0.0, 0.0, 1.0, 0.0])                # the anchor's best mask: 2 (x 90)
    scores = _scores([60.0, 59.0, 20.0, 5.0], [0.2, 0.6, 0.1], relation='left', q=q,
                     partners=torch.tensor([2]), weights=torch.tensor([1.0]))
    # rows: "the blue ring", then its colour swap "the orange ring" (mask 2's feature is e[2])
    for look, swap, sign in ((e[2] + 0.2 * e[3], e[3], 1.0), (e[3], e[2] + 0.2 * e[3], -1.0)):
        text = replace(_text(other=True), anchor_contrast=torch.stack([look, swap]),
                       anchor_contrast_counts=(1, 0))
        x = decide(scores, _frame(), parse, text, _config(), calibrated=True).signals[
            'presence_x']
        # ±100·(1/√1.04 − 0.2/√1.04) = ±78 logits, within ±CONTRAST_CAP
        assert len(x) == 18 and x[17] == 0.0 and x[16] == sign * CONTRAST_CAP
    # P(present) = σ(s_top − 40 + anchor colour contrast): rejected, the relation named
    config = _config(presence_weights=(1.0, 0.0, 0.0, -30.0) + (0.0,) * 12 + (1.0, 0.0))
    d = decide(scores, _frame(), parse, text, config, calibrated=True)
    assert not d.found and d.message == "no 'square' left of 'blue ring' in view"
    # no anchor: both 0
    x = decide(scores, _frame(), PARSE, _text(), _config(), calibrated=True).signals[
        'presence_x']
    assert x[16:18] == [0.0, 0.0]


def test_a_best_mask_another_object_word_fits_better_is_not_found():
    # P(present) = σ(s_top − 40 + object contrast); s_top = 60
    config = _config(presence_weights=(1.0, 0.0, 0.0, -30.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0)
                     + (0.0,) * 8)
    e = torch.eye(8)
    scores = _scores([60.0, 40.0, 10.0, 6.0], [0.5, 0.2, 0.1])
    fits = replace(_text(), contrast=torch.stack([e[0], e[1]]), contrast_counts=(0, 1))
    assert decide(scores, _frame(), PARSE, fits, config, calibrated=True).found
    # "the red cube" fits masks 0 and 1 alike (70.7); "the red ball" fits mask 0 fully (100)
    other = replace(fits, contrast=torch.stack([e[0] + e[1], e[0]]),
                    contrast_phrases=('the red ball',))
    parse = ParsedExpression('the red cube', 'the red cube')
    d = decide(scores, _frame(), parse, other, config, calibrated=True)
    assert d.signals['presence_x'][7] == pytest.approx(100.0 / math.sqrt(2.0) - 100.0)
    assert not d.found
    assert d.message == "no 'red cube' in view (the closest looks more like 'red ball')"


def test_the_confidence_reads_how_far_the_answer_stands_out_from_the_other_masks():
    # s = 60, 40, 10, 6: the answer (0) stands out by 60 - mean(40, 10, 6)
    d = decide(_scores([60.0, 40.0, 10.0, 6.0], [0.5, 0.2, 0.1]), _frame(), PARSE, _text(),
               _config(), calibrated=True)
    assert d.index == 0 and len(d.signals['confidence_x']) == 7
    assert d.signals['confidence_x'][6] == pytest.approx(60.0 - 56.0 / 3)
    assert d.signals['presence_x'][4] == pytest.approx(60.0 - 56.0 / 3)


def test_a_look_alike_outside_the_top_k_candidates_is_still_an_alternative():
    # proposals 3 and 4 are halves of proposal 0 and take the candidates' places 2 and 3;
    # proposal 2, a distinct object tied in s, is not a candidate (no F) but is a near tie
    boxes = BOXES + [[10, 10, 20, 10]]
    d = decide(_scores([60.0, 5.0, 58.5, 59.5, 59.0], [0.5, 0.3, 0.2]), _frame(boxes), PARSE,
               _text(), _config(), calibrated=True)
    assert d.found and d.index == 0 and d.ambiguous
    assert [i for i, _ in d.alternatives] == [2]
    # the s margin to the best other object reads all masks: 60 - 58.5
    assert d.signals['confidence_x'][1] == pytest.approx(1.5)
    seg = answer(_frame(boxes), 'the ball', PARSE, _scores([60.0, 5.0, 58.5, 59.5, 59.0],
                                                            [0.5, 0.3, 0.2]), d, {}, '', None)
    assert seg.alternatives[0].index == 2 and math.isnan(seg.alternatives[0].score)
    assert seg.alternatives[0].to_dict()['score'] is None


def test_a_part_of_the_picture_is_no_anchor_for_presence():
    """"The left side" of "the cube on the left side" is always there: the presence test
    reads no anchor for it, as for "the cube on the left" (before, it read "has an anchor"
    and the anchor's s, and such queries were rejected more often)."""
    config = _config(presence_weights=(1.0, 1.0, -30.0, -30.0) + (0.0,) * 14)
    scores = _scores([60.0, 40.0, 10.0, 6.0], [0.5, 0.2, 0.1])
    region = ParsedExpression('the cube on the left side', 'the cube', ('the left side',))
    plain = ParsedExpression('the cube on the left', 'the cube')
    anchored = ParsedExpression('the cube left of the ball', 'the cube', ('the ball',),
                                relation='left')
    with_region = decide(scores, _frame(), region, _text(other=True), config, calibrated=True)
    without = decide(scores, _frame(), plain, _text(), config, calibrated=True)
    with_anchor = decide(scores, _frame(), anchored, _text(other=True), config,
                         calibrated=True)
    assert with_region.signals['presence_x'] == without.signals['presence_x']
    assert with_region.presence == without.presence and with_region.found
    assert with_anchor.signals['presence_x'][1:3] == [pytest.approx(100.0 / math.sqrt(8)), 1.0]
    assert has_anchor(anchored, _text(other=True)) and not has_anchor(region, _text(other=True))
