"""Relation, position and spatial guidance (spec §7.2–7.3, §9, §10) on hand-built inputs."""
import numpy as np
import pytest
import torch

from hybridgl_ros.core.config import GuidanceConfig
from hybridgl_ros.core.errors import InvalidInputError
from hybridgl_ros.core.guidance import (
    beta_for, coherence_weighting, final_scores, guidance_map, plan_guidance, position_ramp,
    relation_scores, relation_totals, select_candidates, spatial_scores)
from hybridgl_ros.core.types import ParsedExpression

EQUAL_P = torch.full((3,), 1 / 3)
ALL_THREE = torch.tensor([0, 1, 2])

# Three boxes (x, y, w, h) that differ along one axis each; the expected winner's index.
LAYOUTS = {
    'left': ([[0, 10, 10, 10], [40, 10, 10, 10], [80, 10, 10, 10]], 0),
    'right': ([[0, 10, 10, 10], [40, 10, 10, 10], [80, 10, 10, 10]], 2),
    'up': ([[10, 0, 10, 10], [10, 40, 10, 10], [10, 80, 10, 10]], 0),
    'down': ([[10, 0, 10, 10], [10, 40, 10, 10], [10, 80, 10, 10]], 2),
    'big': ([[0, 0, 10, 10], [20, 0, 30, 30], [60, 0, 20, 20]], 1),
    'small': ([[0, 0, 10, 10], [20, 0, 30, 30], [60, 0, 20, 20]], 0),
    # box 0 lies inside box 1, box 2 overlaps nothing
    'within': ([[10, 10, 10, 10], [0, 0, 50, 50], [80, 80, 10, 10]], 0),
}


def _ramp_row(direction, width, vertical_ramps=False):
    return position_ramp(direction, 2, width, vertical_ramps)[0].tolist()


def test_candidates_are_the_top_k_by_p_best_first():
    p = torch.tensor([0.1, 0.4, 0.05, 0.3, 0.15])
    assert select_candidates(p, 3).tolist() == [1, 3, 4]


def test_candidates_are_all_masks_when_fewer_than_k():
    assert select_candidates(torch.tensor([0.3, 0.7]), 3).tolist() == [1, 0]


def test_candidates_of_zero_masks_are_empty():
    assert select_candidates(torch.zeros(0), 3).shape == (0,)


def test_equal_p_candidates_come_in_the_order_of_the_authors_topk():
    """Two copies of one mask have exactly equal p: the order among them is torch.topk's, as
    in the authors' code (its argmax over F picks the first of equal F). A case of a dump of
    that code: proposals 2 and 3 are one mask twice; it chose 3, a stable sort chose 2."""
    p = torch.tensor([0.151128396, 0.151128396, 0.181235388, 0.181235388, 0.151128337,
                      0.184144124])
    assert select_candidates(p, 3).tolist() == torch.topk(p, 3).indices.tolist() == [5, 3, 2]
    assert select_candidates(p, 6).tolist() == torch.topk(p, 6).indices.tolist()


@pytest.mark.parametrize('relation', sorted(LAYOUTS))
def test_relation_prefers_the_box_it_names(relation):
    boxes, winner = LAYOUTS[relation]
    scores = relation_scores(relation, EQUAL_P, ALL_THREE, np.array(boxes))
    assert int(scores.argmax()) == winner


def test_left_relation_without_other_nouns_weights_candidate_partners_by_p():
    boxes = np.array(LAYOUTS['left'][0])
    scores = relation_scores('left', EQUAL_P, ALL_THREE, boxes)
    # R = p_i·Σ_j p_j·[cx_i < cx_j] = (1/3)·(2/3, 1/3, 0)
    expected = torch.softmax(torch.tensor([2 / 9, 1 / 9, 0.0]), dim=0)
    torch.testing.assert_close(scores, expected)


def test_no_relation_sums_p_over_the_candidate_partners():
    # r(i, j) = p_i, so R_i = K·p_i over the K = 3 candidates (spec §7.3).
    p = torch.tensor([0.5, 0.3, 0.2])
    totals = relation_totals('none', p, ALL_THREE, np.zeros((3, 4)))
    torch.testing.assert_close(totals.totals, 3 * p)
    scores = relation_scores('none', p, ALL_THREE, np.zeros((3, 4)))
    torch.testing.assert_close(scores, torch.softmax(3 * p, dim=0))


