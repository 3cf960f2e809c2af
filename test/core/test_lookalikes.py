"""Look-alikes (core/lookalikes.py): the masks a size or position word without an anchor is
judged among, and R among them (default mode's departure from spec §7.3), on hand-built
inputs."""
import numpy as np
import pytest
import torch

from hybridgl_ros.core.errors import InvalidInputError
from hybridgl_ros.core.guidance import (
    common_background, final_scores, relation_totals, spatial_scores)
from hybridgl_ros.core.lookalikes import (
    comparative_totals, lookalike_candidates, lookalikes_among, pooled_among, same_object)

EQUAL_P = torch.full((3,), 1 / 3)
ALL_THREE = torch.tensor([0, 1, 2])


def test_size_comparative_among_look_alikes_picks_the_smaller_twin():
    # twins 0 (small) and 1 (big): the phrase with "smaller" already prefers 0 (p peaked), the
    # phrase without it fits both; the spec's R vanishes, the comparative's does not
    boxes = np.array([[0, 0, 10, 10], [20, 0, 30, 30], [60, 0, 20, 20]])
    p = torch.tensor([0.999, 0.0005, 0.0005])
    p_class = torch.tensor([0.5, 0.5, 0.0])
    spec = relation_totals('small', p, ALL_THREE, boxes).totals
    assert spec.max() < 1e-3
    totals = comparative_totals('small', p, p_class, ALL_THREE, boxes).totals
    # R_0 = p_0 · K · (share of twin 1 among the others) · [area_0 < area_1] = 0.999 · 3 · 1
    assert totals.tolist() == pytest.approx([0.999 * 3, 0.0, 0.0], abs=1e-3)


def test_size_comparative_with_a_single_class_member_stays_finite():
    boxes = np.array([[0, 0, 10, 10], [20, 0, 30, 30]])
    totals = comparative_totals('big', torch.tensor([0.0, 1.0]), torch.tensor([0.0, 1.0]),
                                torch.tensor([1, 0]), boxes).totals
    assert torch.isfinite(totals).all()


def test_the_look_alikes_of_a_size_comparative_leave_out_what_barely_fits_the_class():
    # held-out isometric 6001, image 29, "the smaller purple ball": s^c of "the purple ball"
    # for the big ball, the small ball and the mask of the table around them
    s_class = torch.tensor([46.3, 33.0, -4.5])
    candidates = torch.tensor([1, 0, 2])
    assert lookalikes_among(s_class, candidates, 20.0).tolist() == [1, 0]
    assert lookalikes_among(s_class, candidates, 10.0).tolist() == [0]
    # held-out varied 6001, image 30, "the bigger orange star": SAM left the small star
    # without a mask; the table's mask (-9.0) is no look-alike of the big star (46.3)
    assert lookalikes_among(torch.tensor([-24.5, 46.3, -9.0]), torch.tensor([1, 2, 0]),
                            20.0).tolist() == [1]


def test_pooled_s_leaves_the_size_to_r():
    masks = torch.zeros((3, 40, 80))
    masks[0, 5:15, 5:15] = 1            # small twin
    masks[1, 5:35, 40:70] = 1           # big twin
    masks[2, 36:40, 0:80] = 1           # something else
    weights = 0.1 + 0.5 * masks[0] + 2.0 * masks[1]  # the map brighter on the big twin
    twins = torch.tensor([0, 1])
    spatial = spatial_scores(weights, masks, 1.5, common_background(masks, twins))
    assert spatial[1] > spatial[0] + 0.5    # more than softmax(R) can make up at γ = 0.6
    pooled = pooled_among(spatial, twins)
    assert pooled[0] == pooled[1] == pytest.approx(float(spatial[:2].mean()))
    assert pooled[2] == spatial[2]
    # R prefers the small twin: F now does too
    final = final_scores(torch.tensor([0.9, 0.05, 0.05]), pooled, 0.6)
    assert int(final.argmax()) == 0
    assert int(final_scores(torch.tensor([0.9, 0.05, 0.05]), spatial, 0.6).argmax()) == 1


