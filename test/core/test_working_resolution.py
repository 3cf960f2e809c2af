"""The working resolution: frames within the pixel budget unchanged, larger ones downscaled and
answered at the camera's size; the new mask path gives today's answers at 640x480.

The pipeline runs the embedded demo models (real SAM and open_clip code, small).
"""
import numpy as np
import pytest
import torch

from hybridgl_ros.core.config import HybridGLConfig
from hybridgl_ros.core.pipeline import DEFAULT_WORKING_PIXELS, HybridGL, sam_input_pixels
from hybridgl_ros.core.resolution import (
    full_resolution_mask, sam_box_xywh, upscale_mask, working_size)
from hybridgl_ros.core.types import Proposals
from hybridgl_ros.demo.expressions import scene_expressions
from hybridgl_ros.demo.scenes import make_scene

SEED = 11


@pytest.mark.parametrize('size, budget, expected', [
    ((480, 640), 1024 * 1024, (480, 640)), ((1080, 1920), 0, (1080, 1920)),
    ((1080, 1920), 1024 * 1024, (768, 1365)), ((3000, 4000), 1024 * 1024, (886, 1182)),
    ((2160, 3840), 1024 * 1024, (768, 1365))])
def test_working_size_keeps_small_frames_and_fits_large_ones_in_the_budget(size, budget,
                                                                           expected):
    assert working_size(*size, budget) == expected
    height, width = expected
    assert height * width <= (budget or height * width)


def test_sam_box_counts_the_last_row_and_column_inclusively_like_sam():
    mask = np.zeros((10, 12), bool)
    mask[2:5, 3:9] = True
    assert sam_box_xywh(mask) == (3, 2, 5, 2)
    assert sam_box_xywh(np.zeros((4, 4), bool)) == (0, 0, 0, 0)


def test_a_proposal_without_logits_is_upsampled_to_the_frame():
    masks = np.zeros((1, 30, 40), bool)
    masks[0, 10:20, 10:30] = True
    proposals = Proposals(masks, np.array([[10, 10, 19, 9]]), np.ones(1, np.float32))
    full = full_resolution_mask(proposals, 0, (60, 80))
    assert full.shape == (60, 80) and np.array_equal(full, upscale_mask(masks[0], (60, 80)))
    assert full[20:40, 20:60].all() and full.sum() == 20 * 40


@pytest.fixture(scope='module')
def demo_models():
    from hybridgl_ros.core.models import load_clip, load_sam

    config = HybridGLConfig().models
    return load_clip(config, torch.device('cpu')), load_sam(config, torch.device('cpu'))


@pytest.fixture(scope='module')
def parser():
    from hybridgl_ros.core.text import SpacyParser

    return SpacyParser()


def segmenter(demo_models, parser, proposer=None, **flat):
    clip, sam = demo_models
    config = HybridGLConfig.from_flat({'models.precision': 'fp32', **flat})
    made = HybridGL.from_models(config, clip, sam, parser=parser)
    if proposer is not None:
        made.proposer = proposer
    return made


class SegmentAnythingsGenerator:
    """Today's proposer: segment_anything's SamAutomaticMaskGenerator, masks as it gives them."""

    def __init__(self, sam, config):
        from segment_anything import SamAutomaticMaskGenerator

        settings = config.generator_settings(sam.image_encoder.img_size)
        settings['points_per_batch'] = 64   # as the project ran it before
        self.generator = SamAutomaticMaskGenerator(sam, output_mode='binary_mask', **settings)

    def propose(self, image_rgb):
        with torch.inference_mode():
            records = self.generator.generate(image_rgb)
        return Proposals(np.stack([r['segmentation'] for r in records]),
                         np.asarray([r['bbox'] for r in records], np.int64),
                         np.float32([r['predicted_iou'] for r in records]))