def test_no_relation_with_other_nouns_sums_p_over_the_top_q_partners():
    p = torch.tensor([0.4, 0.3, 0.2, 0.05, 0.05])
    q = torch.tensor([0.1, 0.1, 0.1, 0.4, 0.3])
    totals = relation_totals('none', p, ALL_THREE, np.zeros((5, 4)), q=q, partner_count=6)
    # min(6, N) partners, best q first (equal q in torch.topk's order, as the authors' code)
    assert totals.partners.tolist()[:2] == [3, 4]
    assert totals.partners.tolist() == torch.topk(q, 5).indices.tolist()
    torch.testing.assert_close(totals.totals, 5 * p[:3])


def test_other_noun_partners_are_the_top_q_masks_weighted_by_q():
    # Candidates 0-2 at x = 0, 40, 80; partners 3 (x=60, q=0.6) and 4 (x=100, q=0.3).
    boxes = np.array([[0, 0, 10, 10], [40, 0, 10, 10], [80, 0, 10, 10],
                      [60, 0, 10, 10], [100, 0, 10, 10]])
    p = torch.tensor([0.3, 0.3, 0.3, 0.05, 0.05])
    q = torch.tensor([0.04, 0.03, 0.03, 0.6, 0.3])
    scores = relation_scores('left', p, ALL_THREE, boxes, q=q, partner_count=2)
    expected = torch.softmax(torch.tensor([0.3 * 0.9, 0.3 * 0.9, 0.3 * 0.3]), dim=0)
    torch.testing.assert_close(scores, expected)


def test_within_uses_the_overlap_fraction_of_the_candidate_box():
    # Partner 3 = (0, 0, 20, 20): box 0 inside (1), box 1 half inside (0.5), box 2 outside (0).
    boxes = np.array([[5, 5, 10, 10], [10, 0, 20, 10], [40, 40, 10, 10], [0, 0, 20, 20]])
    p = torch.tensor([0.3, 0.3, 0.3, 0.1])
    q = torch.tensor([0.0, 0.0, 0.0, 1.0])
    scores = relation_scores('within', p, ALL_THREE, boxes, q=q, partner_count=1)
    expected = torch.softmax(torch.tensor([0.3, 0.15, 0.0]), dim=0)
    torch.testing.assert_close(scores, expected)


def test_within_of_a_zero_area_box_is_zero_not_nan():
    boxes = np.array([[5, 5, 0, 10], [0, 0, 20, 20]])
    p = torch.tensor([0.5, 0.5])
    q = torch.tensor([0.0, 1.0])
    scores = relation_scores('within', p, torch.tensor([0, 1]), boxes, q=q, partner_count=1)
    torch.testing.assert_close(scores, torch.softmax(torch.tensor([0.0, 0.5]), dim=0))


def test_relation_scores_of_fewer_than_three_masks_sum_to_one():
    p = torch.tensor([0.8, 0.2])
    candidates = select_candidates(p, 3)
    scores = relation_scores('right', p, candidates, np.array([[0, 0, 5, 5], [20, 0, 5, 5]]))
    assert scores.shape == (2,)
    torch.testing.assert_close(scores.sum(), torch.tensor(1.0))


def test_relation_scores_of_zero_masks_are_empty():
    p = torch.zeros(0)
    scores = relation_scores('left', p, select_candidates(p, 3), np.zeros((0, 4), np.int64),
                             q=torch.zeros(0))
    assert scores.shape == (0,)


def test_half_precision_probabilities_do_not_overflow_box_areas():
    boxes = np.array([[0, 0, 640, 480], [0, 0, 300, 300], [0, 0, 10, 10]])
    scores = relation_scores('big', EQUAL_P.half(), ALL_THREE, boxes)
    assert torch.isfinite(scores).all() and int(scores.argmax()) == 0


def test_unknown_relation_raises_invalid_input():
    with pytest.raises(InvalidInputError):
        relation_scores('near', EQUAL_P, ALL_THREE, np.zeros((3, 4)))


