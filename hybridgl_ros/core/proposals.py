"""Mask proposals with segment_anything's automatic mask generator (spec §3)."""
from __future__ import annotations

import contextlib
from dataclasses import asdict
from typing import Protocol

import numpy as np

from hybridgl_ros.core.config import ProposalConfig
from hybridgl_ros.core.types import Proposals


class MaskProposer(Protocol):
    """Anything that turns an image into mask proposals."""

    def propose(self, image_rgb: np.ndarray) -> Proposals:
        """(H, W, 3) uint8 RGB -> proposals in a stable order."""


class SamProposer:
    """``SamAutomaticMaskGenerator`` with the spec's settings; keeps SAM's output order.

    Args:
        sam: a segment_anything ``Sam`` on its device, eval mode.
        config: the generator's settings (spec §3).
        autocast_dtype: run SAM's image encoder under this autocast dtype (CUDA default
            mode), or None for fp32. The prompt decoder and post-processing stay fp32.
    """

    def __init__(self, sam, config: ProposalConfig, autocast_dtype=None) -> None:
        from segment_anything import SamAutomaticMaskGenerator

        self.sam = sam
        self.config = config
        self._generator = SamAutomaticMaskGenerator(sam, output_mode='binary_mask',
                                                    **asdict(config))
        self._autocast_dtype = autocast_dtype

    def propose(self, image_rgb: np.ndarray) -> Proposals:
        import torch

        from hybridgl_ros.core.pipeline import check_aspect_ratio

        height, width = image_rgb.shape[:2]
        check_aspect_ratio(height, width, self._generator.predictor.transform.target_length)
        with torch.inference_mode(), self._encoder_autocast():
            records = self._generator.generate(image_rgb)
        if not records:
            return Proposals.empty(height, width)
        masks = np.stack([r['segmentation'] for r in records]).astype(bool)  # (N, H, W)
        boxes = np.asarray([r['bbox'] for r in records], np.float64).round().astype(np.int64)
        scores = np.asarray([r['predicted_iou'] for r in records], np.float32)
        return Proposals(masks=masks, boxes_xywh=boxes, scores=scores)

    @contextlib.contextmanager
    def _encoder_autocast(self):
        """Autocasts only the image encoder: the heavy part, whose output is cast back."""
        if self._autocast_dtype is None:
            yield
            return
        import torch

        encoder = self.sam.image_encoder
        original = encoder.forward

        def forward(x):
            with torch.autocast('cuda', dtype=self._autocast_dtype):
                return original(x).float()

        encoder.forward = forward
        try:
            yield
        finally:
            del encoder.forward