def test_640x480_answers_equal_those_of_segment_anythings_generator(demo_models, parser):
    # the mask path at the frame's own size; the whole image only (segment_anything's generator
    # costs ~10 s a scene here, five times that with a crop layer: test_mask_generation
    # compares the crops)
    full = {'proposals.max_working_pixels': 0, 'proposals.crop_n_layers': 0}
    ours = segmenter(demo_models, parser, **full)
    today = segmenter(demo_models, parser,
                      SegmentAnythingsGenerator(demo_models[1], ours.config.proposals), **full)
    for index in (0,):   # one scene: segment_anything's generator costs ~10 s a scene here
        scene = make_scene(SEED, index)
        frames = ours.prepare(scene.image_rgb), today.prepare(scene.image_rgb)
        assert frames[0].working_size == (480, 640)
        for ref in scene_expressions(scene.objects, SEED, index):
            for sentence in ref.sentences:
                got, expected = (s.query(f, sentence) for s, f in zip((ours, today), frames))
                assert got.index == expected.index and got.box_xywh == expected.box_xywh
                assert np.array_equal(got.mask, expected.mask)
                assert got.candidate_scores == expected.candidate_scores
                assert np.array_equal(got.spatial_scores, expected.spatial_scores)


def test_a_frame_over_the_budget_runs_downscaled_and_answers_at_its_own_size(demo_models,
                                                                            parser):
    scene = make_scene(SEED, 2)
    image = np.repeat(np.repeat(scene.image_rgb, 2, axis=0), 2, axis=1)   # 1280x960
    made = segmenter(demo_models, parser, **{'proposals.max_working_pixels': 640 * 480})
    frame = made.prepare(image)
    assert frame.working_size == (480, 640) and frame.image_size == (960, 1280)
    assert frame.mask_tensor.shape[1:] == (480, 640) and frame.mask_tensor.dtype == torch.bool
    result = made.query(frame, 'the blue ring')   # scene 2: a purple and a blue ring
    assert result.found and result.mask.shape == (960, 1280)
    assert result.box_xywh == sam_box_xywh(result.mask)
    x, y = result.interior_xy
    assert result.mask[y, x]
    working = frame.proposals.masks[result.index]
    agree = upscale_mask(working, (960, 1280)) == result.mask
    assert agree.mean() > 0.99


def test_parity_mode_ignores_the_pixel_budget(demo_models, parser):
    made = segmenter(demo_models, parser, parity='reference',
                     **{'proposals.max_working_pixels': 160 * 120})
    assert made.prepare(make_scene(SEED, 0).image_rgb).working_size == (480, 640)


def test_the_default_budget_is_sams_input_area(demo_models, parser):
    """-1 (the default): no frame runs at more pixels than SAM sees — 256x256 for the demo SAM,
    so a 640x480 frame runs at 295x221; 1024x1024 for the SAM checkpoints."""
    made = segmenter(demo_models, parser)
    assert made.config.proposals.max_working_pixels == -1
    assert made.working_pixels == 256 * 256 == sam_input_pixels(made.proposer)
    frame = made.prepare(make_scene(SEED, 0).image_rgb)
    assert frame.working_size == (221, 295) and frame.image_size == (480, 640)
    result = made.query(frame, 'the blue ring')
    assert result.mask.shape == (480, 640)
    assert sam_input_pixels(object()) == DEFAULT_WORKING_PIXELS == 1024 * 1024
    assert segmenter(demo_models, parser, **{'proposals.max_working_pixels': 0}
                     ).working_pixels == 0