@pytest.mark.parametrize('direction, width, expected', [
    ('left', 5, [1.0, 0.75, 0.5, 0.25, 0.0]),
    ('right', 5, [0.0, 0.25, 0.5, 0.75, 1.0]),
    ('middle', 5, [0.0, 1.0, 1.0, 0.5, 0.0]),
    ('middle', 6, [0.0, 0.5, 1.0, 1.0, 0.5, 0.0]),
    ('none', 4, [1.0, 1.0, 1.0, 1.0]),
])
def test_horizontal_ramp_values_include_the_end_points(direction, width, expected):
    assert _ramp_row(direction, width) == pytest.approx(expected)


def test_ramp_is_constant_over_rows_and_float32():
    ramp = position_ramp('left', 3, 5, vertical_ramps=False)
    assert ramp.shape == (3, 5) and ramp.dtype == torch.float32
    assert torch.equal(ramp[0], ramp[2])


@pytest.mark.parametrize('direction, expected', [
    ('up', [1.0, 0.5, 0.0]), ('down', [0.0, 0.5, 1.0])])
def test_vertical_ramps_run_over_rows_when_switched_on(direction, expected):
    ramp = position_ramp(direction, 3, 4, vertical_ramps=True)
    assert ramp[:, 0].tolist() == pytest.approx(expected)
    assert torch.equal(ramp[:, 0], ramp[:, 3])


@pytest.mark.parametrize('direction', ['up', 'down'])
def test_vertical_ramps_are_all_ones_when_switched_off(direction):
    assert torch.equal(position_ramp(direction, 3, 4, vertical_ramps=False), torch.ones(3, 4))


def test_unknown_direction_raises_invalid_input():
    with pytest.raises(InvalidInputError):
        position_ramp('diagonal', 3, 4, vertical_ramps=False)


def test_coherence_weighting_normalises_to_mean_one():
    coherence = torch.tensor([[0.0, 0.5], [1.0, 0.5]])
    weighted = coherence_weighting(coherence, position_ramp('left', 2, 2, False))
    # map ⊙ ramp = [[0, 0], [1, 0]], mean 0.25
    torch.testing.assert_close(weighted, torch.tensor([[0.0, 0.0], [4.0, 0.0]]))


def test_coherence_weighting_of_an_all_zero_map_stays_zero():
    weighted = coherence_weighting(torch.zeros(3, 3), torch.ones(3, 3))
    assert torch.equal(weighted, torch.zeros(3, 3))


def test_spatial_score_is_eq8_on_a_hand_built_mask():
    weights = torch.tensor([[2.0, 0.0], [1.0, 1.0]])
    mask = torch.tensor([[[True, False], [True, False]]])
    # inside mean (2 + 1)/2 = 1.5, outside mean (0 + 1)/2 = 0.5; β = 1.8
    expected = (2 - 1.8) * 1.5 - 1.8 * 0.5
    assert spatial_scores(weights, mask, 1.8).tolist() == pytest.approx([expected])


def test_spatial_score_of_a_full_image_mask_has_outside_zero():
    weights = torch.rand(6, 8) + 0.5
    scores = spatial_scores(weights, torch.ones(1, 6, 8, dtype=torch.bool), 1.8)
    assert scores.tolist() == pytest.approx([0.2 * float(weights.mean())], rel=1e-5)


def test_spatial_score_of_an_empty_mask_has_inside_zero():
    weights = torch.rand(6, 8) + 0.5
    scores = spatial_scores(weights, torch.zeros(1, 6, 8, dtype=torch.bool), 1.8)
    assert scores.tolist() == pytest.approx([-1.8 * float(weights.mean())], rel=1e-5)


def test_spatial_scores_of_zero_masks_are_empty():
    scores = spatial_scores(torch.ones(4, 5), torch.zeros(0, 4, 5, dtype=torch.bool), 1.8)
    assert scores.shape == (0,)


def test_spatial_scores_of_many_masks_equal_the_per_mask_formula():
    generator = torch.Generator().manual_seed(0)
    weights = torch.rand(48, 64, generator=generator)
    masks = torch.rand(70, 48, 64, generator=generator) > 0.6
    expected = torch.stack([
        0.2 * weights[mask].mean() - 1.8 * weights[~mask].mean() for mask in masks])
    torch.testing.assert_close(spatial_scores(weights, masks, 1.8), expected)


