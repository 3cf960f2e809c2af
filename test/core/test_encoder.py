"""Hybrid global-local mask features (spec §4) on the tiny 12-block open_clip ViT."""
from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hybridgl_ros.core.config import FEATURE_MODES, FeatureConfig
from hybridgl_ros.core.encoder import HybridEncoder, block_forward
from hybridgl_ros.core.errors import ConfigError, InvalidInputError
from hybridgl_ros.core.mask_images import (
    BilinearSampler, cls_attention_mask, global_images, local_images, normalize_image,
    token_masks, zoom_window)

FUSION_START = 9
CONFIG = FeatureConfig()


def _resize(x, size):
    return F.interpolate(x, size=size, mode='bilinear', align_corners=False, antialias=False)


@pytest.fixture
def scene_masks(scene_rgb):
    """(4, 96, 128) bool: the red square, the blue disc, a thin bar, the square's left half."""
    h, w = scene_rgb.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    masks = np.zeros((4, h, w), bool)
    masks[0, 30:60, 15:45] = True
    masks[1] = (yy - 48) ** 2 + (xx - 95) ** 2 < 15 ** 2
    masks[2, 70:74, 10:120] = True
    masks[3, 30:60, 15:30] = True
    return masks


def _encoder(tiny_clip, **changes):
    return HybridEncoder(tiny_clip.visual, replace(CONFIG, **changes), FUSION_START, 'cpu')


def _reference_heads(visual, image_rgb, mask, config):
    """Spec §4 transcribed for one mask with full-resolution composites and plain torch ops.

    Returns head(X) = ln_post(CLS(X))·proj of the four distinct final streams: plain local L,
    masked global G, G2L's local (= HL of G2L+L2G) and L2G's global (= HG of G2L+L2G).
    """
    side = visual.image_size
    image = normalize_image(image_rgb, config.image_mean, config.image_std)
    blurred = cv2.GaussianBlur(image_rgb, (15, 15), 2.6, borderType=cv2.BORDER_REFLECT_101)
    blurred = normalize_image(blurred, config.image_mean, config.image_std)
    mask_t = torch.from_numpy(mask)
    fill = torch.tensor(config.local_fill)[:, None, None]
    local = _resize(torch.where(mask_t, image, fill)[None], side)
    global_ = _resize(torch.where(mask_t, image, blurred)[None], side)
    keep = torch.cat([torch.ones(1), _resize(mask_t.float()[None, None], visual.grid_size)
                      .flatten()])   # (1 + T,): CLS, then m_t
    attn = torch.zeros(keep.numel(), keep.numel())
    attn[0] = torch.zeros(keep.numel()).masked_fill(keep == 0, -1e30)
    blocks = visual.transformer.resblocks
    ls, gs = visual._embeds(local), visual._embeds(global_)
    for block in blocks[:FUSION_START]:
        ls, gs = block(ls), block(gs)
    hl, hg = ls, gs
    w = config.fusion_weight
    for block in blocks[FUSION_START:]:
        g_hat = gs * keep[None, :, None]
        ls, gs, hl, hg = (block(ls), block(gs, attn_mask=attn), block(hl + w * g_hat),
                          block(ls + w * hg, attn_mask=attn))
    return {name: (visual.ln_post(x[:, 0]) @ visual.proj)[0]
            for name, x in (('L', ls), ('G', gs), ('G2L', hl), ('L2G', hg))}


def _reference_feature(heads, config):
    """v of one mask in config.mode from its reference heads."""
    weight = config.g_plus_l_weight
    return {'G2L': heads['G2L'], 'L2G': heads['L2G'], 'G2L+L2G': heads['G2L'] + heads['L2G'],
            'L': heads['L'], 'G': heads['G'],
            'G+L': weight * heads['G'] + (1 - weight) * heads['L']}[config.mode]


@pytest.fixture(scope='module')
def reference_cache():
    """Reference heads computed once for the module (they do not depend on the mode)."""
    return {}


@pytest.mark.parametrize('size_in,size_out', [((96, 128), (56, 56)), ((7, 9), (14, 14)),
                                              ((480, 640), (224, 224))])
