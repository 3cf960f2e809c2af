"""The decision step (core/decision.py) on hand-built scores: the answer, not found, near ties,
the relation that must hold, the look margin, messages, confidence, parity and uncalibrated
weights. What P(present) reads is in test_presence.py."""
import math
from dataclasses import replace

import decision_cases as dc
import pytest
import torch
from decision_cases import BOXES, PARSE

from hybridgl_ros.core.decision import absent_message, answer, decide
from hybridgl_ros.core.types import ParsedExpression


def test_an_absent_target_is_not_found_and_the_message_names_it():
    d = decide(dc.scores([30.0, 20.0, 10.0, 5.0], [0.5, 0.2, 0.1]), dc.frame(), PARSE, dc.text(),
               dc.config(), calibrated=True)
    assert not d.found and d.index == -1 and d.rule == 'absent'
    assert d.message == "no 'elephant' in view"
    assert d.presence < 0.01 and math.isclose(d.confidence, 1 - d.presence)


def test_a_present_target_is_found_with_a_confidence_in_0_1():
    d = decide(dc.scores([60.0, 40.0, 10.0, 5.0], [0.5, 0.2, 0.1]), dc.frame(), PARSE, dc.text(),
               dc.config(), calibrated=True)
    assert d.found and d.index == 0 and d.rule == 'method' and not d.ambiguous
    assert d.presence > 0.99
    # s margin to the best other object: 60 - 40 = 20 -> σ(10), times P(present) ~ 1
    assert d.confidence == pytest.approx(d.presence / (1 + math.exp(-10)))


def test_the_confidence_is_p_present_times_p_right_given_present():
    # s 41 of the best mask: P(present) = σ(1) ~ 0.73, kept above a threshold of 0.5; s margin
    # 41 - 37 = 4 -> P(right | present) = σ(2): the answer is right only if both hold
    d = decide(dc.scores([41.0, 37.0, 10.0, 5.0], [0.5, 0.2, 0.1]), dc.frame(), PARSE, dc.text(),
               dc.config(presence_threshold=0.5, presence_threshold_plain=0.5,
                         presence_threshold_anchored=0.5), calibrated=True)
    assert d.found and d.index == 0
    assert d.presence == pytest.approx(1 / (1 + math.exp(-1)), rel=1e-5)
    assert d.confidence == pytest.approx(d.presence / (1 + math.exp(-2)), rel=1e-5)


def test_uncalibrated_weights_never_reject_and_give_no_confidence():
    d = decide(dc.scores([30.0, 20.0, 10.0, 5.0], [0.5, 0.2, 0.1]), dc.frame(), PARSE, dc.text(),
               dc.config(), calibrated=False)
    assert d.found and d.index == 0
    assert math.isnan(d.confidence) and math.isnan(d.presence)


def test_reference_parity_never_rejects():
    config = replace(dc.config(), parity='reference')
    d = decide(dc.scores([30.0, 20.0, 10.0, 5.0], [0.5, 0.2, 0.1]), dc.frame(), PARSE, dc.text(),
               config, calibrated=True)
    assert d.found and d.index == 0


def test_a_near_tied_look_alike_makes_the_answer_ambiguous():
    d = decide(dc.scores([60.0, 58.5, 30.0, 5.0], [0.5, 0.45, 0.1]), dc.frame(), PARSE, dc.text(),
               dc.config(), calibrated=True)
    assert d.found and d.index == 0 and d.ambiguous
    assert [i for i, _ in d.alternatives] == [1]
    assert 0.0 < d.alternatives[0][1] < 1.0


def test_a_clear_margin_is_not_ambiguous():
    d = decide(dc.scores([60.0, 55.0, 30.0, 5.0], [0.5, 0.45, 0.1]), dc.frame(), PARSE, dc.text(),
               dc.config(), calibrated=True)
    assert not d.ambiguous and d.alternatives == ()


def test_a_mask_of_the_same_object_is_no_alternative():
    # proposal 3 is the left half of proposal 0: tied in s, but the same object
    d = decide(dc.scores([60.0, 10.0, 5.0, 59.5], [0.5, 0.45, 0.1]), dc.frame(), PARSE, dc.text(),
               dc.config(), calibrated=True)
    assert d.found and not d.ambiguous


