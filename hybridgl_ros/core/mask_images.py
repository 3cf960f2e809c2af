"""The per-mask inputs of the hybrid feature (spec §4.1, §4.2): images, token masks, CLS mask.

Every resize here is bilinear, ``align_corners=False``, without antialiasing, i.e. each output
pixel mixes the 2×2 source pixels around the source point ``(i + 0.5)·in/out − 0.5`` (clamped).
Because compositing a mask image is a per-pixel choice and normalisation is a per-channel affine
map, resizing the full-resolution composite equals compositing at the four source pixels of each
output pixel and mixing them afterwards. ``BilinearSampler`` does exactly that, so the (N, H, W)
composites are never built at full resolution: per mask only ``(2·side)²`` pixels are touched.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Sequence

import cv2
import numpy as np
import torch

from hybridgl_ros.core.config import FeatureConfig
from hybridgl_ros.core.geometry import mask_box_xywh


def _axis_taps(size_in: int, size_out: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Source indices (2, out) int64 and weights (2, out) float32 of one axis.

    The weights equal those of PyTorch's CPU kernel bit for bit: float32 scale, the source
    coordinate ``scale·(i + 0.5) − 0.5`` rounded once to float32 (a fused multiply-add there;
    exact in float64 here), the fraction taken in float32. A plain float64 formula moves the
    weights by ~1e-5.
    """
    scale = float(np.float32(size_in) / np.float32(size_out))
    dst = torch.arange(size_out, dtype=torch.float64)
    src = (scale * (dst + 0.5) - 0.5).float().clamp(min=0.0)
    first = src.floor().long().clamp(max=size_in - 1)
    second = (first + 1).clamp(max=size_in - 1)
    frac = src - first
    return torch.stack([first, second]), torch.stack([1.0 - frac, frac])


class BilinearSampler:
    """Bilinear resize (H, W) → (h, w) as a gather of the 2×2 taps and a weighted mix.

    ``resize(x)`` equals ``F.interpolate(x, (h, w), mode='bilinear', align_corners=False,
    antialias=False)`` on the last two axes; ``taps`` and ``mix`` split it so that a per-pixel
    operation (compositing) can run on the taps only.
    """

    def __init__(self, size_in: Sequence[int], size_out: Sequence[int],
                 device: torch.device | str = 'cpu'):
        rows, row_weights = _axis_taps(int(size_in[0]), int(size_out[0]))
        cols, col_weights = _axis_taps(int(size_in[1]), int(size_out[1]))
        self.size_out = (int(size_out[0]), int(size_out[1]))
        self._rows = rows.flatten().to(device)[:, None]   # (2h, 1): first taps, then second
        self._cols = cols.flatten().to(device)[None, :]   # (1, 2w)
        self._row_weights = row_weights.to(device)[:, :, None]   # (2, h, 1)
        self._col_weights = col_weights.to(device)                # (2, w)

    def taps(self, x: torch.Tensor) -> torch.Tensor:
        """(..., H, W) any dtype → (..., 2h, 2w): the source pixels of every output pixel."""
        return x[..., self._rows, self._cols]

    def mix(self, taps: torch.Tensor) -> torch.Tensor:
        """(..., 2h, 2w) float → (..., h, w): weighted sum of the four taps."""
        h, w = self.size_out
        cols = taps.unflatten(-1, (2, w))                             # (..., 2h, 2, w)
        rows = (cols * self._col_weights).sum(-2).unflatten(-2, (2, h))   # (..., 2, h, w)
        return (rows * self._row_weights).sum(-3)

    def resize(self, x: torch.Tensor) -> torch.Tensor:
        """(..., H, W) → (..., h, w) float32."""
        return self.mix(self.taps(x).float())


def normalize_image(image_rgb: np.ndarray, mean: Sequence[float], std: Sequence[float],
                    device: torch.device | str = 'cpu') -> torch.Tensor:
    """(H, W, 3) uint8 RGB → (3, H, W) float32: [0, 1], then (x − mean) / std per channel."""
    x = torch.from_numpy(np.ascontiguousarray(image_rgb)).to(device).permute(2, 0, 1)
    mean_t = torch.tensor(mean, dtype=torch.float32, device=device)[:, None, None]
    std_t = torch.tensor(std, dtype=torch.float32, device=device)[:, None, None]
    return (x.float() / 255.0 - mean_t) / std_t