def test_bilinear_sampler_equals_interpolate_without_antialias(size_in, size_out):
    x = torch.rand(2, 3, *size_in, generator=torch.Generator().manual_seed(0))
    sampled = BilinearSampler(size_in, size_out).resize(x)
    torch.testing.assert_close(sampled, _resize(x, size_out), atol=1e-5, rtol=0)


def test_token_mask_samples_the_mask_at_cell_centres(scene_masks):
    grid = 14
    got = token_masks(torch.from_numpy(scene_masks), (grid, grid)).numpy()
    n, h, w = scene_masks.shape

    def axis(size):
        src = np.clip((np.arange(grid) + 0.5) * size / grid - 0.5, 0, None)
        first = np.floor(src).astype(int)
        return first, np.minimum(first + 1, size - 1), src - first
    y0, y1, fy = axis(h)
    x0, x1, fx = axis(w)
    m = scene_masks.astype(np.float64)
    top = m[:, y0][:, :, x0] * (1 - fx) + m[:, y0][:, :, x1] * fx
    bottom = m[:, y1][:, :, x0] * (1 - fx) + m[:, y1][:, :, x1] * fx
    expected = top * (1 - fy)[:, None] + bottom * fy[:, None]
    np.testing.assert_allclose(got, expected.reshape(n, -1), atol=1e-5)


def test_normalized_image_uses_imagenet_statistics(scene_rgb):
    image = normalize_image(scene_rgb, CONFIG.image_mean, CONFIG.image_std)
    expected = (scene_rgb[40, 20] / 255.0 - np.array(CONFIG.image_mean)) / CONFIG.image_std
    np.testing.assert_allclose(image[:, 40, 20].numpy(), expected, atol=1e-6)


def test_local_image_is_normalized_image_inside_and_fill_outside(scene_rgb, scene_masks):
    image = normalize_image(scene_rgb, CONFIG.image_mean, CONFIG.image_std)
    local = local_images(image, torch.from_numpy(scene_masks), CONFIG.local_fill)
    inside = torch.from_numpy(scene_masks[0])
    torch.testing.assert_close(local[0][:, inside], image[:, inside])
    fill = torch.tensor(CONFIG.local_fill)[:, None].expand(3, int((~inside).sum()))
    torch.testing.assert_close(local[0][:, ~inside], fill)


def test_global_image_is_original_inside_and_opencv_blur_outside(scene_rgb, scene_masks):
    blurred_rgb = cv2.GaussianBlur(scene_rgb, (15, 15), 0)   # OpenCV derives sigma 2.6
    image = normalize_image(scene_rgb, CONFIG.image_mean, CONFIG.image_std)
    blurred = normalize_image(blurred_rgb, CONFIG.image_mean, CONFIG.image_std)
    global_ = global_images(image, blurred, torch.from_numpy(scene_masks))
    inside = torch.from_numpy(scene_masks[1])
    torch.testing.assert_close(global_[1][:, inside], image[:, inside])
    torch.testing.assert_close(global_[1][:, ~inside], blurred[:, ~inside])


def test_mask_inputs_equal_resized_full_resolution_composites(tiny_clip, scene_rgb, scene_masks):
    encoder = _encoder(tiny_clip)
    masks = torch.from_numpy(scene_masks)
    inputs = encoder.input_builder(scene_rgb).build(masks)
    image = normalize_image(scene_rgb, CONFIG.image_mean, CONFIG.image_std)
    blurred = normalize_image(cv2.GaussianBlur(scene_rgb, (15, 15), 0), CONFIG.image_mean,
                              CONFIG.image_std)
    expected_local = _resize(local_images(image, masks, CONFIG.local_fill), (56, 56))
    expected_global = _resize(global_images(image, blurred, masks), (56, 56))
    torch.testing.assert_close(inputs.local, expected_local, atol=1e-5, rtol=0)
    torch.testing.assert_close(inputs.global_, expected_global, atol=1e-5, rtol=0)


def _tokens(count):
    """(count, 197, 64) random tokens of the tiny ViT."""
    return torch.randn(count, 197, 64, generator=torch.Generator().manual_seed(1))