def test_a_position_word_that_separates_the_look_alikes_is_not_ambiguous():
    scores = dc.scores([60.0, 59.5, 30.0, 5.0], [0.9, 0.4, 0.1], direction='left')
    d = decide(scores, dc.frame(), PARSE, dc.text(), dc.config(), calibrated=True)
    assert d.found and d.index == 0 and not d.ambiguous


def test_a_position_word_that_does_not_separate_them_is_ambiguous():
    scores = dc.scores([60.0, 59.5, 30.0, 5.0], [0.50, 0.48, 0.1], direction='left')
    d = decide(scores, dc.frame(), PARSE, dc.text(), dc.config(), calibrated=True)
    assert d.ambiguous and [i for i, _ in d.alternatives] == [1]


SMALL_BALL = ParsedExpression('the small red ball', 'the small red ball')
#: Mask 0 a 20 x 20 square, mask 1 a 30 x 30 one (2.25 times its area), mask 2 a 22 x 22 one.
SIZES = [[10, 5, 20, 20], [45, 5, 30, 30], [90, 5, 22, 22], [10, 5, 10, 20]]


@pytest.mark.parametrize('text, best_f, answer, ambiguous, tie_margin', [
    ('the small red ball', 0, 0, False, 50.0),    # F's pick is the smaller: told apart
    ('the big red ball', 1, 1, False, 100.0),     # the bigger, 1.86 times mask 2 too: the cap
    ('the small red ball', 1, 0, False, 49.0),    # the word favours the look-alike: it answers
    ('the red ball', 0, 0, True, 1.0),            # no size word: a tie
])
def test_a_size_word_tells_look_alikes_of_other_sizes_apart(text, best_f, answer, ambiguous,
                                                            tie_margin):
    s = [60.0, 59.0, 10.0, 5.0] if best_f == 0 else [59.0, 60.0, 10.0, 5.0]
    d = decide(dc.scores(s, [0.5, 0.45, 0.1]), dc.frame(SIZES), ParsedExpression(text, text),
               dc.text(), dc.config(), calibrated=True)
    assert d.found and d.index == answer and d.ambiguous == ambiguous
    assert d.rule == ('size' if answer != best_f else 'method')
    # the s margin to the nearest object that may tie (mask 2 at s 10 when the other is told
    # apart; none but parts of other sizes: the cap), for hybridgl calibrate
    assert d.signals['tie_margin'] == pytest.approx(tie_margin)


def test_look_alikes_of_about_one_size_stay_a_tie_and_the_ratio_can_be_off():
    # masks 0 and 2: 400 and 484 pixels (1.21 times): "small" does not tell them apart
    d = decide(dc.scores([60.0, 10.0, 59.0, 5.0], [0.5, 0.45, 0.1]), dc.frame(SIZES),
               SMALL_BALL, dc.text(), dc.config(), calibrated=True)
    assert d.ambiguous and [i for i, _ in d.alternatives] == [2]
    # size_apart_ratio 0: the size word tells nothing apart
    d = decide(dc.scores([60.0, 59.0, 10.0, 5.0], [0.5, 0.45, 0.1]), dc.frame(SIZES),
               SMALL_BALL, dc.text(), dc.config(size_apart_ratio=0.0), calibrated=True)
    assert d.ambiguous and [i for i, _ in d.alternatives] == [1]