def test_position_among_look_alikes_picks_the_twin_the_word_says():
    # twins 0 (left) and 1 (right), a third object 2 further left that is not a twin; the whole
    # phrase "the cube on the left side" happens to prefer twin 1 (p peaked) and has no
    # relation word (spec §7.1: "side"): the spec's R = K·p sharpens that; R among look-alikes
    # (the direction as the relation, partners weighted by "the cube") prefers twin 0
    boxes = np.array([[100, 10, 10, 10], [200, 10, 10, 10], [0, 10, 10, 10]])
    p = torch.tensor([0.2, 0.79, 0.01])
    p_class = torch.tensor([0.5, 0.5, 0.0])
    assert int(relation_totals('none', p, ALL_THREE, boxes).totals.argmax()) == 1
    totals = comparative_totals('left', p, p_class, ALL_THREE, boxes).totals
    # R_0 = p_0 · K · (share of twin 1 among the others) · [cx_0 < cx_1] = 0.2 · 3 · 1
    assert totals.tolist() == pytest.approx([0.6, 0.0, 0.01 * 3 * 1.0], abs=1e-3)
    assert int(torch.argmax(torch.softmax(totals, 0))) == 0


def test_a_part_of_an_object_is_not_left_of_or_smaller_than_its_whole():
    # a ring (0), its left half (1, a mask inside it, as SAM proposes) and a second ring (2)
    # further right; all three look like "the ring"
    masks = torch.zeros((3, 20, 60), dtype=torch.bool)
    masks[0, 5:15, 5:15] = True
    masks[1, 5:15, 5:10] = True
    masks[2, 5:15, 40:50] = True
    boxes = np.array([[5, 5, 10, 10], [5, 5, 5, 10], [40, 5, 10, 10]])
    p = torch.tensor([0.35, 0.33, 0.32])
    p_class = torch.tensor([0.34, 0.33, 0.33])
    same = same_object(masks, ALL_THREE)
    assert same.tolist() == [[True, True, False], [True, True, False], [False, False, True]]
    # without telling objects apart the half lies left of its whole and of the other ring and
    # is smaller than both: it takes "the left ring" and "the smaller ring"
    for relation in ('left', 'small'):
        blind = comparative_totals(relation, p, p_class, ALL_THREE, boxes).totals
        assert int(blind.argmax()) == 1
    # one object: the whole and its half are each compared with the other ring only
    left = comparative_totals('left', p, p_class, ALL_THREE, boxes, same).totals
    assert left.tolist() == pytest.approx([0.35 * 3, 0.33 * 3, 0.0], abs=1e-4)
    assert int(left.argmax()) == 0
    # the half is smaller than the other ring (the only other object), the whole is not
    small = comparative_totals('small', p, p_class, ALL_THREE, boxes, same).totals
    assert small.tolist() == pytest.approx([0.0, 0.33 * 3, 0.0], abs=1e-4)
    # a mask alone with its own parts has no other object to be compared with
    alone = comparative_totals('left', p[:2], p_class[:2], torch.tensor([0, 1]), boxes,
                               same_object(masks, torch.tensor([0, 1]))).totals
    assert alone.tolist() == [0.0, 0.0]
    assert same_object(masks, torch.zeros(0, dtype=torch.long)).shape == (0, 0)


def test_look_alike_relations_are_size_or_position_only():
    with pytest.raises(InvalidInputError, match='within'):
        comparative_totals('within', EQUAL_P, EQUAL_P, ALL_THREE, np.zeros((3, 4)))


def test_look_alike_candidates_are_every_mask_within_the_margin_best_p_first():
    s_class = torch.tensor([40.0, 20.0, 38.0, 45.0, 36.0, 5.0])
    p = torch.tensor([0.05, 0.3, 0.2, 0.1, 0.3, 0.05])
    top = torch.tensor([1, 4, 2])
    # within 10 of the best s^c (45): masks 0, 2, 3, 4, ordered by p (ties keep index order)
    candidates, among = lookalike_candidates(s_class, p, 10.0, 6, top)
    assert candidates.tolist() == [4, 2, 3, 0] and among
    assert lookalike_candidates(s_class, p, 10.0, 2, top)[0].tolist() == [4, 2]
    # fewer than two look-alikes: the spec's candidates
    candidates, among = lookalike_candidates(s_class, p, 4.0, 6, top)
    assert candidates.tolist() == [1, 4, 2] and not among
    # a mask read as the named look (mask 1, 25 below the best) is one whatever its s^c
    reads = torch.tensor([False, True, False, False, False, False])
    assert lookalike_candidates(s_class, p, 10.0, 6, top, reads)[0].tolist() == [1, 4, 2, 3, 0]
    assert lookalike_candidates(s_class, p, 4.0, 6, top, reads)[0].tolist() == [1, 3]