def _masked_block_outputs(tiny_clip, token_mask, perturb_outside):
    block = tiny_clip.visual.transformer.resblocks[FUSION_START]
    x = _tokens(len(token_mask))
    if perturb_outside:
        cls_column = torch.zeros(len(token_mask), 1, dtype=torch.bool)
        outside = torch.cat([cls_column, token_mask == 0], 1)
        x = x + 5.0 * outside[:, :, None] * torch.randn(x.shape, generator=torch.Generator())
    with torch.no_grad():
        return block_forward(block, x, cls_attention_mask(token_mask))


def _half_token_mask():
    token_mask = torch.zeros(2, 196)
    token_mask[0, :98] = 1.0
    token_mask[1, 50:60] = 0.25
    return token_mask


def test_masked_cls_ignores_tokens_outside_the_mask(tiny_clip):
    token_mask = _half_token_mask()
    plain = _masked_block_outputs(tiny_clip, token_mask, perturb_outside=False)
    perturbed = _masked_block_outputs(tiny_clip, token_mask, perturb_outside=True)
    torch.testing.assert_close(perturbed[:, 0], plain[:, 0])


def test_masked_block_leaves_patch_queries_unrestricted(tiny_clip):
    token_mask = _half_token_mask()
    plain = _masked_block_outputs(tiny_clip, token_mask, perturb_outside=False)
    perturbed = _masked_block_outputs(tiny_clip, token_mask, perturb_outside=True)
    assert not torch.allclose(perturbed[:, 1:99], plain[:, 1:99])


def test_cls_attention_mask_of_an_empty_mask_gives_finite_output(tiny_clip):
    out = _masked_block_outputs(tiny_clip, torch.zeros(1, 196), perturb_outside=False)
    assert torch.isfinite(out).all()


def test_block_forward_equals_open_clip_block(tiny_clip):
    block = tiny_clip.visual.transformer.resblocks[0]
    with torch.no_grad():
        torch.testing.assert_close(block_forward(block, _tokens(3)), block(_tokens(3)),
                                   atol=1e-5, rtol=1e-5)


def test_block_forward_with_cls_mask_equals_open_clip_block_with_additive_mask(tiny_clip):
    block = tiny_clip.visual.transformer.resblocks[FUSION_START]
    allowed = cls_attention_mask(_half_token_mask())   # (2, 1, 197, 197)
    additive = torch.zeros(allowed.shape).masked_fill(~allowed, float('-inf'))
    additive = additive.repeat_interleave(block.attn.num_heads, dim=0)[:, 0]   # (2·heads, L, L)
    with torch.no_grad():
        torch.testing.assert_close(block_forward(block, _tokens(2), allowed),
                                   block(_tokens(2), attn_mask=additive), atol=1e-5, rtol=1e-5)