def test_a_size_word_picks_only_look_alikes_among_the_candidates():
    # mask 0 small, 1 and 2 big, 3 a copy of 1: top-3 by s are 1, 3, 2; the small twin (0)
    # that "small" favours has no F, so the answer stays (and says which ones may be meant)
    boxes = [[10, 5, 20, 20], [45, 5, 30, 30], [90, 5, 30, 30], [45, 5, 30, 30]]
    d = decide(dc.scores([50.0, 60.0, 58.0, 59.0], [0.5, 0.45, 0.4]), dc.frame(boxes),
               SMALL_BALL, dc.text(), dc.config(ambiguity_margin=30.0), calibrated=True)
    assert d.found and d.index == 1 and d.rule == 'method'
    assert d.ambiguous and [i for i, _ in d.alternatives] == [2, 0]
    # a smaller candidate more than guidance.size_lookalike_margin (20) below the answer is
    # another look ("the small orange ball" answered by a small orange star): no pick
    d = decide(dc.scores([35.0, 60.0, 10.0, 5.0], [0.5, 0.3, 0.1]), dc.frame(SIZES),
               SMALL_BALL, dc.text(), dc.config(ambiguity_margin=30.0), calibrated=True)
    assert d.index == 1 and d.rule == 'method' and [i for i, _ in d.alternatives] == [0]


def test_the_tie_margin_skips_a_part_of_the_answer():
    # mask 3 (s 59) is the answer's left half: the nearest other object is mask 1 (s 10)
    d = decide(dc.scores([60.0, 10.0, 5.0, 59.0], [0.5, 0.45, 0.1]), dc.frame(), PARSE,
               dc.text(), dc.config(), calibrated=True)
    assert not d.ambiguous and d.signals['tie_margin'] == pytest.approx(50.0)


def _relation_query(final):
    """'the square left of the ring': candidates 0 (x 10) and 1 (x 50) match the target, the
    anchor (q = 1) is proposal 2 at x 90."""
    q = torch.tensor([0.0, 0.0, 1.0, 0.0])
    return dc.scores([60.0, 59.0, 20.0, 5.0], final, relation='left', q=q,
                   partners=torch.tensor([2]), weights=torch.tensor([1.0]))


def test_the_relation_must_hold_for_the_answer():
    parse = ParsedExpression('the square left of the ring', 'the square', ('the ring',),
                             relation='left')
    # anchor at x = 90; candidate 0 (x = 10) and 1 (x = 50) are both left of it: F decides
    d = decide(_relation_query([0.2, 0.6, 0.1]), dc.frame(), parse, dc.text(other=True),
               dc.config(), calibrated=True)
    assert d.found and d.index == 1 and d.rule == 'method'


def _nothing_right_of_the_ring():
    """(parse, scores) of 'the square right of the ring' on :func:`_relation_query`'s scene:
    nothing but the anchor itself lies right of x = 90, so the relation fails."""
    parse = ParsedExpression('the square right of the ring', 'the square', ('the ring',),
                             relation='right')
    scores = _relation_query([0.2, 0.6, 0.1])
    return parse, replace(scores, plan=replace(scores.plan, relation='right'))


def test_a_relation_that_holds_for_no_candidate_is_not_found_and_says_so():
    parse, scores = _nothing_right_of_the_ring()
    d = decide(scores, dc.frame(), parse, dc.text(other=True), dc.config(), calibrated=True)
    assert not d.found and d.rule == 'absent'
    assert d.message == "no 'square' right of 'ring' in view"


def test_a_relation_that_holds_for_nothing_is_not_found_whatever_p_present_says():
    """decision.relation_fails_absent: with a calibration that does not weigh "relation
    fails" (its weight 0 here), P(present) is high, yet no square lies right of the ring: not
    found. Off, the best F answers (as do parity mode and reject_absent off)."""
    parse, scores = _nothing_right_of_the_ring()
    blind = dict(presence_weights=dc.presence_weights({0: 1.0}))
    d = decide(scores, dc.frame(), parse, dc.text(other=True), dc.config(**blind),
               calibrated=True)
    assert d.presence > 0.99 and not d.found and d.rule == 'absent'
    assert d.signals['relation_fails'] and d.signals['relation_absent']
    assert d.message == "no 'square' right of 'ring' in view"
    assert d.confidence == pytest.approx(1.0 - d.presence)
    for config in (dc.config(relation_fails_absent=False, **blind),
                   dc.config(reject_absent=False, **blind),
                   replace(dc.config(**blind), parity='reference')):
        d = decide(scores, dc.frame(), parse, dc.text(other=True), config, calibrated=True)
        assert d.found and d.index == 1 and not d.signals['relation_absent']


