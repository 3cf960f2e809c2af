"""Hybrid global-local mask features (spec §4): one CLIP ViT pass per chunk of masks.

Reading of spec §4.3 used here: blocks 0..fusion_start−1 are the plain blocks for both streams
("run on local and global images alike"), so the global stream gets its CLS attention mask only
in the blocks from ``fusion_start`` on, where the spec writes ``B^mask``. The paper says the same
(§3.1: the attention mask acts "in the last layers"; Table 3: every mask strategy "is applied to
the last few layers"). The G ablation therefore is: blurred global image, plain blocks up to
``fusion_start``, masked blocks after, no fusion. Per mode, from ``fusion_start`` on
(w = fusion_weight, Ĝ = [CLS(G); m ⊙ patches(G)], B^m = block with the CLS attention mask):

* G2L:  L ← B(L + w·Ĝ), G ← B^m(G);                 v = head(L)
* L2G:  L ← B(L), G ← B^m(L + w·G);                 v = head(G)
* G2L+L2G: L ← B(L), G ← B^m(G), HL ← B(HL + w·Ĝ), HG ← B^m(L + w·HG), with HL, HG
  starting as L, G;  v = head(HL) + head(HG)
* L:    L ← B(L);  v = head(L)        G: G ← B^m(G);  v = head(G)
* G+L:  L ← B(L), G ← B^m(G);  v = g_plus_l_weight·head(G) + (1 − g_plus_l_weight)·head(L)

with head(X) = ln_post(CLS(X))·proj, not normalised. A stream whose output nobody reads is not
run in the last block, and the last block computes the CLS token only (its patch tokens are never
read). All streams of one block run batched: the unmasked ones in one call, the masked ones in
another (so only those pay for a per-sample attention mask).

The blocks run through ``block_forward``: the maths of open_clip's ``ResidualAttentionBlock``
with the attention done by ``F.scaled_dot_product_attention``. On CPU, ``nn.MultiheadAttention``
in inference takes its "fast path", which computes attention with plain bmm + softmax and is
slower than SDPA's fused kernel; SDPA also broadcasts one boolean mask over the heads.
"""
from __future__ import annotations

import contextlib
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hybridgl_ros.core.cancel import CancelToken
from hybridgl_ros.core.cancel import check as check_cancel
from hybridgl_ros.core.config import FEATURE_MODES, FeatureConfig
from hybridgl_ros.core.errors import ConfigError, InvalidInputError, ModelLoadError
from hybridgl_ros.core.mask_images import MaskInputBuilder, MaskInputs, cls_attention_mask


Streams = dict[str, torch.Tensor]
#: One update of a fusion block: (target stream, input tokens, with the CLS attention mask).
Update = tuple[str, torch.Tensor, bool]

#: Streams each mode reads its feature from.
_READOUT = {'G2L': ('L',), 'L2G': ('G',), 'G2L+L2G': ('HL', 'HG'), 'L': ('L',), 'G': ('G',),
            'G+L': ('L', 'G')}


def _fusion_updates(mode: str, s: Streams, g_hat: Callable[[], torch.Tensor], w: float
                    ) -> list[Update]:
    """The block inputs of every stream for one fusion block (spec §4.3), before the block."""
    if mode == 'G2L':
        return [('L', s['L'] + w * g_hat(), False), ('G', s['G'], True)]
    if mode == 'L2G':
        return [('L', s['L'], False), ('G', s['L'] + w * s['G'], True)]
    if mode == 'G2L+L2G':
        return [('L', s['L'], False), ('G', s['G'], True),
                ('HL', s['HL'] + w * g_hat(), False), ('HG', s['L'] + w * s['HG'], True)]
    return [(name, s[name], name == 'G') for name in ('L', 'G') if name in s]


def block_forward(block: nn.Module, x: torch.Tensor, attn_mask: torch.Tensor | None = None,
                  cls_only: bool = False) -> torch.Tensor:
    """One open_clip ``ResidualAttentionBlock`` (pre-norm, self-attention, MLP, layer scales).

    Args:
        block: the block; its ``attn`` is an ``nn.MultiheadAttention`` with packed in-projection.
        x: (B, L, width) batch-first tokens, CLS first.
        attn_mask: None, or (B, 1, L, L) bool, True = may attend (see ``cls_attention_mask``).
        cls_only: compute the CLS token's output only.

    Returns:
        (B, L, width), or (B, 1, width) with ``cls_only``.
    """
    h = block.ln_1(x)
    if cls_only:
        x = x[:, :1]
        attn_mask = None if attn_mask is None else attn_mask[:, :, :1]
    x = x + block.ls_1(_self_attention(block.attn, h, attn_mask, x.shape[1]))
    return x + block.ls_2(block.mlp(block.ln_2(x)))