def test_cls_only_block_forward_equals_the_full_blocks_cls_token(tiny_clip):
    block = tiny_clip.visual.transformer.resblocks[FUSION_START]
    allowed = cls_attention_mask(_half_token_mask())
    with torch.no_grad():
        full = block_forward(block, _tokens(2), allowed)
        cls = block_forward(block, _tokens(2), allowed, cls_only=True)
    torch.testing.assert_close(cls, full[:, :1], atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize('mode', FEATURE_MODES)
def test_features_equal_the_per_mask_spec_computation(tiny_clip, scene_rgb, scene_masks, mode,
                                                      reference_cache):
    encoder = _encoder(tiny_clip, mode=mode)
    features = encoder.encode(scene_rgb, scene_masks)
    if not reference_cache:
        with torch.no_grad():
            reference_cache['heads'] = [_reference_heads(tiny_clip.visual, scene_rgb, mask, CONFIG)
                                        for mask in scene_masks]
    expected = torch.stack([_reference_feature(heads, encoder.config)
                            for heads in reference_cache['heads']])
    assert features.shape == (4, 32) and features.dtype == torch.float32
    torch.testing.assert_close(features, expected, atol=1e-4, rtol=1e-4)


def test_zero_fusion_weight_turns_g2l_into_the_local_branch(tiny_clip, scene_rgb, scene_masks):
    hybrid = _encoder(tiny_clip, mode='G2L', fusion_weight=0.0).encode(scene_rgb, scene_masks)
    local = _encoder(tiny_clip, mode='L').encode(scene_rgb, scene_masks)
    torch.testing.assert_close(hybrid, local, atol=1e-5, rtol=1e-5)


def test_local_mode_equals_open_clip_on_the_local_image(tiny_clip, scene_rgb, scene_masks):
    encoder = _encoder(tiny_clip, mode='L')
    inputs = encoder.input_builder(scene_rgb).build(torch.from_numpy(scene_masks))
    with torch.no_grad():
        expected = tiny_clip.visual(inputs.local)
    torch.testing.assert_close(encoder.encode(scene_rgb, scene_masks), expected,
                               atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('mode', ['G2L', 'G2L+L2G'])
def test_chunked_encoding_equals_one_batch(tiny_clip, scene_rgb, scene_masks, mode):
    one_by_one = _encoder(tiny_clip, mode=mode, mask_batch_size=1).encode(scene_rgb, scene_masks)
    batched = _encoder(tiny_clip, mode=mode, mask_batch_size=32).encode(scene_rgb, scene_masks)
    torch.testing.assert_close(one_by_one, batched, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('mode', FEATURE_MODES)
def test_empty_and_full_masks_give_finite_features(tiny_clip, scene_rgb, mode):
    masks = np.zeros((2,) + scene_rgb.shape[:2], bool)
    masks[1] = True
    features = _encoder(tiny_clip, mode=mode).encode(scene_rgb, masks)
    assert features.shape == (2, 32) and torch.isfinite(features).all()


def _box_mask(shape, x, y, w, h):
    mask = np.zeros(shape, bool)
    mask[y:y + h, x:x + w] = True
    return mask


def test_zoom_window_is_the_box_side_plus_context_centred_on_the_box():
    rows, columns = zoom_window(_box_mask((200, 300), 140, 90, 20, 10), 1.5)
    assert (rows.start, rows.stop, columns.start, columns.stop) == (55, 135, 110, 190)


def test_zoom_window_moves_inside_the_picture_and_stays_square():
    rows, columns = zoom_window(_box_mask((200, 300), 0, 185, 12, 15), 1.5)
    assert (rows.start, rows.stop, columns.start, columns.stop) == (140, 200, 0, 60)
    rows, columns = zoom_window(_box_mask((200, 300), 100, 20, 90, 40), 1.5)
    assert (rows.stop - rows.start, columns.stop - columns.start) == (200, 200)
    rows, columns = zoom_window(_box_mask((200, 300), 100, 20, 90, 40), 0.0)
    assert (rows.start, rows.stop, columns.start, columns.stop) == (0, 90, 100, 190)


def test_a_windows_mask_inputs_are_its_pixels_and_the_whole_images_blur(tiny_clip, scene_rgb,
                                                                       scene_masks):
    encoder = _encoder(tiny_clip)
    whole = encoder.input_builder(scene_rgb)
    image = normalize_image(scene_rgb, CONFIG.image_mean, CONFIG.image_std)
    blurred = normalize_image(cv2.GaussianBlur(scene_rgb, (15, 15), 0), CONFIG.image_mean,
                              CONFIG.image_std)
    rows, columns = zoom_window(scene_masks[1], 0.5)      # the disc, 45 px square
    masks = torch.from_numpy(scene_masks[:, rows, columns].copy())
    inputs = whole.window(rows, columns).build(masks)
    window, window_blur = image[:, rows, columns], blurred[:, rows, columns]
    torch.testing.assert_close(
        inputs.local, _resize(local_images(window, masks, CONFIG.local_fill), (56, 56)),
        atol=1e-5, rtol=0)
    torch.testing.assert_close(
        inputs.global_, _resize(global_images(window, window_blur, masks), (56, 56)),
        atol=1e-5, rtol=0)
    torch.testing.assert_close(inputs.token_mask, token_masks(masks, (14, 14)))
    # the window of the whole image is the builder itself
    everything = whole.window(slice(0, 96), slice(0, 128)).build(torch.from_numpy(scene_masks))
    torch.testing.assert_close(everything.global_,
                               whole.build(torch.from_numpy(scene_masks)).global_)


@pytest.mark.parametrize('batch', [1, 32])
def test_zoomed_features_are_the_features_on_each_masks_window(tiny_clip, scene_rgb,
                                                               scene_masks, batch):
    encoder = _encoder(tiny_clip, mask_batch_size=batch)
    whole = encoder.input_builder(scene_rgb)
    zoomed = encoder.zoomed_features(whole, scene_masks, 1.5)
    for index, mask in enumerate(scene_masks):
        rows, columns = zoom_window(mask, 1.5)
        alone = encoder.encode_inputs(whole.window(rows, columns).build(
            torch.from_numpy(mask[None, rows, columns].copy())))
        torch.testing.assert_close(zoomed[index:index + 1], alone, atol=1e-5, rtol=1e-5)
    assert encoder.zoomed_features(whole, scene_masks[:0], 1.5).shape == (0, 32)
    assert encoder.encode(scene_rgb, scene_masks[:0], zoom_context=1.5).shape == (0, 32)


def test_an_empty_mask_is_zoomed_on_the_whole_image(tiny_clip, scene_rgb):
    empty = np.zeros((1,) + scene_rgb.shape[:2], bool)
    assert zoom_window(empty[0], 1.5) == (slice(0, 96), slice(0, 128))
    encoder = _encoder(tiny_clip)
    torch.testing.assert_close(
        encoder.zoomed_features(encoder.input_builder(scene_rgb), empty, 1.5),
        encoder.encode(scene_rgb, empty))


def test_no_masks_give_an_empty_feature_matrix(tiny_clip, scene_rgb):
    features = _encoder(tiny_clip).encode(scene_rgb, np.zeros((0, 96, 128), bool))
    assert features.shape == (0, 32) and features.dtype == torch.float32


def test_bfloat16_autocast_returns_float32_close_to_fp32(tiny_clip, scene_rgb, scene_masks):
    masks = scene_masks[:2]
    fp32 = _encoder(tiny_clip).encode(scene_rgb, masks)
    encoder = HybridEncoder(tiny_clip.visual, CONFIG, FUSION_START, 'cpu', torch.bfloat16)
    half = encoder.encode(scene_rgb, masks)
    assert half.dtype == torch.float32
    assert F.cosine_similarity(half, fp32).min() > 0.98


def test_masks_of_another_size_than_the_image_are_rejected(tiny_clip, scene_rgb):
    with pytest.raises(InvalidInputError):
        _encoder(tiny_clip).encode(scene_rgb, np.zeros((1, 50, 50), bool))


def test_fusion_start_beyond_the_depth_is_rejected(tiny_clip):
    with pytest.raises(ConfigError):
        HybridEncoder(tiny_clip.visual, CONFIG, 13, 'cpu')


def test_the_mirror_view_adds_the_features_of_the_flipped_image_and_masks(tiny_clip, scene_rgb,
                                                                          scene_masks):
    encoder = _encoder(tiny_clip)
    flipped_rgb = np.ascontiguousarray(scene_rgb[:, ::-1])
    flipped_masks = np.ascontiguousarray(scene_masks[:, :, ::-1])
    for context in (0.0, 1.5):
        both = encoder.encode(scene_rgb, scene_masks, zoom_context=context, mirror=True)
        one_view = encoder.encode(scene_rgb, scene_masks, zoom_context=context)
        mirrored = encoder.encode(flipped_rgb, flipped_masks, zoom_context=context)
        torch.testing.assert_close(both, one_view + mirrored, atol=1e-5, rtol=1e-5)
        # the two views differ (the CLIP's positions are not mirror-symmetric), so the sum is
        # not the one view's feature again
        assert not torch.allclose(F.normalize(one_view, dim=-1),
                                  F.normalize(mirrored, dim=-1), atol=1e-3)
    assert encoder.encode(scene_rgb, scene_masks[:0], mirror=True).shape == (0, 32)