def test_a_rejected_expression_names_the_anchor_when_it_is_the_likelier_one_missing():
    """'the square below the ring' rejected: the anchor's best s (100 / sqrt(8) = 35.4 here)
    below the target look's best says the ring is the likelier one missing, above it the
    square."""
    parse = ParsedExpression('the square below the ring', 'the square', ('the ring',),
                             relation='down')
    anchor_s = 100.0 / math.sqrt(8)
    for look_top, message in ((anchor_s + 2.0, "no 'square' below 'ring' in view"),
                              (anchor_s - 5.0, "no 'square' in view")):
        scores = dc.scores([look_top, 20.0, 10.0, 5.0], [0.5, 0.2, 0.1], relation='down')
        d = decide(scores, dc.frame(), parse, dc.text(other=True), dc.config(), calibrated=True)
        assert not d.found and d.rule == 'absent' and not d.signals['relation_fails']
        assert d.message == message
    # a target phrase the text encoder knows no word of is the missing one, whatever its s
    scores = dc.scores([anchor_s + 2.0, 20.0, 10.0, 5.0], [0.5, 0.2, 0.1], relation='down')
    unknown = replace(dc.text(other=True), names_known_word=False)
    d = decide(scores, dc.frame(), parse, unknown, dc.config(), calibrated=True)
    assert not d.found and d.message == "no 'square' in view"


def test_relation_choice_moves_to_the_candidate_the_relation_holds_for():
    parse = ParsedExpression('the square left of the ring', 'the square', ('the ring',),
                             relation='left')
    q = torch.tensor([0.0, 1.0, 0.0, 0.0])                         # anchor: proposal 1 (x 50)
    # candidates by s: 0 (x 10), 2 (x 90), 1 (the anchor); F prefers 2, right of the anchor
    scores = dc.scores([60.0, 20.0, 59.0, 5.0], [0.2, 0.6, 0.1], relation='left', q=q,
                     partners=torch.tensor([1]), weights=torch.tensor([1.0]))
    d = decide(scores, dc.frame(), parse, dc.text(other=True), dc.config(), calibrated=True)
    assert d.found and d.index == 0 and d.rule == 'relation'
    assert d.signals['method_choice'] == 2


#: 'the square above the ring' (the ring: mask 2, centre (55, 30)): mask 0 lies straight above
#: it (centre (57, 5)), mask 1 above it too but mostly to its left (centre (5, 15)), mask 3
#: below it.
ABOVE_BOXES = [[52, 0, 10, 10], [0, 10, 10, 10], [50, 25, 10, 10], [100, 28, 10, 10]]


def _above_the_ring(s, final, boxes=ABOVE_BOXES):
    """(parse, scores, frame) of 'the square above the ring' on these boxes, the ring (mask
    2) its anchor, with these s and F."""
    parse = ParsedExpression('the square above the ring', 'the square', ('the ring',),
                             relation='up')
    scores = dc.scores(s, final, relation='up', q=torch.tensor([0.0, 0.0, 1.0, 0.0]),
                       partners=torch.tensor([2]), weights=torch.tensor([1.0]))
    return parse, scores, dc.frame(boxes)


def test_among_candidates_the_relation_holds_for_one_mostly_in_its_direction_answers():
    """decision.relation_aligned_first (the default): F prefers mask 1, above the ring by its
    centre but three times as far to its left as above it; the square straight above it
    answers. Off, or in parity mode, F's pick stands: both hold."""
    # candidates by s: 1, 0, 2 (the anchor); F: 0.6, 0.2, 0.1
    parse, scores, frame = _above_the_ring([59.0, 60.0, 20.0, 5.0], [0.6, 0.2, 0.1])
    d = decide(scores, frame, parse, dc.text(other=True), dc.config(), calibrated=True)
    assert d.found and d.index == 0 and d.rule == 'relation'
    for config in (dc.config(relation_aligned_first=False),
                   replace(dc.config(), parity='reference')):
        d = decide(scores, frame, parse, dc.text(other=True), config, calibrated=True)
        assert d.found and d.index == 1 and d.rule == 'method'


