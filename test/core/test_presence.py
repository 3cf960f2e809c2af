"""What P(present) reads (core/presence.py, core/decision.py) on hand-built scores: how far the
best match stands out, the weakest look word, the colour and object contrasts, the anchor's,
each phrase form's slopes and threshold, and the CLIP fingerprint a fit is bound to."""
import math
from dataclasses import replace

import decision_cases as dc
import pytest
import torch
from decision_cases import PARSE

from hybridgl_ros.core.config import HybridGLConfig
from hybridgl_ros.core.decision import clip_fingerprint, decide, has_anchor
from hybridgl_ros.core.presence import CONTRAST_CAP, WORD_STANDOUT_CAP, phrase_form
from hybridgl_ros.core.types import ParsedExpression


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
    d = decide(dc.scores([60.0, 40.0, 10.0, 6.0], [0.5, 0.2, 0.1]), dc.frame(), PARSE, dc.text(),
               dc.config(), calibrated=True)
    assert d.signals['presence_x'][4] == pytest.approx(60.0 - (40.0 + 10.0 + 6.0) / 3)


def test_a_target_phrase_naming_nothing_the_model_knows_is_not_found_even_uncalibrated():
    text = replace(dc.text(), names_known_word=False)
    for calibrated in (True, False):
        d = decide(dc.scores([60.0, 40.0, 10.0, 5.0], [0.5, 0.2, 0.1]), dc.frame(), PARSE, text,
                   dc.config(), calibrated=calibrated)
        assert not d.found and d.message == "no 'elephant' in view"
    parity = decide(dc.scores([60.0, 40.0, 10.0, 5.0], [0.5, 0.2, 0.1]), dc.frame(), PARSE, text,
                    replace(dc.config(), parity='reference'), calibrated=True)
    assert parity.found


def test_an_expression_of_function_words_says_it_names_no_object():
    text = replace(dc.text(), names_known_word=False)
    d = decide(dc.scores([60.0, 40.0, 10.0, 5.0], [0.5, 0.2, 0.1]), dc.frame(),
               ParsedExpression('the the of', 'the the of'), text, dc.config(), calibrated=True)
    assert not d.found and d.message == "'the the of' names no object"


def test_the_word_standout_is_how_far_the_answer_stands_out_for_its_weakest_look_word():
    # mask features are the unit vectors e0..e3, s(n, w) = 100·[n = w]; "green" is e0 (mask
    # 0's look), "star" is e1 (mask 1's): mask 0 answers "the green star" by s but stands
    # out for "green" only: 100 - 25 for it, 0 - 25 for "star"
    words = torch.eye(4, 8)[[0, 1]]
    d = decide(dc.scores([60.0, 40.0, 10.0, 6.0], [0.5, 0.2, 0.1]), dc.frame(), PARSE,
               replace(dc.text(), words=words), dc.config(), calibrated=True)
    assert d.index == 0
    assert d.signals['presence_x'][5] == pytest.approx(-25.0)
    assert d.signals['confidence_x'][5] == pytest.approx(-25.0)
    # its only look word is its own: 75, capped
    d = decide(dc.scores([60.0, 40.0, 10.0, 6.0], [0.5, 0.2, 0.1]), dc.frame(), PARSE,
               replace(dc.text(), words=words[:1]), dc.config(), calibrated=True)
    assert d.signals['presence_x'][5] == pytest.approx(WORD_STANDOUT_CAP)
    # no look word (the phrase names only a generic noun): 0
    d = decide(dc.scores([60.0, 40.0, 10.0, 6.0], [0.5, 0.2, 0.1]), dc.frame(), PARSE, dc.text(),
               dc.config(), calibrated=True)
    assert d.signals['presence_x'][5] == 0.0