def blur_image(image_rgb: np.ndarray, kernel_px: int, sigma_px: float) -> np.ndarray:
    """(H, W, 3) uint8 → (H, W, 3) uint8 Gaussian blur, border reflect-101 (OpenCV's default)."""
    return cv2.GaussianBlur(np.ascontiguousarray(image_rgb), (kernel_px, kernel_px), sigma_px,
                            borderType=cv2.BORDER_REFLECT_101)


def local_images(image: torch.Tensor, masks: torch.Tensor, fill: Sequence[float]) -> torch.Tensor:
    """L_n: the normalised image inside each mask, the constant ``fill`` outside.

    Args:
        image: (3, H, W) float32, normalised.
        masks: (n, H, W) bool.
        fill: 3 values in normalised space.

    Returns:
        (n, 3, H, W) float32.
    """
    fill_t = torch.tensor(fill, dtype=image.dtype, device=image.device)[:, None, None]
    return torch.where(masks[:, None], image, fill_t)


def global_images(image: torch.Tensor, blurred: torch.Tensor, masks: torch.Tensor
                  ) -> torch.Tensor:
    """G_n: the image inside each mask, its blur outside (both (3, H, W), normalised alike).

    Returns:
        (n, 3, H, W) float32.
    """
    return torch.where(masks[:, None], image, blurred)


def zoom_window(mask: np.ndarray, context: float) -> tuple[slice, slice]:
    """The square window of the zoomed look around a mask (default mode): its box's longer side
    plus ``context`` of it on each side, moved (not cut) to lie inside the picture, and no larger
    than the picture's shorter side, so the object keeps its aspect in the CLIP's square input.

    Args:
        mask: (H, W) bool.
        context: ≥ 0.

    Returns:
        (rows, columns) slices; the whole picture for an empty mask.
    """
    height, width = mask.shape
    x, y, w, h = mask_box_xywh(mask)
    if w == 0:
        return slice(0, height), slice(0, width)
    side = min(int(round(max(w, h) * (1.0 + 2.0 * context))), height, width)
    x0 = min(max(int(round(x + w / 2.0 - side / 2.0)), 0), width - side)
    y0 = min(max(int(round(y + h / 2.0 - side / 2.0)), 0), height - side)
    return slice(y0, y0 + side), slice(x0, x0 + side)


def token_masks(masks: torch.Tensor, grid_hw: Sequence[int]) -> torch.Tensor:
    """(n, H, W) bool → (n, gh·gw) float32 in [0, 1], row-major like the patch tokens.

    The float mask resized bilinearly to the token grid: the mask at each cell centre.
    """
    return BilinearSampler(masks.shape[-2:], grid_hw, masks.device).resize(masks).flatten(1)


def cls_attention_mask(token_mask: torch.Tensor) -> torch.Tensor:
    """Boolean attention mask that lets the CLS query see itself and the mask's tokens only.

    Row 0 (the CLS query) is False at patch tokens with m_t = 0; every other entry is True, so
    patch queries are unrestricted. CLS always sees itself: an empty mask gives no NaN. The same
    mask serves every head (``F.scaled_dot_product_attention`` broadcasts the head axis).

    Args:
        token_mask: (n, T) float.

    Returns:
        (n, 1, 1 + T, 1 + T) bool, True = may attend.
    """
    n, count = token_mask.shape
    allowed = torch.ones(n, 1, 1 + count, 1 + count, dtype=torch.bool, device=token_mask.device)
    allowed[:, 0, 0, 1:] = token_mask != 0
    return allowed