def test_a_part_lying_in_the_direction_does_not_answer_before_its_whole():
    """relation_aligned_first: 'the square above the ring': mask 0, wide, lies above the ring
    but mostly across (centre (30, 7) against the ring's (55, 30)); mask 1 is its right part,
    straight above the ring. The part is the same object, not another square: F's pick, the
    whole, stays."""
    boxes = [[0, 0, 60, 14], [40, 0, 20, 14], [50, 25, 10, 10], [100, 28, 10, 10]]
    parse, scores, frame = _above_the_ring([60.0, 59.0, 20.0, 5.0], [0.6, 0.2, 0.1], boxes)
    d = decide(scores, frame, parse, dc.text(other=True), dc.config(), calibrated=True)
    assert d.found and d.index == 0 and d.rule == 'method'


def test_a_mask_that_reads_as_another_object_is_not_moved_ahead():
    """relation_aligned_first: 'the square above the ring' as in the test before last, but
    mask 0, straight above the ring, reads as a ball (its s for "the ball" above its s for
    "the square": the crescent of a ball within the match margin). It is not moved ahead of
    F's pick; when it reads as the square it is."""
    parse, scores, frame = _above_the_ring([59.0, 60.0, 20.0, 5.0], [0.6, 0.2, 0.1])
    eye = torch.eye(4, 8)
    for phrase, swap, index in ((eye[1], eye[0], 1), (eye[0] + eye[1], eye[2], 0)):
        text = replace(dc.text(other=True), contrast=torch.stack([phrase, swap]),
                       contrast_counts=(0, 1), contrast_phrases=('the ball',))
        d = decide(scores, frame, parse, text, dc.config(), calibrated=True)
        assert d.found and d.index == index


def test_a_mask_matching_the_target_worse_than_f_pick_is_not_moved_ahead():
    """relation_aligned_first: mask 0, straight above the ring, has an s 5 logits under F's
    pick (mask 1): beyond decision.relation_aligned_margin (3) it stays behind; with a margin
    of 6 it answers."""
    parse, scores, frame = _above_the_ring([55.0, 60.0, 20.0, 5.0], [0.6, 0.2, 0.1])
    for margin, index in ((3.0, 1), (6.0, 0)):
        d = decide(scores, frame, parse, dc.text(other=True),
                   dc.config(relation_aligned_margin=margin),
                   calibrated=True)
        assert d.found and d.index == index


def test_a_part_of_the_anchor_is_not_moved_ahead():
    """relation_aligned_first: 'the square above the ring', mask 0 the ring's top strip
    (inside the anchor, mask 2, and straight above its centre), mask 1 a square above the
    ring and mostly to its left. A part of the anchor is no other object: F's pick answers."""
    boxes = [[50, 25, 10, 4], [0, 10, 10, 10], [50, 25, 10, 10], [100, 28, 10, 10]]
    parse, scores, frame = _above_the_ring([59.0, 60.0, 20.0, 5.0], [0.6, 0.2, 0.1], boxes)
    d = decide(scores, frame, parse, dc.text(other=True), dc.config(), calibrated=True)
    assert d.found and d.index == 1


def test_with_aligned_only_a_candidate_lying_mostly_elsewhere_does_not_hold():
    """decision.relation_aligned_only: 'the square above the ring', the only candidate
    above it (mask 1) three times as far to its left as above it. By the spec's sense (the
    default) the relation holds for it and it answers; with the option it does not, the
    relation fails, and the answer is "not found"."""
    # mask 0 (straight above) out of reach: s 5; candidates by s: 1, 2 (the anchor), 3
    parse, scores, frame = _above_the_ring([5.0, 60.0, 20.0, 19.0], [0.6, 0.2, 0.1])
    d = decide(scores, frame, parse, dc.text(other=True), dc.config(), calibrated=True)
    assert d.found and d.index == 1
    d = decide(scores, frame, parse, dc.text(other=True),
               dc.config(relation_aligned_only=True), calibrated=True)
    assert not d.found and d.signals['relation_fails'] and d.rule == 'absent'
    assert d.message == "no 'square' above 'ring' in view"


