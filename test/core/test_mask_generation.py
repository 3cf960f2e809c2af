"""The bounded mask generator against segment_anything's own, on the embedded demo SAM.

The demo SAM runs the real segment_anything code (image encoder, prompt encoder, mask decoder)
at a small size; the scenes are the demo's generated table tops, halved to keep this cheap.
"""
from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch

from hybridgl_ros.core.config import ProposalConfig
from hybridgl_ros.core.mask_generation import BoundedMaskGenerator
from hybridgl_ros.core.sam_encoder import (banded_attention, banded_global_attention,
                                           fused_attention)
from hybridgl_ros.demo.scenes import make_scene


@pytest.fixture(scope='module')
def demo_sam():
    from hybridgl_ros.core.config import ModelConfig
    from hybridgl_ros.core.models import load_sam

    return load_sam(ModelConfig(), torch.device('cpu'))


def scene(index, size=(320, 240)):
    return cv2.resize(make_scene(5, index).image_rgb, size, interpolation=cv2.INTER_AREA)


def reference_records(sam, config, image):
    """segment_anything's SamAutomaticMaskGenerator with the same settings."""
    from segment_anything import SamAutomaticMaskGenerator

    settings = config.generator_settings(sam.image_encoder.img_size)
    with torch.inference_mode():
        return SamAutomaticMaskGenerator(sam, output_mode='binary_mask', **settings).generate(
            image)


@pytest.mark.parametrize('config', [
    ProposalConfig(crop_n_layers=0),
    ProposalConfig(crop_n_layers=0, pred_iou_thresh=0.0, stability_score_thresh=0.0,
                   points_per_batch=20),
    ProposalConfig(points_per_side=8, crop_n_layers=1, crop_n_points_downscale_factor=2,
                   pred_iou_thresh=0.5, min_mask_region_area=100,
                   prefer_whole_image_masks=False),
    ProposalConfig(prefer_whole_image_masks=False),
], ids=['whole-image', 'no-thresholds-odd-batches', 'crop-layer', 'defaults-sams-crop-nms'])
def test_masks_boxes_scores_and_order_equal_segment_anythings_generator(demo_sam, config):
    image = scene(0)
    # segment_anything's generator as the project ran it before: 64 prompts at once
    expected = reference_records(demo_sam, replace(config, points_per_batch=64), image)
    got = BoundedMaskGenerator(demo_sam, config).generate(image)
    assert len(expected) > 2 and len(got['masks']) == len(expected)
    assert np.array_equal(got['masks'], np.stack([r['segmentation'] for r in expected]))
    xyxy = np.asarray([r['bbox'] for r in expected], np.int64)
    xyxy[:, 2:] += xyxy[:, :2]
    assert np.array_equal(got['boxes_xyxy'], xyxy)
    assert np.array_equal(got['iou_preds'], np.float32([r['predicted_iou'] for r in expected]))


def test_crops_add_to_the_whole_images_masks_when_it_is_preferred(demo_sam):
    """The default mode's crop layer (the demo SAM's input is 256 px) keeps every mask of the
    whole image bit for bit and adds what it does not have (no duplicates, no parts); SAM's
    generator replaces most of them by the crops' duplicates."""
    small = make_scene(5, 2, 'flat', object_scale=0.5)   # objects at half their size
    image = cv2.resize(small.image_rgb, (320, 240), interpolation=cv2.INTER_AREA)
    objects = [cv2.resize(mask.astype(np.uint8), (320, 240), interpolation=cv2.INTER_NEAREST)
               > 0 for mask in small.masks]
    # the spec's score filters: with the coarse grid's 0.4 the whole image finds these alone
    spec = ProposalConfig(pred_iou_thresh=0.7, stability_score_thresh=0.7)
    whole = BoundedMaskGenerator(demo_sam, replace(spec, crop_n_layers=0)).generate(image)
    both = BoundedMaskGenerator(demo_sam, spec).generate(image)
    sams = BoundedMaskGenerator(demo_sam, replace(spec, prefer_whole_image_masks=False)
                                ).generate(image)

    def kept(masks):
        return sum(any(np.array_equal(mask, other) for other in masks)
                   for mask in whole['masks'])

    assert len(both['masks']) > len(whole['masks']) >= 2
    assert kept(both['masks']) == len(whole['masks'])
    assert kept(sams['masks']) < len(whole['masks'])
    added = [mask for mask in both['masks']
             if not any(np.array_equal(mask, other) for other in whole['masks'])]
    for mask in added:   # objects the whole image missed, not copies of its masks
        ious = [(mask & other).sum() / (mask | other).sum() for other in whole['masks']]
        assert max(ious) < 0.5
        assert max((mask & obj).sum() / (mask | obj).sum() for obj in objects) >= 0.5