def test_the_contrasts_ask_whether_another_colour_or_object_word_fits_the_best_mask_better():
    # mask features are the unit vectors e0..e3; the contrast rows are the look phrase ("the
    # red cube": e0, mask 0 fits it best, s = 100), two colour swaps, one object swap
    e = torch.eye(8)
    blue, green, ball = 0.6 * e[0] + 0.8 * e[1], e[2], e[0] + e[3]   # s(mask 0): 60, 0, 70.7
    text = replace(dc.text(), contrast=torch.stack([e[0], blue, green, ball]),
                   contrast_counts=(2, 1))
    scores = dc.scores([60.0, 40.0, 10.0, 6.0], [0.5, 0.2, 0.1])
    d = decide(scores, dc.frame(), PARSE, text, dc.config(), calibrated=True)
    assert d.signals['presence_x'][6:10] == [pytest.approx(100.0 - 60.0),
                                             pytest.approx(100.0 - 100.0 / math.sqrt(2.0)),
                                             1.0, 1.0]
    # read at the mask that fits the look phrase best (mask 3 here, s = 99.5), within the cap
    text = replace(text, contrast=torch.stack([0.1 * e[0] + e[3], blue, green, e[0]]))
    d = decide(scores, dc.frame(), PARSE, text, dc.config(), calibrated=True)
    assert d.signals['presence_x'][6:8] == [pytest.approx(CONTRAST_CAP)] * 2
    # a phrase with an object word only has no colour contrast (0); with neither, (0, 0)
    text = replace(dc.text(), contrast=torch.stack([e[0], 0.8 * e[0] + 0.6 * e[3]]),
                   contrast_counts=(0, 1))
    d = decide(scores, dc.frame(), PARSE, text, dc.config(), calibrated=True)
    assert d.signals['presence_x'][6:10] == [0.0, pytest.approx(20.0), 0.0, 1.0]
    d = decide(scores, dc.frame(), PARSE, dc.text(), dc.config(), calibrated=True)
    assert d.signals['presence_x'][6:10] == [0.0, 0.0, 0.0, 0.0]


def test_a_phrase_naming_a_colour_and_an_anchored_expression_get_their_own_slopes():
    # x[10:13] = (best s, standout, word standout) where the phrase names a contrast colour,
    # x[13:16] the same where the expression has an anchor; 0 where it does not
    e = torch.eye(8)
    scores = dc.scores([60.0, 40.0, 10.0, 6.0], [0.5, 0.2, 0.1])
    words = torch.eye(4, 8)[[0]]
    coloured = replace(dc.text(), words=words, contrast=torch.stack([e[0], e[1], e[2]]),
                       contrast_counts=(1, 1))
    d = decide(scores, dc.frame(), PARSE, coloured, dc.config(), calibrated=True)
    x = d.signals['presence_x']
    assert len(x) == 20 and x[8] == 1.0 and x[2] == 0.0
    assert x[10:13] == [pytest.approx(x[0]), pytest.approx(x[4]), pytest.approx(x[5])]
    assert x[13:16] == [0.0, 0.0, 0.0]
    anchored = ParsedExpression('the cube left of the ball', 'the cube', ('the ball',),
                                relation='left')
    d = decide(scores, dc.frame(), anchored, replace(dc.text(other=True), words=words),
               dc.config(), calibrated=True)
    x = d.signals['presence_x']
    assert x[2] == 1.0 and x[8] == 0.0 and x[10:13] == [0.0, 0.0, 0.0]
    assert x[13:16] == [pytest.approx(x[0]), pytest.approx(x[4]), pytest.approx(x[5])]
    # their weights act: a negative slope on the coloured phrase's s rejects it
    config = dc.config(presence_weights=dc.presence_weights({0: 1.0, 3: -30.0, 10: -1.0}))
    assert decide(scores, dc.frame(), PARSE, dc.text(), config, calibrated=True).found
    assert not decide(scores, dc.frame(), PARSE, coloured, config, calibrated=True).found


