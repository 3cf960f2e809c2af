"""GEM coherence map (spec §8) on the tiny 12-block open_clip model (real open_clip code)."""
import copy
import math

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hybridgl_ros.core.config import GemConfig
from hybridgl_ros.core.errors import ConfigError, InvalidInputError
from hybridgl_ros.core.gem import (
    coherence_map, gem_image_tokens, preprocess_image, resample_positional_embedding,
    self_self_attention)

START = 6  # round(0.5 * 12): what the pipeline passes for the default config
NATIVE = GemConfig(input_scale=1)  # 56 px, 14x14 tokens: the tiny model's own grid
GEM_SIDE = 112  # 2 x 56 at the default input_scale


def _scene(height=72, width=90):
    """(H, W, 3) uint8: grey gradient with a red square and a blue bar."""
    yy, xx = np.mgrid[0:height, 0:width]
    image = np.stack([60 + xx, 70 + yy, np.full_like(xx, 110)], axis=-1).astype(np.uint8)
    image[10:40, 8:38] = (220, 30, 30)
    image[50:62, 40:85] = (30, 40, 220)
    return image


@pytest.fixture(scope='module')
def scene_tokens(tiny_clip):
    """GEM tokens and grid of the module's scene at the default config."""
    return gem_image_tokens(tiny_clip.visual, _scene(), GemConfig(), START)


@pytest.fixture(scope='module')
def phrase_feature(tiny_clip):
    """(32,) text feature of a GEM prompt from the tiny model's real text tower."""
    with torch.no_grad():
        return tiny_clip.encode_text(open_clip.tokenize(['a photo of a red square.']))[0]


def test_tokens_cover_a_grid_twice_the_models_at_input_scale_two(scene_tokens):
    tokens, grid = scene_tokens
    assert grid == (28, 28)
    assert tokens.shape == (28 * 28, 32)


def test_tokens_are_unit_norm_float32(scene_tokens):
    tokens, _ = scene_tokens
    assert tokens.dtype == torch.float32
    assert torch.allclose(tokens.norm(dim=-1), torch.ones(len(tokens)), atol=1e-5)


def test_constant_image_gives_finite_tokens_and_map(tiny_clip, phrase_feature):
    image = np.full((40, 60, 3), 128, np.uint8)
    tokens, grid = gem_image_tokens(tiny_clip.visual, image, NATIVE, START)
    scores = coherence_map(tokens, grid, phrase_feature, 56, (40, 60))
    assert torch.isfinite(tokens).all()
    assert torch.isfinite(scores).all()


def test_coherence_map_is_image_sized_and_spans_zero_to_one(scene_tokens, phrase_feature):
    tokens, grid = scene_tokens
    scores = coherence_map(tokens, grid, phrase_feature, GEM_SIDE, (72, 90))
    assert scores.shape == (72, 90) and scores.dtype == torch.float32
    assert scores.min().item() == 0.0 and scores.max().item() == 1.0


def test_coherence_map_without_contrast_is_all_ones(scene_tokens):
    tokens, grid = scene_tokens
    scores = coherence_map(tokens, grid, torch.zeros(32), GEM_SIDE, (72, 90))
    assert torch.equal(scores, torch.ones(72, 90))


def test_coherence_map_puts_the_best_patch_where_it_lies():
    # 2 x 3 grid of orthogonal tokens; the text matches the top-right patch only
    tokens = torch.eye(6)
    text = torch.eye(6)[2] * 5.0
    scores = coherence_map(tokens, (2, 3), text, 12, (20, 30))
    assert scores[0, -1] == 1.0
    assert scores[:10, 20:].mean() > 0.5 > scores[:, :20].max()


def test_coherence_map_smaller_than_the_gem_input_is_resized_with_antialiasing():
    # 28x28 grid -> 56 px -> a 20x30 image: downsampling, where antialiasing matters (spec §8)
    generator = torch.Generator().manual_seed(3)
    tokens = torch.randn(28 * 28, 8, generator=generator)
    text = torch.randn(8, generator=generator)
    cosine = F.normalize(tokens, dim=-1) @ F.normalize(text, dim=0)
    side = F.interpolate(cosine.reshape(1, 1, 28, 28), size=(56, 56), mode='bilinear',
                         align_corners=False)
    side = (side - side.min()) / (side.max() - side.min())
    small = F.interpolate(side, size=(20, 30), mode='bilinear', align_corners=False,
                          antialias=True)[0, 0]
    expected = (small - small.min()) / (small.max() - small.min())
    torch.testing.assert_close(coherence_map(tokens, (28, 28), text, 56, (20, 30)), expected)


def test_gem_leaves_the_normal_stream_untouched(tiny_clip):
    visual = tiny_clip.visual
    pixels = preprocess_image(_scene(56, 56), (56, 56), NATIVE.image_mean, NATIVE.image_std)
    state = {name: value.clone() for name, value in visual.state_dict().items()}
    with torch.no_grad():
        before = visual(pixels)
        gem_image_tokens(visual, _scene(), NATIVE, START)
        after = visual(pixels)
    assert torch.equal(before, after)
    assert all(torch.equal(state[name], value) for name, value in visual.state_dict().items())