def test_the_coarse_grids_score_filters_keep_small_objects(demo_sam):
    """The default mode's score filters for the demo SAM (masks on a 64 x 64 grid: 0.4,
    docs/measurements.md "Small objects: SAM's score filters"): objects at 0.35 of the series'
    size, the frame at the working size, are all found; the spec's 0.7 drops the masks of most of
    them (SAM scores a mask a few cells wide low however well it fits)."""
    from hybridgl_ros.core.motion import mask_iou
    from hybridgl_ros.demo.scenes import at_working_size

    small = at_working_size(make_scene(5, 0, 'flat', object_scale=0.35), 256 * 256)

    def found(config):
        masks = BoundedMaskGenerator(demo_sam, config).generate(small.image_rgb)['masks']
        return sum(max(mask_iou(mask, obj) for mask in masks) >= 0.5 for obj in small.masks)

    assert found(ProposalConfig()) == len(small.masks) == 6
    assert found(ProposalConfig(pred_iou_thresh=0.7, stability_score_thresh=0.7)) <= 3


def test_a_crops_copy_or_part_of_a_whole_image_mask_is_dropped():
    from segment_anything.utils.amg import MaskData

    from hybridgl_ros.core.mask_generation import _keep_what_crops_add

    def square(x, y, side):
        mask = np.zeros((64, 64), bool)
        mask[y:y + side, x:x + side] = True
        return mask

    masks = [square(4, 4, 20),     # the whole image's
             square(6, 6, 20),     # a crop's copy of it (IoU 0.68)
             square(8, 8, 6),      # a crop's part of it (inside, 9 % of its area)
             square(40, 40, 8),    # a crop's object the whole image missed
             square(2, 2, 14)]     # a crop's mask half outside it: kept
    data = MaskData(packed=np.packbits(np.stack(masks), axis=-1),
                    crop_index=torch.tensor([0, 1, 2, 3, 4]))
    _keep_what_crops_add(data, 64)
    assert data['crop_index'].tolist() == [0, 3, 4]


def test_an_object_inside_a_whole_image_mask_in_pieces_is_no_part():
    """A whole-image mask of two objects (SAM returned them as one; dropped later as split):
    a crop's mask of one of them is an object, not a part of the whole-image mask."""
    from segment_anything.utils.amg import MaskData

    from hybridgl_ros.core.mask_generation import _keep_what_crops_add

    def square(x, y, side):
        mask = np.zeros((64, 64), bool)
        mask[y:y + side, x:x + side] = True
        return mask

    two = square(2, 2, 24) | square(40, 40, 10)   # a big object and a small one, as one mask
    masks = [two,
             square(40, 40, 10),   # a crop's mask of the small one: 100 % inside the mask,
                                   # 15 % of its area, but the whole of its piece: kept
             square(4, 4, 6)]      # a crop's part of the big object's piece: dropped
    data = MaskData(packed=np.packbits(np.stack(masks), axis=-1),
                    crop_index=torch.tensor([0, 1, 2]))
    _keep_what_crops_add(data, 64)
    assert data['crop_index'].tolist() == [0, 1]


def test_an_image_without_masks_gives_empty_arrays(demo_sam):
    config = ProposalConfig(pred_iou_thresh=100.0)   # predicted IoU is a regression: >1 occurs
    got = BoundedMaskGenerator(demo_sam, config).generate(scene(1))
    assert got['masks'].shape == (0, 240, 320) and got['boxes_xyxy'].shape == (0, 4)
    assert got['restorer'] is None


