"""HybridGL end to end with a tiny random CLIP (real open_clip code) and real spaCy.

The proposals come from a fixed proposer (the masks of the synthetic scene): what these tests
check is the pipeline around SAM; SAM's own code path is exercised with the demo models.
"""
import dataclasses

import numpy as np
import pytest

from hybridgl_ros.core.config import HybridGLConfig
from hybridgl_ros.core.errors import InvalidInputError
from hybridgl_ros.core.pipeline import HybridGL, block_index
from hybridgl_ros.core.types import Proposals


class FixedProposer:
    """Returns the same masks for every image and counts its calls."""

    def __init__(self, masks):
        self.masks = masks
        self.calls = 0

    def propose(self, image_rgb):
        self.calls += 1
        boxes = []
        for mask in self.masks:
            ys, xs = np.nonzero(mask)
            boxes.append([xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1])
        return Proposals(self.masks.copy(), np.asarray(boxes, np.int64).reshape(-1, 4),
                         np.ones(len(self.masks), np.float32))


def scene_masks(h=96, w=128):
    """Masks of the conftest scene: red square, blue disc, the background, the full frame."""
    yy, xx = np.mgrid[0:h, 0:w]
    square = np.zeros((h, w), bool)
    square[30:60, 15:45] = True
    disc = (yy - 48) ** 2 + (xx - 95) ** 2 < 15 ** 2
    return np.stack([square, disc, ~(square | disc), np.ones((h, w), bool)])


@pytest.fixture
def make_segmenter(tiny_clip, spacy_parser):
    def make(masks=None, **flat):
        config = HybridGLConfig.from_flat(flat)
        proposer = FixedProposer(scene_masks() if masks is None else masks)
        parser = spacy_parser if not config.reference else None
        return HybridGL(config, clip_model=tiny_clip, proposer=proposer,
                        parser=parser), proposer
    return make


def test_block_index_scales_with_depth():
    assert block_index(0.75, 12) == 9 and block_index(0.5, 12) == 6
    assert block_index(0.75, 4) == 3 and block_index(0.5, 4) == 2


def test_result_carries_mask_box_points_and_scores(make_segmenter, scene_rgb):
    segmenter, _ = make_segmenter()
    result = segmenter.segment(scene_rgb, 'the red square on the left')
    assert result.found and result.mask.shape == scene_rgb.shape[:2]
    assert result.mask.dtype == bool and 0 <= result.index < 4
    assert result.matching_probs.shape == (4,) and result.spatial_scores.shape == (4,)
    assert np.isclose(result.matching_probs.sum(), 1.0, atol=1e-5)
    assert np.isfinite(result.spatial_scores).all()
    x, y = result.interior_xy
    assert result.mask[y, x]
    assert result.parse.direction == 'left'
    assert {'parse', 'text', 'scoring', 'total'} <= set(result.timings_ms)


def test_second_query_on_the_same_frame_runs_no_image_side_model_pass(make_segmenter,
                                                                      scene_rgb):
    segmenter, proposer = make_segmenter()
    passes = []
    hook = segmenter.visual.conv1.register_forward_hook(lambda *_: passes.append(1))
    try:
        frame = segmenter.prepare(scene_rgb)
        assert proposer.calls == 1 and passes
        passes.clear()
        segmenter.query(frame, 'the blue disc')
        segmenter.query(frame, 'the square left of the disc')
    finally:
        hook.remove()
    assert proposer.calls == 1 and not passes


def test_zero_proposals_is_a_normal_not_found(make_segmenter, scene_rgb):
    segmenter, _ = make_segmenter(masks=np.zeros((0, 96, 128), bool))
    result = segmenter.segment(scene_rgb, 'the red square')
    assert not result.found and result.index == -1 and not result.mask.any()
    assert 'no' in result.message


def test_the_json_summary_is_strict_json_with_null_where_there_is_no_number(make_segmenter,
                                                                          scene_rgb):
    import json

    def refuse(constant):
        raise ValueError(f'{constant} is not JSON')

    segmenter, _ = make_segmenter(masks=np.zeros((0, 96, 128), bool))
    result = segmenter.query(segmenter.prepare(scene_rgb), 'the red square', explain=True)
    summary = json.loads(json.dumps(result.to_dict()), parse_constant=refuse)
    assert summary['centroid_xy'] == [None, None] and summary['confidence'] is None


@pytest.mark.parametrize('text', ['', '   ', '\n\t', '\u200b\u200b', '\u3000\ufeff\u2060 '])
def test_empty_text_is_invalid_input(make_segmenter, scene_rgb, text):
    segmenter, _ = make_segmenter()
    frame = segmenter.prepare(scene_rgb)
    with pytest.raises(InvalidInputError):
        segmenter.query(frame, text)