@pytest.mark.parametrize('start_block', [3, START])
def test_gem_stream_starts_at_the_input_of_start_block(tiny_clip, start_block):
    # Without attention outputs from start_block on, the GEM stream is exactly the normal
    # stream's input of start_block, which open_clip's own forward_intermediates gives.
    visual = copy.deepcopy(tiny_clip.visual)
    for block in visual.transformer.resblocks[start_block:]:
        nn.init.zeros_(block.attn.out_proj.weight)
        nn.init.zeros_(block.attn.out_proj.bias)
    image = _scene(56, 56)
    tokens, _ = gem_image_tokens(visual, image, NATIVE, start_block)
    pixels = preprocess_image(image, (56, 56), NATIVE.image_mean, NATIVE.image_std)
    with torch.no_grad():
        normal = visual.forward_intermediates(
            pixels, indices=[start_block - 1], output_fmt='NLC',
            intermediates_only=True)['image_intermediates'][0][0]  # (196, 64) patch tokens
        expected = F.normalize(visual.ln_post(normal) @ visual.proj, dim=-1)
    assert torch.allclose(tokens, expected, atol=1e-5)


def test_last_block_mlp_does_not_reach_gem_tokens(tiny_clip):
    visual = copy.deepcopy(tiny_clip.visual)
    image = _scene(56, 56)
    reference, _ = gem_image_tokens(visual, image, NATIVE, START)
    with torch.no_grad():
        visual.transformer.resblocks[-1].mlp.c_proj.weight.mul_(-7.0)
    tokens, _ = gem_image_tokens(visual, image, NATIVE, START)
    assert torch.equal(tokens, reference)


def test_self_self_attention_matches_a_hand_computation():
    # Two tokens, two heads of width 2; q = k = x and v = 2x; out-projection = identity.
    # Head 0: both tokens are (3, 4), so every map is uniform and the output is v = (6, 8).
    # Head 1: unit tokens e1, e2, tau = mean|x_t| / sqrt(2) = sqrt(26) / sqrt(2) = sqrt(13).
    #   softmax(tau·I) puts a = sigmoid(tau) on itself; refined rows (a, 1 - a), (1 - a, a)
    #   have cosine c = 2a(1 - a) / (a² + (1 - a)²); the final map keeps w = sigmoid(tau(1 - c))
    #   on itself and mixes the raw v rows (2, 0), (0, 2).
    attn = nn.MultiheadAttention(4, 2, batch_first=True)
    with torch.no_grad():
        attn.in_proj_weight.copy_(torch.cat([torch.eye(4), torch.eye(4), 2 * torch.eye(4)]))
        attn.in_proj_bias.zero_()
        attn.out_proj.weight.copy_(torch.eye(4))
        attn.out_proj.bias.zero_()
        x = torch.tensor([[[3.0, 4.0, 1.0, 0.0], [3.0, 4.0, 0.0, 1.0]]])
        update = self_self_attention(x, attn)
    tau = math.sqrt(13.0)
    a = 1.0 / (1.0 + math.exp(-tau))
    c = 2 * a * (1 - a) / (a * a + (1 - a) ** 2)
    w = 1.0 / (1.0 + math.exp(-tau * (1 - c)))
    expected = torch.tensor([[[6.0, 8.0, 2 * w, 2 - 2 * w], [6.0, 8.0, 2 - 2 * w, 2 * w]]])
    assert torch.allclose(update, expected, atol=1e-6)


def test_positional_resampling_keeps_the_class_row_and_constants():
    positional = torch.cat([torch.randn(1, 8), torch.full((14 * 14, 8), 0.25)])
    resampled = resample_positional_embedding(positional, (14, 14), (28, 28))
    assert resampled.shape == (1 + 28 * 28, 8)
    assert torch.equal(resampled[0], positional[0])
    assert torch.allclose(resampled[1:], torch.full((28 * 28, 8), 0.25), atol=1e-6)


def test_preprocess_resizes_and_uses_the_clip_statistics():
    config = GemConfig()
    pixels = preprocess_image(np.full((30, 50, 3), 200, np.uint8), (112, 112),
                              config.image_mean, config.image_std)
    expected = (200 / 255 - torch.tensor(config.image_mean)) / torch.tensor(config.image_std)
    assert pixels.shape == (1, 3, 112, 112)
    assert torch.allclose(pixels[0, :, 50, 70], expected.float(), atol=1e-6)


def test_bfloat16_autocast_stays_close_to_fp32(tiny_clip):
    image = _scene(56, 56)
    reference, _ = gem_image_tokens(tiny_clip.visual, image, NATIVE, START)
    tokens, _ = gem_image_tokens(tiny_clip.visual, image, NATIVE, START, torch.bfloat16)
    assert tokens.dtype == torch.float32
    assert (tokens - reference).abs().max() < 0.05


@pytest.mark.parametrize('image', [np.zeros((20, 20, 3), np.float32),
                                   np.zeros((20, 20), np.uint8),
                                   np.zeros((20, 20, 4), np.uint8)])
def test_rejects_an_image_that_is_not_uint8_rgb(tiny_clip, image):
    with pytest.raises(InvalidInputError):
        gem_image_tokens(tiny_clip.visual, image, GemConfig(), START)


@pytest.mark.parametrize('start_block', [-1, 12])
def test_rejects_a_start_block_outside_the_model(tiny_clip, start_block):
    with pytest.raises(ConfigError):
        gem_image_tokens(tiny_clip.visual, _scene(), GemConfig(), start_block)


def test_coherence_map_rejects_tokens_that_do_not_fit_the_grid():
    with pytest.raises(InvalidInputError):
        coherence_map(torch.randn(10, 4), (3, 3), torch.randn(4), 12, (8, 8))
