"""SAM's image encoder with its global attention computed a few query rows at a time.

SAM's ViT runs most blocks on 14×14 windows, but a few (4 in vit_b, vit_l and vit_h) attend
globally over the 64×64 token grid: segment_anything materialises the full (heads, 4096, 4096)
float32 score matrix there, and its relative-position sum and its softmax as two more of the
same size: 0.8 GB each for vit_b, 1.07 GB for vit_h, about 3 GB at the peak. The same
arithmetic done for a band of query rows at a time needs a fraction of that; each row's
scores, relative-position terms and softmax are computed exactly as before (the result is
bit-identical in float32 on the CPU, a test checks it), so SAM's masks do not change.
"""
from __future__ import annotations

import contextlib
import types
from typing import Iterator

import torch
import torch.nn.functional as F

#: Attention scores held at once per global block: 2**24 floats = 64 MiB in float32.
SCORE_BUDGET = 2 ** 24


@contextlib.contextmanager
def banded_global_attention(image_encoder, score_budget: int = SCORE_BUDGET,
                            fused: bool = False) -> Iterator[None]:
    """Within the block, the encoder's attention is computed in bands of query rows.

    Args:
        image_encoder: a segment_anything ``ImageEncoderViT``; restored on exit.
        score_budget: attention scores per band (heads × band queries × keys).
        fused: for reduced precision: every block (windowed ones too) runs
            ``F.scaled_dot_product_attention`` with the relative positions as its additive
            mask, which never materialises the scores or their float32 softmax. Without it
            only the global blocks change, bit-identically.
    """
    patched = [block.attn for block in getattr(image_encoder, 'blocks', [])
               if hasattr(block.attn, 'qkv') and (fused or getattr(block, 'window_size', 0) == 0)]
    forward = fused_attention if fused else banded_attention
    for attn in patched:
        attn.forward = types.MethodType(
            lambda module, x: forward(module, x, score_budget), attn)
    try:
        yield
    finally:
        for attn in patched:
            del attn.forward


def banded_attention(attn, x: torch.Tensor, score_budget: int = SCORE_BUDGET) -> torch.Tensor:
    """segment_anything's ``Attention.forward`` a band of query rows of the grid at a time.

    Args:
        attn: the block's ``Attention`` (qkv, proj, scale, num_heads, optional rel_pos_h/w).
        x: (B, H, W, C) tokens.
        score_budget: scores computed at once.

    Returns:
        (B, H, W, C), as ``attn(x)``.
    """
    batch, height, width, _ = x.shape
    heads = attn.num_heads
    qkv = attn.qkv(x).reshape(batch, height * width, 3, heads, -1).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.reshape(3, batch * heads, height * width, -1).unbind(0)  # (B·heads, HW, d)
    rows = max(1, score_budget // (q.shape[0] * width * q.shape[1]))
    rel_h, rel_w = _relative_embeddings(attn, height, width)
    keys_t = k.transpose(-2, -1)
    bands = []
    for top in range(0, height, rows):
        bottom = min(height, top + rows)
        q_band = q[:, top * width:bottom * width]              # (B·heads, band·W, d)
        scores = (q_band * attn.scale) @ keys_t                # (B·heads, band·W, HW)
        if rel_h is not None:
            scores = _add_relative_positions(scores, q_band, rel_h[top:bottom], rel_w,
                                             (height, width))
        bands.append(scores.softmax(dim=-1) @ v)
    out = torch.cat(bands, dim=1).view(batch, heads, height, width, -1)
    return attn.proj(out.permute(0, 2, 3, 1, 4).reshape(batch, height, width, -1))


def fused_attention(attn, x: torch.Tensor, score_budget: int = SCORE_BUDGET) -> torch.Tensor:
    """SAM's attention with ``F.scaled_dot_product_attention``, a band of query rows at a time.

    The same function as ``Attention.forward`` (softmax(q·kᵀ·scale + relative positions)·v),
    computed by a fused kernel: equal to float rounding in float32, much faster under
    bfloat16 autocast, where SAM's own code spends most of its time adding the relative
    positions to, and casting, score tensors.

    Args:
        attn: the block's ``Attention``.
        x: (B, H, W, C) tokens (windows for windowed blocks).
        score_budget: scores (their additive mask) computed at once.

    Returns:
        (B, H, W, C), as ``attn(x)``.
    """
    batch, height, width, _ = x.shape
    heads = attn.num_heads
    qkv = attn.qkv(x).reshape(batch, height * width, 3, heads, -1).permute(2, 0, 3, 1, 4)
    q, k, v = qkv.unbind(0)                                    # (B, heads, HW, d)
    rows = max(1, score_budget // (batch * heads * width * height * width))
    rel_h, rel_w = _relative_embeddings(attn, height, width)
    bands = []
    for top in range(0, height, rows):
        bottom = min(height, top + rows)
        q_band = q[:, :, top * width:bottom * width]           # (B, heads, band·W, d)
        bias = None
        if rel_h is not None:
            term_h, term_w = _relative_terms(q_band.reshape(batch * heads, -1, q_band.shape[-1]),
                                             rel_h[top:bottom], rel_w, width)
            bias = (term_h[:, :, :, :, None] + term_w[:, :, :, None, :]).reshape(
                batch, heads, -1, height * width).to(q_band.dtype)   # (B, heads, band·W, HW)
        bands.append(F.scaled_dot_product_attention(q_band, k, v, attn_mask=bias,
                                                    scale=attn.scale))
    out = torch.cat(bands, dim=2).transpose(1, 2)              # (B, HW, heads, d)
    return attn.proj(out.reshape(batch, height, width, -1))


def _add_relative_positions(scores: torch.Tensor, q_band: torch.Tensor, rel_h: torch.Tensor,
                            rel_w: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """SAM's decomposed relative-position terms for a band of query rows.

    Args:
        scores: (B·heads, band·W, H·W).
        q_band: (B·heads, band·W, d) the band's queries.
        rel_h: (band, H, d) the band rows' height embeddings; rel_w: (W, W, d).
        grid: (H, W) of the keys.
    """
    height, width = grid
    band = rel_h.shape[0]
    term_h, term_w = _relative_terms(q_band, rel_h, rel_w, width)
    scores = (scores.view(-1, band, width, height, width) + term_h[:, :, :, :, None]
              + term_w[:, :, :, None, :])
    return scores.view(-1, band * width, height * width)


def _relative_embeddings(attn, height: int, width: int):
    """(rel_h (H, H, d), rel_w (W, W, d)) of an ``Attention`` on an H×W grid, or (None, None)
    without relative positions."""
    if not attn.use_rel_pos:
        return None, None
    from segment_anything.modeling.image_encoder import get_rel_pos

    return (get_rel_pos(height, height, attn.rel_pos_h),
            get_rel_pos(width, width, attn.rel_pos_w))


def _relative_terms(q_band: torch.Tensor, rel_h: torch.Tensor, rel_w: torch.Tensor,
                    width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """SAM's decomposed relative-position terms of a band of query rows.

    Args:
        q_band: (N, band·W, d) the band's queries (N = batch · heads).
        rel_h: (band, H, d) the band rows' height embeddings; rel_w: (W, W, d).
        width: W of the grid.

    Returns:
        (N, band, W, H) height terms and (N, band, W, W) width terms.
    """
    r_q = q_band.reshape(q_band.shape[0], rel_h.shape[0], width, -1)
    return (torch.einsum('bhwc,hkc->bhwk', r_q, rel_h),
            torch.einsum('bhwc,wkc->bhwk', r_q, rel_w))
