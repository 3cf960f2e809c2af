"""Coherence map of spec §8: GEM (Bousselham et al., CVPR 2024) on the project's own CLIP ViT.

GEM runs a second, attention-only token stream beside the unchanged ViT. From the input of
``start_block`` on, every block adds a "self-self attention" update to it, computed from the
normal stream's ``ln_1`` tokens with the block's own in/out projections; there is no MLP in
the GEM stream. Its patch tokens, after ``ln_post`` and ``proj``, live in CLIP's joint space, so
their cosine with a text feature gives a patch-level map of where the phrase is.

The image half (:func:`gem_image_tokens`) does not depend on the text and is cached per frame;
:func:`coherence_map` is the cheap per-query half. Nothing here modifies the model.
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hybridgl_ros.core.config import GemConfig
from hybridgl_ros.core.errors import ConfigError, InvalidInputError

#: A map whose value span is at most this many float32 epsilons of its magnitude is constant.
_FLAT_SPAN_EPS = 4.0


def gem_image_tokens(visual: nn.Module, image_rgb: np.ndarray, config: GemConfig,
                     start_block: int, autocast_dtype: torch.dtype | None = None
                     ) -> tuple[torch.Tensor, tuple[int, int]]:
    """GEM patch tokens of one image (spec §8, steps 1-3 up to the text).

    Args:
        visual: an open_clip ``VisionTransformer`` (``model.visual``), on its device.
        image_rgb: (H, W, 3) uint8 RGB image.
        config: the GEM configuration (input scale, CLIP mean/std).
        start_block: 0-based block whose input starts the GEM stream (6 of ViT-B/16's 12).
        autocast_dtype: torch.float16/bfloat16 to run under autocast, None for fp32.

    Returns:
        (P, D) float32 L2-normalised patch tokens in row-major grid order (P = rows·cols,
        D = the model's embedding width) on the model's device, and the grid (rows, cols):
        (28, 28) for ViT-B/16 at input_scale 2.

    Raises:
        InvalidInputError: the image is not (H, W, 3) uint8.
        ConfigError: start_block or input_scale out of range, or a model GEM cannot run on.
    """
    blocks = _checked_blocks(visual, start_block)
    if config.input_scale < 1:
        raise ConfigError(f'gem.input_scale must be >= 1, not {config.input_scale}')
    input_hw = tuple(config.input_scale * int(side) for side in _pair(visual.image_size))
    device = visual.conv1.weight.device
    pixels = preprocess_image(image_rgb, input_hw, config.image_mean, config.image_std, device)
    autocast = (torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype is not None
                else contextlib.nullcontext())
    with torch.no_grad(), autocast:
        tokens, grid = _embed(visual, pixels)  # (1, 1 + P, C)
        gem = _gem_stream(blocks, tokens, start_block, blocks[0].attn.batch_first)
        patches = visual.ln_post(gem[0, 1:])  # (P, C)
        if visual.proj is not None:
            patches = patches @ visual.proj  # (P, D)
    return F.normalize(patches.float(), dim=-1), grid


def coherence_map(tokens: torch.Tensor, grid: tuple[int, int], text_feature: torch.Tensor,
                  input_side: int, image_hw: tuple[int, int]) -> torch.Tensor:
    """Coherence map of a phrase over the image (spec §8, step 3).

    ``resize_coherence_map(coherence_input_map(...), image_hw)``.

    Returns:
        (H, W) float32 on the tokens' device, in [0, 1]; see :func:`resize_coherence_map`.
    """
    return resize_coherence_map(coherence_input_map(tokens, grid, text_feature, input_side),
                                image_hw)


def coherence_input_map(tokens: torch.Tensor, grid: tuple[int, int],
                        text_feature: torch.Tensor, input_side: int) -> torch.Tensor:
    """The coherence map at GEM's input side: patch cosines, bilinear up, min-max.

    Args:
        tokens: (P, D) GEM patch tokens from :func:`gem_image_tokens`.
        grid: (rows, cols) of the tokens, rows·cols = P.
        text_feature: (D,) or (1, D) CLIP text feature of "a photo of a {NP}." (any norm).
        input_side: GEM input side in pixels (448 for ViT-B/16).

    Returns:
        (input_side, input_side) float32 on the tokens' device, min-max normalised to [0, 1].
        A map without contrast (e.g. a zero text feature) is all ones, never NaN.
    """
    rows, cols = (int(v) for v in grid)
    if tokens.ndim != 2 or tokens.shape[0] != rows * cols:
        raise InvalidInputError(f'GEM tokens {tuple(tokens.shape)} do not fit grid {grid}')
    text = text_feature.reshape(-1).to(device=tokens.device, dtype=torch.float32)
    if text.shape[0] != tokens.shape[1]:
        raise InvalidInputError(
            f'text feature has {text.shape[0]} values, GEM tokens have {tokens.shape[1]}')
    cosine = F.normalize(tokens.float(), dim=-1) @ F.normalize(text, dim=0)  # (P,)
    scores = F.interpolate(cosine.reshape(1, 1, rows, cols), size=(input_side, input_side),
                           mode='bilinear', align_corners=False)
    return min_max(scores)[0, 0]


def resize_coherence_map(input_map: torch.Tensor, image_hw: tuple[int, int]) -> torch.Tensor:
    """The input-side map at the image's size: antialiased bilinear resize, then min-max.

    Antialiased as in the reference: it matters when a side of the image is below the GEM
    input side (500x375 COCO images) and changes nothing when upsampling.

    Args:
        input_map: (side, side) float32 from :func:`coherence_input_map`.
        image_hw: (H, W) of the source image.

    Returns:
        (H, W) float32 in [0, 1] (all ones without contrast).
    """
    scores = F.interpolate(input_map[None, None], size=tuple(image_hw), mode='bilinear',
                           align_corners=False, antialias=True)
    return min_max(scores)[0, 0]


def min_max(values: torch.Tensor) -> torch.Tensor:
    """Rescales to [0, 1] (min to 0, max to 1); a constant tensor becomes all ones.

    Args:
        values: float tensor of any shape.

    Returns:
        Tensor of the same shape and dtype.
    """
    low, high = values.amin(), values.amax()
    span = high - low
    scale = torch.maximum(high.abs(), low.abs()).clamp_min(1.0)
    flat = span <= _FLAT_SPAN_EPS * torch.finfo(values.dtype).eps * scale
    scaled = (values - low) / torch.where(flat, torch.ones_like(span), span)
    return torch.where(flat, torch.ones_like(values), scaled.clamp(0.0, 1.0))


def preprocess_image(image_rgb: np.ndarray, input_hw: tuple[int, int],
                     mean: tuple[float, ...], std: tuple[float, ...],
                     device: torch.device | str = 'cpu') -> torch.Tensor:
    """GEM's input image: bicubic antialiased resize, [0, 1], CLIP mean/std.

    The resize is PIL's 8-bit bicubic (antialiased, a = -0.5, rounded to uint8), i.e. what
    torchvision's ``Resize`` does to a PIL image in GEM's own transform. Aspect is not kept.

    Args:
        image_rgb: (H, W, 3) uint8 RGB image.
        input_hw: (height, width) of the GEM input in pixels, e.g. (448, 448).
        mean: per-channel mean of the [0, 1] image.
        std: per-channel standard deviation.
        device: where the result lives.

    Returns:
        (1, 3, height, width) float32 tensor.
    """
    from PIL import Image

    if (not isinstance(image_rgb, np.ndarray) or image_rgb.dtype != np.uint8
            or image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or min(image_rgb.shape[:2]) < 1):
        shape = getattr(image_rgb, 'shape', None)
        dtype = getattr(image_rgb, 'dtype', type(image_rgb).__name__)
        raise InvalidInputError(f'GEM needs an (H, W, 3) uint8 RGB image, got {shape} {dtype}')
    height, width = (int(v) for v in input_hw)
    if image_rgb.shape[:2] != (height, width):
        resized = Image.fromarray(np.ascontiguousarray(image_rgb)).resize(
            (width, height), Image.Resampling.BICUBIC)
        image_rgb = np.asarray(resized)
    image = torch.from_numpy(np.array(image_rgb, copy=True)).to(device)
    image = image.permute(2, 0, 1)[None].float() / 255.0  # (1, 3, height, width)
    mean_t = torch.tensor(mean, dtype=torch.float32, device=image.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, dtype=torch.float32, device=image.device).view(1, 3, 1, 1)
    return (image - mean_t) / std_t


def resample_positional_embedding(positional: torch.Tensor, old_grid: tuple[int, int],
                                  new_grid: tuple[int, int]) -> torch.Tensor:
    """Positional embedding of a ViT for another token grid (bicubic, antialiased).

    Args:
        positional: (1 + rows·cols, C) embedding, class token first.
        old_grid: (rows, cols) the embedding was trained for, e.g. (14, 14).
        new_grid: (rows, cols) wanted, e.g. (28, 28).

    Returns:
        (1 + new_rows·new_cols, C) tensor of the input's dtype; the class row is unchanged.
    """
    if tuple(old_grid) == tuple(new_grid):
        return positional
    width = positional.shape[-1]
    patches = positional[1:].float().reshape(1, *old_grid, width).permute(0, 3, 1, 2)
    patches = F.interpolate(patches, size=tuple(new_grid), mode='bicubic', align_corners=False,
                            antialias=True)  # (1, C, new_rows, new_cols)
    patches = patches.permute(0, 2, 3, 1).reshape(-1, width).to(positional.dtype)
    return torch.cat([positional[:1], patches])


def self_self_attention(x: torch.Tensor, attn: nn.MultiheadAttention,
                        refine_steps: int = 1) -> torch.Tensor:
    """GEM's self-self attention of one block (spec §8, step 2).

    q, k and v come from ``x`` through the block's in-projection and are L2-normalised per
    head. Each is refined ``refine_steps`` times by z <- normalise(softmax(τ z zᵀ) z), with the
    adaptive inverse temperature τ = mean over tokens of ‖x_t‖₂ (the full-width norm of the
    block's ``ln_1`` tokens) × head_dim^-0.5. The three maps softmax(τ ẑ ẑᵀ) are applied to
    the raw v, averaged, heads merged and passed through the out-projection.

    Args:
        x: (B, N, C) tokens, the block's ``ln_1`` applied to the normal stream's input.
        attn: the block's ``nn.MultiheadAttention`` (packed in-projection); not modified.
        refine_steps: refinement iterations (GEM's default, and the spec's: 1).

    Returns:
        (B, N, C) update to add to the GEM stream (before the block's layer scale).
    """
    batch, count, width = x.shape
    heads = attn.num_heads
    head_dim = width // heads
    qkv = F.linear(x, attn.in_proj_weight, attn.in_proj_bias)  # (B, N, 3C)
    q, k, v = qkv.reshape(batch, count, 3, heads, head_dim).permute(2, 0, 3, 1, 4)
    # (B, 1, 1, 1): one temperature per image, shared by heads and maps
    tau = x.float().norm(dim=-1).mean(dim=-1).view(batch, 1, 1, 1) * head_dim ** -0.5
    mixed = sum(_self_attend(_refine(z, tau, refine_steps), tau) @ v for z in (q, k, v)) / 3
    mixed = mixed.transpose(1, 2).reshape(batch, count, width)  # (B, N, C), heads merged
    return attn.out_proj(mixed)


def _self_attend(z: torch.Tensor, tau: torch.Tensor) -> torch.Tensor:
    """softmax(τ z zᵀ) over the last axis: (B, h, N, d) unit rows -> (B, h, N, N)."""
    return torch.softmax(tau * (z @ z.transpose(-2, -1)), dim=-1)


def _refine(z: torch.Tensor, tau: torch.Tensor, steps: int) -> torch.Tensor:
    """Normalised z after ``steps`` self-self attention smoothings: (B, h, N, d)."""
    z = F.normalize(z, dim=-1)
    for _ in range(steps):
        z = F.normalize(_self_attend(z, tau) @ z, dim=-1)
    return z


def _gem_stream(blocks: nn.ModuleList, x: torch.Tensor, start_block: int,
                batch_first: bool) -> torch.Tensor:
    """Runs the normal stream and, from ``start_block``'s input on, the GEM stream.

    Args:
        blocks: the ViT's residual attention blocks.
        x: (1, 1 + P, C) tokens after ``ln_pre`` (batch first).
        start_block: first block with a GEM update.
        batch_first: whether the blocks take (B, N, C) (open_clip 3.x) or (N, B, C) (2.24).

    Returns:
        (1, 1 + P, C) GEM stream after the last block.
    """
    for block in blocks[:start_block]:
        x = _run_block(block, x, batch_first)
    gem = x
    for index in range(start_block, len(blocks)):
        block = blocks[index]
        gem = gem + block.ls_1(self_self_attention(block.ln_1(x), block.attn))
        if index < len(blocks) - 1:  # the normal stream's last output is not needed
            x = _run_block(block, x, batch_first)
    return gem


def _run_block(block: nn.Module, x: torch.Tensor, batch_first: bool) -> torch.Tensor:
    """One unchanged block of the normal stream on (B, N, C) tokens."""
    return block(x) if batch_first else block(x.transpose(0, 1)).transpose(0, 1)


def _embed(visual: nn.Module, pixels: torch.Tensor) -> tuple[torch.Tensor, tuple[int, int]]:
    """Patch embedding, class token, resampled positional embedding, ``ln_pre``.

    Args:
        visual: the open_clip ``VisionTransformer``.
        pixels: (1, 3, height, width) normalised image.

    Returns:
        (1, 1 + rows·cols, C) tokens and the grid (rows, cols).
    """
    x = visual.conv1(pixels.to(visual.conv1.weight.dtype))  # (1, C, rows, cols)
    grid = (int(x.shape[-2]), int(x.shape[-1]))
    x = x.flatten(2).transpose(1, 2)  # (1, P, C)
    cls = visual.class_embedding.to(x.dtype).view(1, 1, -1)
    positional = resample_positional_embedding(visual.positional_embedding,
                                               _pair(visual.grid_size), grid)
    x = torch.cat([cls, x], dim=1) + positional.to(x.dtype)
    return visual.ln_pre(visual.patch_dropout(x)), grid


def _checked_blocks(visual: nn.Module, start_block: int) -> nn.ModuleList:
    """The ViT's blocks, after checking that GEM can run on them from ``start_block``."""
    blocks = visual.transformer.resblocks
    if not 0 <= start_block < len(blocks):
        raise ConfigError(f'GEM start block {start_block} is outside 0..{len(blocks) - 1}')
    for block in blocks:
        attn = getattr(block, 'attn', None)
        if not (isinstance(attn, nn.MultiheadAttention) and attn._qkv_same_embed_dim):
            raise ConfigError('GEM needs blocks with a packed nn.MultiheadAttention as attn '
                              f'(open_clip ResidualAttentionBlock), got {type(block).__name__}')
    if getattr(visual, 'attn_pool', None) is not None:
        raise ConfigError('GEM needs a ViT without attentional pooling')
    return blocks


def _pair(value) -> tuple[int, int]:
    """(a, b) from an int or a pair."""
    if isinstance(value, (tuple, list)):
        return int(value[0]), int(value[1])
    return int(value), int(value)