def test_a_candidate_lies_mostly_in_the_direction_when_its_offset_along_it_is_larger():
    from hybridgl_ros.core.guidance import aligned_factor

    anchor = torch.tensor([[50.0, 25.0, 10.0, 10.0]])               # centre (55, 30)
    boxes = torch.tensor(ABOVE_BOXES, dtype=torch.float32)
    assert aligned_factor('up', boxes, anchor)[:, 0].tolist() == [True, False, False, False]
    assert aligned_factor('left', boxes, anchor)[:, 0].tolist() == [False, True, False, False]
    # not a position relation: the pair factor as it is (smaller than the anchor)
    assert aligned_factor('small', boxes, anchor)[:, 0].tolist() == [False, False, False, False]


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
    scores = dc.scores([60.0, 20.0, 55.0, 5.0], [0.2, 0.6, 0.1], relation='right', q=q,
                     partners=torch.tensor([2, 0]), weights=torch.tensor([1.0, 1e-9]))
    d = decide(scores, dc.frame(), parse, dc.text(other=True), dc.config(), calibrated=True)
    assert d.signals['relation_fails'] and not d.found
    assert d.message == "no 'square' right of 'ring' in view"
    # the anchor is proposal 3, the left half of candidate 0: 0 lies right of its own half
    # (centre x 20 > 15) but does not answer; candidate 2 (x 90) does
    q = torch.tensor([0.0, 0.0, 1e-9, 1.0])
    scores = dc.scores([60.0, 20.0, 55.0, 5.0], [0.6, 0.2, 0.1], relation='right', q=q,
                     partners=torch.tensor([3, 2]), weights=torch.tensor([1.0, 1e-9]))
    d = decide(scores, dc.frame(), parse, dc.text(other=True), dc.config(), calibrated=True)
    assert d.found and d.index == 2 and d.rule == 'relation'


def test_a_relation_to_an_anchor_naming_nothing_the_model_knows_is_not_found():
    """"the square left of the 🐘": the relation cannot be checked; not found whatever the
    calibration (as for a target phrase naming nothing), and parity mode answers."""
    parse = ParsedExpression('the square left of the 🐘', 'the square', ('the 🐘',),
                             relation='left')
    text = replace(dc.text(other=True), anchor_names_known_word=False)
    for calibrated in (True, False):
        d = decide(_relation_query([0.2, 0.6, 0.1]), dc.frame(), parse, text, dc.config(),
                   calibrated=calibrated)
        assert not d.found and d.rule == 'absent'
        assert d.message == ("the anchor '🐘' names no object the model knows: the relation "
                             "cannot be checked")
    reference = replace(dc.config(), parity='reference')
    assert decide(_relation_query([0.2, 0.6, 0.1]), dc.frame(), parse, text, reference,
                  calibrated=True).found
    # without a relation word the anchor does not matter ("the square with the 🐘")
    scores = _relation_query([0.2, 0.6, 0.1])
    scores = replace(scores, plan=replace(scores.plan, relation='none'))
    assert decide(scores, dc.frame(), replace(parse, relation='none'), text, dc.config(),
                  calibrated=True).found


def test_an_expression_the_method_cannot_check_is_not_found_with_why():
    """The default mode's parse says why ("the ring not left of the ring", text.everyday_
    phrasing): not found whatever the calibration, the reason is the message; parity mode and
    decision.reject_absent off answer."""
    why = "'not' negates, which the method cannot check"
    parse = ParsedExpression('the square not left of the ring', 'the square', ('the ring',),
                             relation='left', cannot_check=why)
    for calibrated in (True, False):
        d = decide(_relation_query([0.2, 0.6, 0.1]), dc.frame(), parse, dc.text(other=True),
                   dc.config(), calibrated=calibrated)
        assert not d.found and d.rule == 'absent' and d.message == why
    reference = replace(dc.config(), parity='reference')
    assert decide(_relation_query([0.2, 0.6, 0.1]), dc.frame(), parse, dc.text(other=True),
                  reference, calibrated=True).found
    assert decide(_relation_query([0.2, 0.6, 0.1]), dc.frame(), parse, dc.text(other=True),
                  dc.config(reject_absent=False), calibrated=True).found