def test_restorer_rebuilds_the_kept_masks_at_their_own_size(demo_sam):
    got = BoundedMaskGenerator(demo_sam, ProposalConfig()).generate(scene(2))
    restorer = got['restorer']
    assert len(restorer) == len(got['masks'])
    for index, mask in enumerate(got['masks']):
        assert np.array_equal(restorer.mask(index, mask.shape), mask)


def test_restorer_at_twice_the_size_covers_the_same_region(demo_sam):
    got = BoundedMaskGenerator(demo_sam, ProposalConfig()).generate(scene(2))
    for index, mask in enumerate(got['masks']):
        large = got['restorer'].mask(index, (480, 640))
        small = cv2.resize(large.astype(np.uint8), (320, 240), interpolation=cv2.INTER_AREA)
        agree = (small > 0) == mask
        assert large.shape == (480, 640) and agree.mean() > 0.99


def _attention_with_relative_positions(grid=12, dim=48, heads=4):
    from segment_anything.modeling.image_encoder import Attention

    torch.manual_seed(0)
    attn = Attention(dim, heads, use_rel_pos=True, input_size=(grid, grid)).eval()
    with torch.no_grad():
        attn.rel_pos_h.normal_(0, 0.5)
        attn.rel_pos_w.normal_(0, 0.5)
    return attn, torch.randn(1, grid, grid, dim)


@pytest.mark.parametrize('budget', [1, 5000, 2 ** 24])
def test_banded_attention_is_bit_identical_to_sams_in_fp32(budget):
    attn, x = _attention_with_relative_positions()
    with torch.inference_mode():
        assert torch.equal(banded_attention(attn, x, budget), attn(x))


@pytest.mark.parametrize('attention', [banded_attention, fused_attention])
def test_attention_in_bands_under_bf16_autocast_stays_close_to_fp32(attention):
    attn, x = _attention_with_relative_positions()
    with torch.inference_mode():
        expected = attn(x)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            got = attention(attn, x, 5000).float()
    assert torch.allclose(got, expected, atol=0.05, rtol=0.05)


@pytest.mark.parametrize('budget', [1, 5000, 2 ** 24])
def test_fused_attention_equals_sams_to_float_rounding_in_fp32(budget):
    attn, x = _attention_with_relative_positions()
    with torch.inference_mode():
        torch.testing.assert_close(fused_attention(attn, x, budget), attn(x), atol=1e-5,
                                   rtol=1e-5)


def test_fused_mode_patches_every_block_and_is_undone_on_exit(demo_sam):
    encoder = demo_sam.image_encoder
    with banded_global_attention(encoder, fused=True):
        assert all('forward' in vars(block.attn) for block in encoder.blocks)
    assert not any('forward' in vars(block.attn) for block in encoder.blocks)


def test_banded_global_attention_is_undone_on_exit(demo_sam):
    encoder = demo_sam.image_encoder
    with banded_global_attention(encoder):
        assert all('forward' in vars(block.attn) for block in encoder.blocks)
    assert not any('forward' in vars(block.attn) for block in encoder.blocks)


def test_points_per_batch_does_not_change_the_masks(demo_sam):
    image = scene(3)
    small = BoundedMaskGenerator(demo_sam, ProposalConfig(points_per_batch=16))
    large = BoundedMaskGenerator(demo_sam, ProposalConfig(points_per_batch=64))
    assert np.array_equal(small.generate(image)['masks'], large.generate(image)['masks'])


def test_holes_have_an_area_of_their_own():
    from hybridgl_ros.core.mask_generation import remove_islands_and_holes

    yy, xx = np.mgrid[0:80, 0:80]
    r2 = (yy - 30) ** 2 + (xx - 30) ** 2
    ring = (r2 <= 20 ** 2) & (r2 > 8 ** 2)          # a hole of ~200 px
    island = np.zeros_like(ring)
    island[60:72, 60:72] = True                      # an island of 144 px
    filled, same = remove_islands_and_holes(ring | island, 300, 300)
    assert not same and filled[30, 30] and not filled[65, 65]
    kept, _ = remove_islands_and_holes(ring | island, 300, holes=100)
    assert np.array_equal(kept, ring)