def test_parity_mode_answers_whitespace_alone_as_the_released_code_does(make_segmenter,
                                                                         scene_rgb):
    segmenter, proposer = make_segmenter(parity='reference')
    result = segmenter.segment(scene_rgb, '   ')
    assert result.parse.normalized == '   ' and 0 <= result.index < 4
    assert np.isfinite(result.spatial_scores).all()
    calls = proposer.calls
    for text in ('', ' '):            # nothing left to parse: refused before SAM runs
        with pytest.raises(InvalidInputError, match='empty'):
            segmenter.segment(scene_rgb, text)
    assert proposer.calls == calls


def test_a_300_word_expression_is_truncated_and_says_so(make_segmenter, scene_rgb):
    segmenter, _ = make_segmenter()
    text = ' '.join(['the red square next to the big blue round disc'] * 30)
    result = segmenter.segment(scene_rgb, text)
    assert result.found and 'truncated' in result.message


def test_an_anchor_prompt_past_the_context_is_truncated_and_says_so(make_segmenter, scene_rgb):
    """The text fits the 77 tokens, "a photo of" its anchor phrase does not (the authors' code
    fails there): the answer says which prompt was cut."""
    segmenter, _ = make_segmenter()
    text = 'cups beside the' + ' big' * 71 + ' table'
    assert not segmenter.text.is_truncated(text)
    result = segmenter.segment(scene_rgb, text)
    assert result.parse.other_phrases, 'the anchor phrase is parsed'
    assert "the prompt 'a photo of the big big" in result.message
    assert 'truncated' in result.message
    assert 'truncated' not in segmenter.segment(scene_rgb, 'the red square').message


def test_a_single_mask_image_still_answers(make_segmenter, scene_rgb):
    segmenter, _ = make_segmenter(masks=scene_masks()[:1])
    result = segmenter.segment(scene_rgb, 'the square')
    assert result.found and result.index == 0 and result.candidate_indices == (0,)


@pytest.mark.parametrize('bad', [np.zeros((10, 10), np.uint8), np.zeros((10, 10, 3), float),
                                 np.zeros((10, 10, 4), np.uint8), 'image.png'])
def test_bad_images_are_invalid_input(make_segmenter, bad):
    segmenter, _ = make_segmenter()
    with pytest.raises(InvalidInputError):
        segmenter.prepare(bad)


def test_vertical_ramp_changes_default_but_not_reference_parity(make_segmenter, scene_rgb):
    text = 'the thing at the top'
    on, _ = make_segmenter()
    off, _ = make_segmenter(**{'guidance.vertical_ramps': False})
    parity, _ = make_segmenter(**{'guidance.vertical_ramps': True, 'parity': 'reference'})
    frame = on.prepare(scene_rgb)
    s_on = on.query(frame, text).spatial_scores
    s_off = off.query(frame, text).spatial_scores
    s_parity = parity.query(frame, text).spatial_scores
    assert not np.allclose(s_on, s_off)
    np.testing.assert_allclose(s_parity, s_off, rtol=1e-5, atol=1e-6)


def test_default_mode_adds_the_zoomed_look_and_reference_mode_does_not(make_segmenter,
                                                                       scene_rgb):
    import torch
    import torch.nn.functional as F

    zoomed, _ = make_segmenter(**{'features.mirror_view': False})
    whole, _ = make_segmenter(**{'features.zoom_context': 0.0, 'features.mirror_view': False})
    parity, _ = make_segmenter(parity='reference')
    masks = scene_masks()
    frame = zoomed.prepare(scene_rgb)
    encoder = zoomed.encoder
    windows = encoder.zoomed_features(encoder.input_builder(scene_rgb), masks,
                                      zoomed.config.features.zoom_context)
    expected = (F.normalize(encoder.encode(scene_rgb, masks), dim=-1)
                + F.normalize(windows, dim=-1))
    torch.testing.assert_close(frame.mask_features, expected, atol=1e-5, rtol=1e-5)
    for plain in (whole, parity):
        other = plain.prepare(scene_rgb)
        torch.testing.assert_close(other.mask_features, plain.encoder.encode(scene_rgb, masks))