def test_spatial_score_of_a_mask_covering_most_of_a_large_image_is_exact():
    # In float32, outside = total − inside was 6e-5 off here (1080p, mask on 80 % of rows).
    generator = torch.Generator().manual_seed(2)
    weights = torch.rand(1080, 1920, generator=generator) ** 4
    weights = weights / weights.mean()
    masks = torch.zeros(1, 1080, 1920, dtype=torch.bool)
    masks[0, :864] = True
    w64 = weights.double()
    expected = 0.2 * w64[:864].mean() - 1.8 * w64[864:].mean()
    assert abs(float(spatial_scores(weights, masks, 1.8)[0]) - float(expected)) < 1e-6


def test_spatial_scores_of_float_masks_equal_those_of_bool_masks():
    generator = torch.Generator().manual_seed(1)
    weights = torch.rand(12, 16, generator=generator)
    masks = torch.rand(5, 12, 16, generator=generator) > 0.5
    torch.testing.assert_close(spatial_scores(weights, masks.float(), 1.5),
                               spatial_scores(weights, masks, 1.5))


def test_spatial_scores_take_a_numpy_mask_array():
    masks = np.zeros((2, 4, 5), bool)
    masks[0, :2] = True
    scores = spatial_scores(torch.ones(4, 5), masks, 1.8)
    assert scores.tolist() == pytest.approx([0.2 - 1.8, -1.8])


@pytest.mark.parametrize('relation, expected', [
    ('big', 1.95), ('small', 1.5), ('none', 1.8), ('left', 1.8), ('within', 1.8)])
def test_beta_follows_the_relation(relation, expected):
    assert beta_for(relation, GuidanceConfig()) == expected


def test_final_score_mixes_relation_and_spatial_by_gamma():
    scores = final_scores(torch.tensor([0.5, 0.3, 0.2]), torch.tensor([1.0, -1.0, 0.0]), 0.6)
    torch.testing.assert_close(scores, torch.tensor([0.8, -0.48, 0.08]))


def test_plan_applies_no_switch_by_default():
    parsed = ParsedExpression('the big dog on left', 'the big dog', (), 'big', 'left')
    plan = plan_guidance(parsed, GuidanceConfig())
    assert (plan.relation, plan.direction, plan.use_coherence, plan.beta) == (
        'big', 'left', True, 1.95)


def test_plan_without_relation_guidance_has_no_relation_and_default_beta():
    parsed = ParsedExpression('the big dog', 'the big dog', (), 'big', 'none')
    plan = plan_guidance(parsed, GuidanceConfig(use_relation=False))
    assert (plan.relation, plan.beta) == ('none', 1.8)


def test_plan_without_position_guidance_has_no_direction():
    parsed = ParsedExpression('dog on left', 'dog', (), 'left', 'left')
    assert plan_guidance(parsed, GuidanceConfig(use_position=False)).direction == 'none'


def test_plan_in_parity_mode_never_uses_vertical_ramps():
    parsed = ParsedExpression('top dog', 'top dog', (), 'up', 'up')
    config = GuidanceConfig(vertical_ramps=True)
    assert plan_guidance(parsed, config).vertical_ramps
    assert not plan_guidance(parsed, config, reference_parity=True).vertical_ramps


def test_guidance_map_without_coherence_is_the_normalised_ramp():
    weights = guidance_map(None, position_ramp('left', 2, 5, vertical_ramps=False))
    torch.testing.assert_close(weights[0], torch.tensor([2.0, 1.5, 1.0, 0.5, 0.0]))


def test_guidance_map_multiplies_coherence_and_ramp():
    coherence = torch.tensor([[1.0, 1.0, 0.0]])
    # ramp (0, 0.5, 1) -> product (0, 0.5, 0), mean 1/6
    ramp = position_ramp('right', 1, 3, vertical_ramps=False)
    torch.testing.assert_close(guidance_map(coherence, ramp), torch.tensor([[0., 3., 0.]]))


def test_common_background_makes_s_blind_to_size_when_the_map_is_equal():
    from hybridgl_ros.core.guidance import common_background

    masks = torch.zeros((2, 40, 80))
    masks[0, 5:15, 5:15] = 1            # small twin
    masks[1, 5:35, 40:70] = 1           # big twin
    weights = 0.1 + 0.9 * masks.amax(dim=0)   # the map as high on both twins
    own = spatial_scores(weights, masks, 1.5)
    assert own[1] > own[0]              # the spec's S prefers the bigger twin
    common = spatial_scores(weights, masks, 1.5, common_background(masks, torch.tensor([0, 1])))
    assert common[0] == pytest.approx(common[1])