def test_a_position_word_never_picks_a_candidate_that_does_not_look_like_the_target():
    """"the ring on the left": the method's F prefers candidate 2 (leftmost) whose s is 43
    below the best; with decision.look_margin (30) the answer is the best F among the
    candidates that look like the target (1, s 38); off (0) and parity mode keep argmax F."""
    parse = ParsedExpression('the ring on the left', 'the ring', relation='left',
                             direction='left')
    scores = dc.scores([50.0, 38.0, 7.0, -1.0], [-0.3, 0.0, 0.12], relation='left',
                     direction='left')
    assert scores.chosen == 2
    d = decide(scores, dc.frame(), parse, dc.text(), dc.config(), calibrated=True)
    assert d.found and d.index == 1 and d.rule == 'look'
    assert decide(scores, dc.frame(), parse, dc.text(), dc.config(look_margin=0.0),
                  calibrated=True).index == 2
    reference = replace(dc.config(), parity='reference')
    assert decide(scores, dc.frame(), parse, dc.text(), reference, calibrated=True).index == 2
    # within the margin the method's choice stands
    close = dc.scores([50.0, 38.0, 30.0, -1.0], [-0.3, 0.0, 0.12], relation='left',
                    direction='left')
    d = decide(close, dc.frame(), parse, dc.text(), dc.config(), calibrated=True)
    assert d.index == 2 and d.rule == 'method'


def test_without_relation_must_hold_the_method_choice_stands():
    parse = ParsedExpression('the square left of the ring', 'the square', ('the ring',),
                             relation='left')
    q = torch.tensor([0.0, 1.0, 0.0, 0.0])
    scores = dc.scores([60.0, 20.0, 59.0, 5.0], [0.2, 0.6, 0.1], relation='left', q=q,
                     partners=torch.tensor([1]), weights=torch.tensor([1.0]))
    d = decide(scores, dc.frame(), parse, dc.text(other=True), dc.config(relation_must_hold=False),
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


def test_the_confidence_reads_how_far_the_answer_stands_out_from_the_other_masks():
    # s = 60, 40, 10, 6: the answer (0) stands out by 60 - mean(40, 10, 6)
    d = decide(dc.scores([60.0, 40.0, 10.0, 6.0], [0.5, 0.2, 0.1]), dc.frame(), PARSE, dc.text(),
               dc.config(), calibrated=True)
    assert d.index == 0 and len(d.signals['confidence_x']) == 7
    assert d.signals['confidence_x'][6] == pytest.approx(60.0 - 56.0 / 3)
    assert d.signals['presence_x'][4] == pytest.approx(60.0 - 56.0 / 3)



def test_a_look_alike_outside_the_top_k_candidates_is_still_an_alternative():
    # proposals 3 and 4 are halves of proposal 0 and take the candidates' places 2 and 3;
    # proposal 2, a distinct object tied in s, is not a candidate (no F) but is a near tie
    boxes = BOXES + [[10, 10, 20, 10]]
    d = decide(dc.scores([60.0, 5.0, 58.5, 59.5, 59.0], [0.5, 0.3, 0.2]), dc.frame(boxes), PARSE,
               dc.text(), dc.config(), calibrated=True)
    assert d.found and d.index == 0 and d.ambiguous
    assert [i for i, _ in d.alternatives] == [2]
    # the s margin to the best other object reads all masks: 60 - 58.5
    assert d.signals['confidence_x'][1] == pytest.approx(1.5)
    seg = answer(dc.frame(boxes), 'the ball', PARSE, dc.scores([60.0, 5.0, 58.5, 59.5, 59.0],
                                                            [0.5, 0.3, 0.2]), d, {}, '', None)
    assert seg.alternatives[0].index == 2 and math.isnan(seg.alternatives[0].score)
    assert seg.alternatives[0].to_dict()['score'] is None