def _self_attention(attn: nn.MultiheadAttention, h: torch.Tensor,
                    attn_mask: torch.Tensor | None, queries: int) -> torch.Tensor:
    """Multi-head self-attention of the first ``queries`` tokens of h (B, L, width) over all."""
    width, heads = h.shape[-1], attn.num_heads
    weight, bias = attn.in_proj_weight, attn.in_proj_bias
    q = F.linear(h[:, :queries], weight[:width], None if bias is None else bias[:width])
    kv = F.linear(h, weight[width:], None if bias is None else bias[width:])
    q = q.unflatten(-1, (heads, -1)).transpose(1, 2)              # (B, heads, Q, head_dim)
    k, v = kv.unflatten(-1, (2, heads, -1)).permute(2, 0, 3, 1, 4)   # (B, heads, L, head_dim)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
    return attn.out_proj(out.transpose(1, 2).flatten(2))          # (B, Q, width)


class HybridEncoder:
    """Hybrid global-local features of masks (spec §4) on an open_clip ``VisionTransformer``.

    Args:
        visual: ``model.visual`` of an open_clip CLIP, already on ``device``, in eval mode.
        config: the feature config (mode, fusion weight, image statistics, chunk size).
        fusion_start: first fusion block, 0-based (9 for ViT-B/16).
        device: where the tensors go.
        autocast_dtype: run the ViT under ``torch.autocast`` with this dtype; None = fp32.
    """

    def __init__(self, visual: nn.Module, config: FeatureConfig, fusion_start: int,
                 device: torch.device | str, autocast_dtype: torch.dtype | None = None):
        _check_visual(visual)
        if config.mode not in FEATURE_MODES:
            raise ConfigError(f'features.mode must be one of {FEATURE_MODES}, not {config.mode!r}')
        self.blocks = list(visual.transformer.resblocks)
        if not 0 <= fusion_start <= len(self.blocks):
            raise ConfigError(f'fusion_start {fusion_start} is outside 0..{len(self.blocks)}')
        self.visual = visual
        self.config = config
        self.fusion_start = int(fusion_start)
        self.device = torch.device(device)
        self.autocast_dtype = autocast_dtype
        self.input_hw = _pair(visual.image_size)
        self.grid_hw = _pair(visual.grid_size)
        proj = getattr(visual, 'proj', None)
        self.dim = int(proj.shape[1]) if proj is not None else int(visual.class_embedding.shape[0])

    @property
    def needs_local(self) -> bool:
        return self.config.mode != 'G'

    @property
    def needs_global(self) -> bool:
        return self.config.mode != 'L'

    def encode(self, image_rgb: np.ndarray, masks: np.ndarray,
               cancel: CancelToken | None = None, zoom_context: float = 0.0,
               mirror: bool = False) -> torch.Tensor:
        """Features v_n of the masks of one image.

        Args:
            image_rgb: (H, W, 3) uint8 RGB.
            masks: (N, H, W) bool.
            cancel: checked before each chunk of ``mask_batch_size`` masks (raises
                :class:`~hybridgl_ros.core.cancel.Cancelled` once set).
            zoom_context: > 0: the default mode's feature, the sum of the normalised features
                on the whole image and on each mask's window (:meth:`zoomed_features`), the
                image normalised and blurred once for both; 0: the spec's.
            mirror: the default mode's two views: the sum of this feature on the image and on
                its mirror image (image and masks flipped left to right); False: the spec's.

        Returns:
            (N, D) float32 on the device, not normalised; (0, D) when N = 0.
        """
        masks = _check_inputs(image_rgb, masks)
        if masks.shape[0] == 0:
            return self._no_features()
        with torch.no_grad():
            features = self._one_view(image_rgb, masks, cancel, zoom_context)
            if mirror:
                features = features + self._one_view(
                    np.ascontiguousarray(image_rgb[:, ::-1]),
                    np.ascontiguousarray(masks[:, :, ::-1]), cancel, zoom_context)
        return features

    def _one_view(self, image_rgb: np.ndarray, masks: np.ndarray, cancel: CancelToken | None,
                  zoom_context: float) -> torch.Tensor:
        """:meth:`encode`'s feature of the masks on one view of the image (no mirror)."""
        builder = self.input_builder(image_rgb)
        features = self._chunked(masks, cancel, lambda chunk: builder.build(self._upload(chunk)))
        if zoom_context > 0:
            zoomed = self.zoomed_features(builder, masks, zoom_context, cancel)
            features = F.normalize(features, dim=-1) + F.normalize(zoomed, dim=-1)
        return features

    def zoomed_features(self, builder: MaskInputBuilder, masks: np.ndarray, context: float,
                        cancel: CancelToken | None = None) -> torch.Tensor:
        """Features of the masks, each on its own square window of the builder's image (the
        default mode's zoomed look, :func:`~hybridgl_ros.core.mask_images.zoom_window`): the
        same hybrid feature, with the window in place of the whole image (the global image
        blurred outside the mask as the whole image is: ``MaskInputBuilder.window``).

        Args:
            builder: :meth:`input_builder` of the image.
            masks: (N, H, W) bool (an empty one is encoded on the whole image).
            context: the window's margin around each mask's box, in box sides.
            cancel: checked before each chunk of ``mask_batch_size`` masks.

        Returns:
            (N, D) float32 on the device, not normalised; (0, D) when N = 0.
        """
        with torch.no_grad():
            return self._chunked(masks, cancel, lambda chunk: builder.zoomed(chunk, context))

    def _chunked(self, masks: np.ndarray, cancel: CancelToken | None,
                 inputs_of: Callable[[np.ndarray], MaskInputs]) -> torch.Tensor:
        """(N, D) features of the masks, ``mask_batch_size`` at a time: ``inputs_of(chunk)``
        prepares a chunk's network inputs; ``cancel`` is checked before each."""
        if masks.shape[0] == 0:
            return self._no_features()
        step = self.config.mask_batch_size
        features = []
        for i in range(0, masks.shape[0], step):
            check_cancel(cancel)
            features.append(self.encode_inputs(inputs_of(masks[i:i + step])))
        return torch.cat(features)

    def _no_features(self) -> torch.Tensor:
        return torch.zeros((0, self.dim), dtype=torch.float32, device=self.device)

    def input_builder(self, image_rgb: np.ndarray) -> MaskInputBuilder:
        """The per-image preparation (normalised image and blur, once) for this mode."""
        return MaskInputBuilder(image_rgb, self.config, self.input_hw, self.grid_hw, self.device,
                                self.needs_local, self.needs_global)

    def encode_inputs(self, inputs: MaskInputs) -> torch.Tensor:
        """(n, D) float32 features of one chunk of prepared masks."""
        with self._autocast():
            streams = self._trunk(inputs)
            masks: dict[int, torch.Tensor] = {}
            for index in range(self.fusion_start, len(self.blocks)):
                last = index == len(self.blocks) - 1
                streams = self._fusion_block(index, streams, inputs.token_mask, masks, last)
            return self._readout(streams).float()

    def _upload(self, masks: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(masks)).to(self.device)

    def _autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)

    def _embed(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, h, w) → (B, 1 + T, width): patch embedding, CLS, positions, ln_pre."""
        v = self.visual
        x = v.conv1(images).flatten(2).transpose(1, 2)   # (B, T, width)
        cls = v.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        x = torch.cat([cls, x], dim=1) + v.positional_embedding.to(x.dtype)
        return v.ln_pre(v.patch_dropout(x))

    def _trunk(self, inputs: MaskInputs) -> Streams:
        """Embedding and the plain blocks 0..fusion_start−1 on all images in one batch."""
        names = [name for name, image in (('L', inputs.local), ('G', inputs.global_))
                 if image is not None]
        images = [inputs.local if name == 'L' else inputs.global_ for name in names]
        x = self._embed(torch.cat(images))   # (len(names)·n, 1 + T, width)
        for index in range(self.fusion_start):
            x = block_forward(self.blocks[index], x)
        streams = dict(zip(names, x.chunk(len(names))))
        if self.config.mode == 'G2L+L2G':
            streams['HL'], streams['HG'] = streams['L'], streams['G']
        return streams

    def _fusion_block(self, index: int, streams: Streams, token_mask: torch.Tensor,
                      masks: dict[int, torch.Tensor], last: bool) -> Streams:
        """One block from fusion_start on: every live stream updated, batched by mask use."""
        def g_hat() -> torch.Tensor:
            g = streams['G']
            weights = torch.cat([token_mask.new_ones(token_mask.shape[0], 1), token_mask], 1)
            return g * weights[:, :, None].to(g.dtype)

        updates = _fusion_updates(self.config.mode, streams, g_hat, self.config.fusion_weight)
        if last:
            updates = [u for u in updates if u[0] in _READOUT[self.config.mode]]
        result: Streams = {}
        for masked in (False, True):
            group = [u for u in updates if u[2] == masked]
            if not group:
                continue
            attn_mask = self._cls_mask(token_mask, len(group), masks) if masked else None
            out = block_forward(self.blocks[index], torch.cat([u[1] for u in group]), attn_mask,
                                cls_only=last)
            result.update(zip([u[0] for u in group], out.chunk(len(group))))
        return result

    def _cls_mask(self, token_mask: torch.Tensor, copies: int, cache: dict[int, torch.Tensor]
                  ) -> torch.Tensor:
        """The CLS attention mask for ``copies`` stacked streams, built once per chunk."""
        if copies not in cache:
            cache[copies] = cls_attention_mask(token_mask).repeat(copies, 1, 1, 1)
        return cache[copies]

    def _head(self, x: torch.Tensor) -> torch.Tensor:
        """(n, 1 + T, width) → (n, D): ln_post(CLS)·proj."""
        pooled = self.visual.ln_post(x[:, 0])
        proj = getattr(self.visual, 'proj', None)
        return pooled @ proj if proj is not None else pooled

    def _readout(self, streams: Streams) -> torch.Tensor:
        mode = self.config.mode
        if mode == 'G+L':
            weight = self.config.g_plus_l_weight
            return weight * self._head(streams['G']) + (1.0 - weight) * self._head(streams['L'])
        return sum(self._head(streams[name]) for name in _READOUT[mode])


def _pair(value) -> tuple[int, int]:
    if isinstance(value, (tuple, list)):
        return int(value[0]), int(value[1])
    return int(value), int(value)


def _check_visual(visual: nn.Module) -> None:
    """Raises ModelLoadError unless ``visual`` is a class-token open_clip ViT."""
    needed = ('conv1', 'class_embedding', 'positional_embedding', 'ln_pre', 'transformer',
              'ln_post', 'image_size', 'grid_size')
    missing = [name for name in needed if not hasattr(visual, name)]
    if missing:
        raise ModelLoadError(f'the CLIP vision tower is not an open_clip VisionTransformer '
                             f'(missing {", ".join(missing)}); HybridGL needs a ViT')
    pooled_by_token = getattr(visual, 'pool_type', 'tok') == 'tok'
    if getattr(visual, 'attn_pool', None) is not None or not pooled_by_token:
        raise ModelLoadError('HybridGL needs a ViT pooled by its class token (no attentional or '
                             'average pooling)')
    for block in visual.transformer.resblocks:
        attn = getattr(block, 'attn', None)
        if not isinstance(attn, nn.MultiheadAttention) or attn.in_proj_weight is None:
            raise ModelLoadError('HybridGL needs open_clip ResidualAttentionBlocks '
                                 '(nn.MultiheadAttention with a packed in-projection)')


def _check_inputs(image_rgb: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Validates shapes; returns the masks as bool."""
    if image_rgb.ndim != 3 or image_rgb.shape[2] != 3 or image_rgb.dtype != np.uint8:
        raise InvalidInputError(f'image must be (H, W, 3) uint8, not {image_rgb.shape} '
                                f'{image_rgb.dtype}')
    if masks.ndim != 3 or masks.shape[1:] != image_rgb.shape[:2]:
        raise InvalidInputError(f'masks must be (N, {image_rgb.shape[0]}, {image_rgb.shape[1]}), '
                                f'not {masks.shape}')
    return masks if masks.dtype == np.bool_ else masks != 0