@pytest.mark.parametrize('parsed, expected', [
    (ParsedExpression('the cube on the left', 'the cube', relation='left', direction='left'),
     'left'),
    (ParsedExpression('the top star', 'the top star', relation='up', direction='up'), 'up'),
    (ParsedExpression('the cube at the bottom', 'the cube', ('the bottom',), direction='down'),
     'down'),
    (ParsedExpression('the cube on the left side', 'the cube', ('the left side',),
                      direction='left'), 'left'),
    (ParsedExpression('the smaller ball', 'the smaller ball', relation='small'), 'small'),
    # an anchor phrase: the spec's R against the anchor
    (ParsedExpression('the cube left of the ball', 'the cube', ('the ball',), relation='left',
                      direction='left'), 'none'),
    (ParsedExpression('the cube next to the left ball', 'the cube', ('the left ball',),
                      direction='left'), 'none'),
    (ParsedExpression('the smaller ball near the cube', 'the smaller ball', ('the cube',),
                      relation='small'), 'none'),
    # no position: nothing to judge among look-alikes
    (ParsedExpression('the ball in the middle', 'the ball', ('the middle',), direction='middle'),
     'none'),
    (ParsedExpression('the red ball', 'the red ball'), 'none'),
])
def test_queries_without_an_anchor_are_judged_among_look_alikes(parsed, expected):
    assert plan_guidance(parsed, GuidanceConfig()).lookalike_relation == expected
    assert plan_guidance(parsed, GuidanceConfig(), reference_parity=True
                         ).lookalike_relation == 'none'


def test_the_switches_turn_look_alike_judging_off_per_kind():
    left = ParsedExpression('the cube on the left', 'the cube', relation='left', direction='left')
    small = ParsedExpression('the smaller ball', 'the smaller ball', relation='small')
    positions_off = GuidanceConfig(positions_by_class=False)
    assert plan_guidance(left, positions_off).lookalike_relation == 'none'
    assert plan_guidance(small, positions_off).lookalike_relation == 'small'
    comparatives_off = GuidanceConfig(comparatives_by_class=False)
    assert plan_guidance(small, comparatives_off).lookalike_relation == 'none'
    assert plan_guidance(left, comparatives_off).lookalike_relation == 'left'


@pytest.mark.parametrize('parsed, expected', [
    # a position relation word and no anchor: the ramp follows it
    (ParsedExpression('the cube in front', 'the cube', relation='down'), 'down'),
    (ParsedExpression('the ball at the back', 'the ball', ('the back',), relation='up'), 'up'),
    (ParsedExpression('the star behind', 'the star', relation='up'), 'up'),
    # a direction word of its own is kept
    (ParsedExpression('the top star', 'the top star', relation='up', direction='up'), 'up'),
    # an anchor: the relation is to the anchor, not a place in the picture
    (ParsedExpression('the cube in front of the ball', 'the cube', ('the ball',),
                      relation='down'), 'none'),
    # a size word is no place
    (ParsedExpression('the smaller ball', 'the smaller ball', relation='small'), 'none'),
])
def test_a_position_relation_without_an_anchor_sets_the_ramp(parsed, expected):
    assert plan_guidance(parsed, GuidanceConfig()).direction == expected
    # the spec's direction words only: in parity mode, with the switch off, or without position
    for config, parity in ((GuidanceConfig(), True),
                           (GuidanceConfig(direction_from_relation=False), False),
                           (GuidanceConfig(use_position=False), False)):
        expected_off = parsed.direction if config.use_position else 'none'
        assert plan_guidance(parsed, config, reference_parity=parity).direction == expected_off


def test_comparatives_by_class_is_off_in_reference_parity():
    parsed = ParsedExpression('the smaller ball', 'the smaller ball', relation='small')
    assert plan_guidance(parsed, GuidanceConfig()).size_comparative
    assert not plan_guidance(parsed, GuidanceConfig(), reference_parity=True).size_comparative


def test_look_alike_margin_is_checked():
    from hybridgl_ros.core.config import ConfigError, HybridGLConfig

    with pytest.raises(ConfigError, match='lookalike_margin'):
        HybridGLConfig(guidance=GuidanceConfig(lookalike_margin=-1.0))
    with pytest.raises(ConfigError, match='lookalike_margin'):
        HybridGLConfig(guidance=GuidanceConfig(lookalike_margin=float('nan')))