def test_default_mode_adds_the_mirror_view_and_reference_mode_does_not(make_segmenter,
                                                                       scene_rgb):
    import torch

    default, _ = make_segmenter()
    parity, _ = make_segmenter(parity='reference')
    masks = scene_masks()
    # the sum of the two views is test_encoder's; here: the default mode asks for it
    torch.testing.assert_close(
        default.prepare(scene_rgb).mask_features,
        default.encoder.encode(scene_rgb, masks,
                               zoom_context=default.config.features.zoom_context, mirror=True),
        atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(parity.prepare(scene_rgb).mask_features,
                               parity.encoder.encode(scene_rgb, masks))
    assert default.mirror_view and not parity.mirror_view


def test_ablation_without_coherence_skips_gem(make_segmenter, scene_rgb):
    segmenter, _ = make_segmenter(**{'guidance.use_coherence': False})
    frame = segmenter.prepare(scene_rgb)
    assert frame.gem_tokens is None and 'gem' not in frame.timings_ms
    assert segmenter.query(frame, 'the disc on the right').found


@pytest.mark.parametrize('mode', ['G2L', 'L2G', 'G2L+L2G', 'L', 'G', 'G+L'])
def test_every_feature_mode_runs_end_to_end(make_segmenter, scene_rgb, mode):
    segmenter, _ = make_segmenter(**{'features.mode': mode})
    result = segmenter.segment(scene_rgb, 'the blue disc')
    assert result.found and np.isfinite(result.matching_probs).all()


def test_config_is_frozen():
    config = HybridGLConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.parity = 'reference'


def test_explanation_holds_every_intermediate_consistently(make_segmenter, scene_rgb):
    # an answer whether or not the tiny random CLIP's best "square" lies left of its best
    # "disc" (with the default, a relation that holds for no look-alike is "not found")
    segmenter, _ = make_segmenter(**{'decision.relation_fails_absent': False})
    frame = segmenter.prepare(scene_rgb)
    result = segmenter.query(frame, 'the square left of the blue disc', explain=True)
    e = result.explanation
    n, (h, w) = 4, scene_rgb.shape[:2]
    assert e.parse == result.parse and e.relation == 'left' and e.beta == 1.8
    np.testing.assert_allclose(e.matching_probs, result.matching_probs)
    np.testing.assert_allclose(e.matching_probs, np.exp(e.similarities - e.similarities.max())
                               / np.exp(e.similarities - e.similarities.max()).sum(), rtol=1e-5)
    assert e.other_probs.shape == (n,) and e.text_features['other'] is not None
    assert list(e.candidates) == list(result.candidate_indices)
    np.testing.assert_allclose(e.relation_probs, np.exp(e.relation_totals)
                               / np.exp(e.relation_totals).sum(), rtol=1e-5)
    assert e.coherence_input_map.shape == (112, 112) and e.coherence_map.shape == (h, w)
    assert e.guidance_map.shape == (h, w) and abs(e.guidance_map.mean() - 1) < 1e-4
    np.testing.assert_allclose(e.final_scores, 0.4 * e.relation_probs
                               + 0.6 * e.spatial_scores[e.candidates], rtol=1e-5)
    # the method's choice (argmax F); the answer is it, or the best candidate the relation
    # holds for (the decision's relation rule)
    assert e.chosen == e.decision['method_choice'] and result.index == e.decision['index']
    assert (result.index == e.chosen) == (e.decision['rule'] == 'method')
    assert result.index in e.candidates and e.pure_index == result.pure_index
    assert result.to_dict()['explanation']['candidates'] == list(result.candidate_indices)


def test_q_reads_the_anchor_phrases_look_words_in_the_default_mode(make_segmenter, scene_rgb):
    """``guidance.anchor_by_words``: q = softmax((s_u + the weakest word's standout) / 2) over
    the anchor's look words ("blue", "disc"); parity mode keeps the spec's softmax(s_u)."""
    import torch
    import torch.nn.functional as F

    for parity in ('default', 'reference'):
        segmenter, _ = make_segmenter(parity=parity)
        frame = segmenter.prepare(scene_rgb)
        e = segmenter.query(frame, 'the square left of the blue disc', explain=True).explanation
        v = F.normalize(frame.mask_features.float(), dim=-1)
        u = torch.from_numpy(e.text_features['other'])
        s_u = 100.0 * v @ F.normalize(u, dim=0)
        if parity == 'reference':
            assert e.text_features['other_words'] is None
            np.testing.assert_allclose(e.other_probs, torch.softmax(s_u, 0).numpy(), atol=1e-6)
            continue
        words = torch.from_numpy(e.text_features['other_words'])
        assert words.shape[0] == 2
        sw = 100.0 * v @ F.normalize(words, dim=-1).T
        weakest = (sw - sw.mean(dim=0)).min(dim=1).values
        np.testing.assert_allclose(e.other_probs, torch.softmax((s_u + weakest) / 2, 0).numpy(),
                                   atol=1e-5)


def test_a_position_word_without_an_anchor_is_judged_among_look_alikes(make_segmenter,
                                                                        scene_rgb):
    from hybridgl_ros.cli import format_explanation

    explanations = {}
    for parity in ('default', 'reference'):
        segmenter, _ = make_segmenter(parity=parity)
        frame = segmenter.prepare(scene_rgb)
        explanations[parity] = segmenter.query(frame, 'the square on the left side',
                                               explain=True).explanation
    among, spec = explanations['default'], explanations['reference']
    assert among.relation == spec.relation == 'none' and among.direction == 'left'
    assert among.lookalike_relation == 'left' and spec.lookalike_relation == 'none'
    # R compares the candidates' positions (partners: the candidates), the spec's is K·p
    assert list(among.partners) == list(among.candidates)
    np.testing.assert_allclose(spec.relation_totals,
                               len(spec.partners) * spec.matching_probs[spec.candidates],
                               rtol=1e-5)
    assert 'R among look-alikes (left)' in format_explanation(among)
    assert among.to_dict()['lookalike_relation'] == 'left'


def test_no_explanation_unless_asked(make_segmenter, scene_rgb):
    segmenter, _ = make_segmenter()
    result = segmenter.segment(scene_rgb, 'the blue disc')
    assert result.explanation is None and 'explanation' not in result.to_dict()


def test_explanation_without_coherence_has_no_map_but_the_ramp(make_segmenter, scene_rgb):
    segmenter, _ = make_segmenter(**{'guidance.use_coherence': False})
    e = segmenter.segment(scene_rgb, 'the disc on the right', explain=True).explanation
    assert e.coherence_map is None and e.coherence_input_map is None
    assert e.position_ramp[0, 0] == 0.0 and e.position_ramp[0, -1] == 1.0


def two_piece_scene_masks(h=96, w=128):
    """The scene's masks and, second, the square and the disc as one mask (two pieces)."""
    masks = scene_masks(h, w)
    return np.concatenate([masks[:1], (masks[0] | masks[1])[None], masks[1:]])


def test_a_mask_in_two_pieces_is_not_a_proposal_in_default_mode(make_segmenter, scene_rgb):
    split = two_piece_scene_masks()
    default, _ = make_segmenter(split)
    kept = default.prepare(scene_rgb).proposals
    assert len(kept) == len(split) - 1
    assert np.array_equal(kept.masks, split[[0, 2, 3, 4]])
    for flat in ({'parity': 'reference'}, {'proposals.drop_split_masks': False}):
        every, _ = make_segmenter(split, **flat)
        assert np.array_equal(every.prepare(scene_rgb).proposals.masks, split)


def test_dropping_split_masks_keeps_order_boxes_scores_and_the_restorer():
    from hybridgl_ros.core.proposals import drop_split_masks

    masks = two_piece_scene_masks()
    boxes = FixedProposer(masks).propose(None).boxes_xywh
    scores = np.linspace(0.5, 0.9, len(masks)).astype(np.float32)

    class Restorer:   # rebuilds the first 3 proposals, each as a mask full of its index
        def __len__(self):
            return 3

        def mask(self, index, size_hw):
            return np.full(size_hw, index, np.int64)

    kept = drop_split_masks(Proposals(masks, boxes, scores, Restorer()))
    assert np.array_equal(kept.boxes_xywh, boxes[[0, 2, 3, 4]])
    assert np.array_equal(kept.scores, scores[[0, 2, 3, 4]])
    assert len(kept.restorer) == 2   # of the first 3, the split one is gone
    assert [int(kept.restorer.mask(i, (2, 2))[0, 0]) for i in range(2)] == [0, 2]
    only_split = Proposals(masks[1:2], boxes[1:2], scores[1:2])
    assert drop_split_masks(only_split) is only_split   # nothing better to offer: kept
    diagonal = np.zeros((1, 4, 4), bool)
    diagonal[0, [0, 1], [0, 1]] = True   # touching at a corner: one piece (8-connected)
    one = Proposals(diagonal, np.array([[0, 0, 1, 1]]), scores[:1])   # SAM's inclusive box
    assert drop_split_masks(one) is one


def test_pieces_are_counted_inside_sams_box_like_over_the_whole_mask():
    import cv2

    from hybridgl_ros.core.proposals import pieces
    from hybridgl_ros.core.resolution import sam_box_xywh

    rng = np.random.default_rng(0)
    for _ in range(50):
        mask = rng.random((40, 50)) < 0.04   # scattered pixels: many pieces, some at the edges
        mask[rng.integers(40), rng.integers(50)] = True
        whole = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)[0] - 1
        assert pieces(mask, sam_box_xywh(mask)) == whole