def test_split_sam_masks_are_dropped_and_the_rest_restored_at_the_frames_size(demo_models,
                                                                               parser):
    """Flat scene 3 of seed 1: the demo SAM returns one of its 3 masks in two pieces. The
    default mode drops it; the kept masks rebuild at 512x512 exactly as without the drop."""
    import cv2

    image = make_scene(1, 3, 'flat').image_rgb
    frames = [segmenter(demo_models, parser, **{'proposals.drop_split_masks': drop})
              .prepare(image) for drop in (False, True)]
    every, kept = (frame.proposals for frame in frames)
    pieces = [cv2.connectedComponents(m.astype(np.uint8), connectivity=8)[0] - 1
              for m in every.masks]
    one_piece = [i for i, count in enumerate(pieces) if count == 1]
    assert frames[0].working_size == (256, 256) and len(one_piece) < len(every)
    assert np.array_equal(kept.masks, every.masks[one_piece])
    for k, i in enumerate(one_piece):
        assert np.array_equal(full_resolution_mask(kept, k, (512, 512)),
                              full_resolution_mask(every, i, (512, 512)))


def test_the_pipeline_prompts_sam_with_the_modes_grid(demo_models, parser):
    """``proposals.points_per_side`` 0: 12 × 12 prompts in the default mode, the spec's 8 × 8
    in parity mode; a value set is used in both."""
    def prompts(**flat):
        return len(segmenter(demo_models, parser, **flat).proposer._generator.point_grids[0])

    assert prompts() == 144
    assert prompts(parity='reference') == 64
    assert prompts(parity='reference', **{'proposals.points_per_side': 16}) == 256


def test_the_demo_sam_runs_one_crop_layer_in_the_default_mode_only(demo_models, parser):
    """Its input is 256 px (below 512): the default mode adds a crop layer, whole-image masks
    preferred; parity mode keeps spec §3's whole image."""
    default = segmenter(demo_models, parser).proposer.config
    assert (default.crop_n_layers, default.prefer_whole_image_masks) == (1, True)
    parity = segmenter(demo_models, parser, parity='reference').proposer.config
    assert (parity.crop_n_layers, parity.prefer_whole_image_masks) == (0, False)
    assert parity.points_per_side == 8


def flat_ring_scene(height=480, width=640):
    """A flat blue ring (outer radius 40 px, hole 22 px: 1,520 px of hole) and an orange
    square on grey: its hole is over SAM's 800-px clean-up area in the camera's pixels, under
    it at the demo SAM's 295x221 working size (323 px)."""
    yy, xx = np.mgrid[0:height, 0:width]
    image = np.full((height, width, 3), 200, np.uint8)
    r2 = (yy - 200) ** 2 + (xx - 200) ** 2
    ring = (r2 <= 40 ** 2) & (r2 > 22 ** 2)
    image[ring] = (40, 90, 220)
    image[280:360, 400:480] = (245, 130, 20)
    return image, ring


class RecordingProposer:
    """SAM's proposer, recording what the pipeline tells it of each frame."""

    def __init__(self, inner):
        self.inner, self.takes_hole_area, self.told = inner, inner.takes_hole_area, []
        self.sam = inner.sam

    def propose(self, image_rgb, **told):
        self.told.append(told)
        return self.inner.propose(image_rgb, **told)


def test_a_downscaled_frame_keeps_the_holes_the_camera_sees(demo_models, parser):
    """``proposals.min_mask_region_area`` is in the camera's pixels: at the working size SAM's
    clean-up fills holes below 800 × 221·295 / 480·640 = 170 px only (islands: 800 working
    px, as before), so the ring keeps its hole and the answer's interior point is on the
    ring."""
    image, ring = flat_ring_scene()
    made = segmenter(demo_models, parser)
    made.proposer = RecordingProposer(made.proposer)
    frame = made.prepare(image)
    assert made.proposer.told == [{'min_hole_area': 800 * 221 * 295 / (480 * 640)}]
    result = made.query(frame, 'the blue ring')
    assert result.found
    # before: the hole filled, IoU 0.60, the interior point (200, 201) in the hole
    assert (result.mask & ring).sum() / (result.mask | ring).sum() > 0.7     # 0.74
    assert not result.mask[200, 200]          # the hole
    x, y = result.interior_xy
    assert ring[y, x]
    # at the frame's own size nothing is scaled: the proposer is told nothing
    made.proposer.told.clear()
    made.prepare(image[:221, :295])
    assert made.proposer.told == [{}]