def test_each_phrase_form_is_judged_by_its_own_presence_threshold():
    # P(present) = σ(s_top − 40); s_top = 41: P ≈ 0.73, under a threshold of 0.8, above 0.5
    e = torch.eye(8)
    scores = dc.scores([41.0, 30.0, 10.0, 6.0], [0.5, 0.2, 0.1])
    coloured = replace(dc.text(), contrast=torch.stack([e[0], e[1], e[2]]),
                       contrast_counts=(1, 1))
    plain = replace(dc.text(), contrast=torch.stack([e[0], e[1]]), contrast_counts=(0, 1))
    anchored = ParsedExpression('the cube left of the ball', 'the cube', ('the ball',),
                                relation='left')
    strict = dict(presence_threshold=0.8, presence_threshold_plain=0.8,
                  presence_threshold_anchored=0.8)
    cases = [(PARSE, coloured, 'presence_threshold', 'colour'),
             (PARSE, plain, 'presence_threshold_plain', 'plain'),
             (anchored, dc.text(other=True), 'presence_threshold_anchored', 'anchored')]
    for parse, text, field, form in cases:
        d = decide(scores, dc.frame(), parse, text, dc.config(**strict), calibrated=True)
        assert not d.found and phrase_form(d.signals['presence_x']) == form
        # lowering the form's own threshold keeps it; lowering another form's does not
        assert decide(scores, dc.frame(), parse, text, dc.config(**{**strict, field: 0.5}),
                      calibrated=True).found
        other = next(f for f in strict if f != field)
        assert not decide(scores, dc.frame(), parse, text, dc.config(**{**strict, other: 0.5}),
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
    scores = dc.scores([60.0, 59.0, 20.0, 5.0], [0.2, 0.6, 0.1], relation='left', q=q,
                     partners=torch.tensor([2]), weights=torch.tensor([1.0]))
    # rows: "the blue ring", then its colour swap "the orange ring" (mask 2's feature is e[2])
    for look, swap, sign in ((e[2] + 0.2 * e[3], e[3], 1.0), (e[3], e[2] + 0.2 * e[3], -1.0)):
        text = replace(dc.text(other=True), anchor_contrast=torch.stack([look, swap]),
                       anchor_contrast_counts=(1, 0))
        x = decide(scores, dc.frame(), parse, text, dc.config(), calibrated=True).signals[
            'presence_x']
        # ±100·(1/√1.04 − 0.2/√1.04) = ±78 logits, within ±CONTRAST_CAP
        assert len(x) == 20 and x[17] == 0.0 and x[16] == sign * CONTRAST_CAP
    # P(present) = σ(s_top − 40 + anchor colour contrast): rejected, the relation named
    config = dc.config(presence_weights=dc.presence_weights({0: 1.0, 3: -30.0, 16: 1.0}))
    d = decide(scores, dc.frame(), parse, text, config, calibrated=True)
    assert not d.found and d.message == "no 'square' left of 'blue ring' in view"
    # no anchor: both 0
    x = decide(scores, dc.frame(), PARSE, dc.text(), dc.config(), calibrated=True).signals[
        'presence_x']
    assert x[16:18] == [0.0, 0.0]


def test_the_anchor_reads_how_far_its_best_mask_stands_out_for_its_weakest_word():
    """x[18] = the anchor's word standout at its best mask by q: "the square left of the blue
    ring" where that mask stands out for "blue" but not for "ring" reads low, and its weight
    rejects; with every word of the anchor on that mask, the answer stands."""
    e = torch.eye(8)
    parse = ParsedExpression('the square left of the blue ring', 'the square',
                             ('the blue ring',), relation='left')
    q = torch.tensor([0.0, 0.0, 1.0, 0.0])                # the anchor's best mask: 2
    scores = dc.scores([60.0, 59.0, 20.0, 5.0], [0.2, 0.6, 0.1], relation='left', q=q,
                     partners=torch.tensor([2]), weights=torch.tensor([1.0]))
    # word rows: "blue", "ring"; mask n's feature is e[n], s(n, w) = 100·cos
    blue_ring = replace(dc.text(other=True), other_words=(torch.stack([e[2], e[2]]),))
    blue_ball = replace(dc.text(other=True), other_words=(torch.stack([e[2], e[1]]),))
    present = decide(scores, dc.frame(), parse, blue_ring, dc.config(), calibrated=True)
    missing = decide(scores, dc.frame(), parse, blue_ball, dc.config(), calibrated=True)
    # mask 2: 100 − mean 25 for both words (capped); "ring" on mask 1: 0 − 25 at mask 2
    assert present.signals['presence_x'][18] == WORD_STANDOUT_CAP
    assert missing.signals['presence_x'][18] == pytest.approx(-25.0)
    # P(present) = σ(s_top − 40 + 2 · anchor word standout): 60 − 40 − 50 < 0
    config = dc.config(presence_weights=dc.presence_weights({0: 1.0, 3: -30.0, 18: 2.0}))
    assert decide(scores, dc.frame(), parse, blue_ring, config, calibrated=True).found
    assert not decide(scores, dc.frame(), parse, blue_ball, config, calibrated=True).found
    # no anchor, or no look words of it: 0
    for text, p in ((dc.text(), PARSE), (dc.text(other=True), parse)):
        assert decide(scores, dc.frame(), p, text, dc.config(), calibrated=True).signals[
            'presence_x'][18] == 0.0


def test_a_best_mask_another_object_word_fits_better_is_not_found():
    # P(present) = σ(s_top − 40 + object contrast); s_top = 60
    config = dc.config(presence_weights=dc.presence_weights({0: 1.0, 3: -30.0, 7: 1.0}))
    e = torch.eye(8)
    scores = dc.scores([60.0, 40.0, 10.0, 6.0], [0.5, 0.2, 0.1])
    fits = replace(dc.text(), contrast=torch.stack([e[0], e[1]]), contrast_counts=(0, 1))
    assert decide(scores, dc.frame(), PARSE, fits, config, calibrated=True).found
    # "the red cube" fits masks 0 and 1 alike (70.7); "the red ball" fits mask 0 fully (100)
    other = replace(fits, contrast=torch.stack([e[0] + e[1], e[0]]),
                    contrast_phrases=('the red ball',))
    parse = ParsedExpression('the red cube', 'the red cube')
    d = decide(scores, dc.frame(), parse, other, config, calibrated=True)
    assert d.signals['presence_x'][7] == pytest.approx(100.0 / math.sqrt(2.0) - 100.0)
    assert not d.found
    assert d.message == "no 'red cube' in view (the closest looks more like 'red ball')"


def test_a_plain_phrase_reads_its_object_contrast_with_its_own_slope():
    """x[19] = the object contrast again where the target phrase names no contrast colour and
    has no anchor ("the ball" beside a cube that most resembles one): its weight rejects
    there, and reads nothing for "the red ball" or an anchored expression."""
    e = torch.eye(8)
    scores = dc.scores([60.0, 40.0, 10.0, 6.0], [0.5, 0.2, 0.1])
    # "the ball" fits masks 0 and 1 alike (70.7); "the cube" fits mask 0 fully (100)
    plain = replace(dc.text(), contrast=torch.stack([e[0] + e[1], e[0]]), contrast_counts=(0, 1))
    x = decide(scores, dc.frame(), PARSE, plain, dc.config(), calibrated=True).signals[
        'presence_x']
    assert len(x) == 20 and x[19] == pytest.approx(x[7])
    assert x[7] == pytest.approx(100.0 / math.sqrt(2.0) - 100.0)
    # P(present) = σ(s_top − 40 + object contrast where plain): 60 − 40 − 29.3 < 0
    config = dc.config(presence_weights=dc.presence_weights({0: 1.0, 3: -30.0, 19: 1.0}))
    assert not decide(scores, dc.frame(), PARSE, plain, config, calibrated=True).found
    # the same contrast in a phrase naming a colour, or with an anchor, reads 0 there
    coloured = replace(plain, contrast=torch.stack([e[0] + e[1], e[2], e[0]]),
                       contrast_counts=(1, 1))
    d = decide(scores, dc.frame(), PARSE, coloured, config, calibrated=True)
    assert d.signals['presence_x'][7] < 0 and d.signals['presence_x'][19] == 0.0 and d.found
    anchored = ParsedExpression('the ball left of the cube', 'the ball', ('the cube',),
                                relation='left')
    text = replace(dc.text(other=True), contrast=plain.contrast, contrast_counts=(0, 1))
    x = decide(scores, dc.frame(), anchored, text, dc.config(), calibrated=True).signals[
        'presence_x']
    assert x[2] == 1.0 and x[7] < 0 and x[19] == 0.0


def test_a_part_of_the_picture_is_no_anchor_for_presence():
    """"The left side" of "the cube on the left side" is always there: the presence test
    reads no anchor for it, as for "the cube on the left" (before, it read "has an anchor"
    and the anchor's s, and such queries were rejected more often)."""
    config = dc.config(presence_weights=dc.presence_weights({0: 1.0, 1: 1.0, 2: -30.0, 3: -30.0}))
    scores = dc.scores([60.0, 40.0, 10.0, 6.0], [0.5, 0.2, 0.1])
    region = ParsedExpression('the cube on the left side', 'the cube', ('the left side',))
    plain = ParsedExpression('the cube on the left', 'the cube')
    anchored = ParsedExpression('the cube left of the ball', 'the cube', ('the ball',),
                                relation='left')
    with_region = decide(scores, dc.frame(), region, dc.text(other=True), config, calibrated=True)
    without = decide(scores, dc.frame(), plain, dc.text(), config, calibrated=True)
    with_anchor = decide(scores, dc.frame(), anchored, dc.text(other=True), config,
                         calibrated=True)
    assert with_region.signals['presence_x'] == without.signals['presence_x']
    assert with_region.presence == without.presence and with_region.found
    assert with_anchor.signals['presence_x'][1:3] == [pytest.approx(100.0 / math.sqrt(8)), 1.0]
    with_other = dc.text(other=True)
    assert has_anchor(anchored, with_other) and not has_anchor(region, with_other)