@dataclass(frozen=True)
class MaskInputs:
    """The network inputs of n masks. Images are (n, 3, side_h, side_w) float32, normalised;
    ``local`` or ``global_`` is None when the feature mode does not use it."""

    local: torch.Tensor | None
    global_: torch.Tensor | None
    token_mask: torch.Tensor
    """(n, T) float32 in [0, 1]."""

    def to(self, dtype: torch.dtype) -> MaskInputs:
        """The same inputs in ``dtype`` (a pool of them kept in float16, fed back as float32)."""
        def cast(tensor):
            return None if tensor is None else tensor.to(dtype)

        return MaskInputs(cast(self.local), cast(self.global_), self.token_mask.to(dtype))


def concat_inputs(parts: Sequence[MaskInputs]) -> MaskInputs:
    """One ``MaskInputs`` of the masks of several (all alike) along the batch axis."""
    def cat(tensors):
        return None if tensors[0] is None else torch.cat(tensors)

    return MaskInputs(cat([p.local for p in parts]), cat([p.global_ for p in parts]),
                      torch.cat([p.token_mask for p in parts]))


class MaskInputBuilder:
    """Per-image state (normalised image, blur) that turns chunks of masks into ``MaskInputs``.

    Args:
        image_rgb: (H, W, 3) uint8.
        config: the feature config (ImageNet statistics, fill, blur).
        input_hw: the ViT's input side (h, w) in pixels.
        grid_hw: the ViT's token grid (gh, gw).
        need_local, need_global: which images to build.
    """

    def __init__(self, image_rgb: np.ndarray, config: FeatureConfig, input_hw: Sequence[int],
                 grid_hw: Sequence[int], device: torch.device | str,
                 need_local: bool = True, need_global: bool = True):
        self._config = config
        self._need_local = need_local
        self._input_hw, self._grid_hw = input_hw, grid_hw
        self._image = normalize_image(image_rgb, config.image_mean, config.image_std, device)
        self._blurred = None
        if need_global:
            blurred = blur_image(image_rgb, config.blur_kernel_px, config.blur_sigma_px)
            self._blurred = normalize_image(blurred, config.image_mean, config.image_std, device)
        self._sample()

    def _sample(self) -> None:
        """The samplers of the image's size and the taps of the image and its blur."""
        size, device = self._image.shape[-2:], self._image.device
        self._sampler = BilinearSampler(size, self._input_hw, device)
        self._token_sampler = BilinearSampler(size, self._grid_hw, device)
        self._image_taps = self._sampler.taps(self._image)   # (3, 2h, 2w)
        self._blur_taps = None if self._blurred is None else self._sampler.taps(self._blurred)

    def window(self, rows: slice, columns: slice) -> MaskInputBuilder:
        """A builder for a window of the image (the zoomed look, :func:`zoom_window`): its
        pixels and the whole image's blur there, so the window's edges are not blurred as
        edges; nothing is normalised or blurred again. Its masks are (n, window h, window w).
        """
        window = copy.copy(self)
        window._image = self._image[:, rows, columns]
        if self._blurred is not None:
            window._blurred = self._blurred[:, rows, columns]
        window._sample()
        return window

    def zoomed(self, masks: np.ndarray, context: float) -> MaskInputs:
        """(n, H, W) bool → the n masks' inputs, each on its own :func:`zoom_window` of the
        image (the default mode's zoomed look)."""
        parts = []
        for mask in masks:
            rows, columns = zoom_window(mask, context)
            window_mask = torch.from_numpy(np.ascontiguousarray(mask[None, rows, columns]))
            parts.append(self.window(rows, columns).build(window_mask.to(self._image.device)))
        return concat_inputs(parts)

    def build(self, masks: torch.Tensor) -> MaskInputs:
        """(n, H, W) bool on the device → the n masks' images and token masks."""
        mask_taps = self._sampler.taps(masks)   # (n, 2h, 2w)
        local = global_ = None
        if self._need_local:
            local = self._sampler.mix(local_images(
                self._image_taps, mask_taps, self._config.local_fill))
        if self._blur_taps is not None:
            global_ = self._sampler.mix(global_images(
                self._image_taps, self._blur_taps, mask_taps))
        tokens = self._token_sampler.resize(masks).flatten(1)
        return MaskInputs(local, global_, tokens)
