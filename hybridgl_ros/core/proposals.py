"""Mask proposals with SAM's automatic mask generation (spec §3)."""
from __future__ import annotations

from typing import Protocol

import numpy as np

from hybridgl_ros.core.config import ProposalConfig
from hybridgl_ros.core.types import Proposals


class MaskProposer(Protocol):
    """Anything that turns an image into mask proposals."""

    def propose(self, image_rgb: np.ndarray) -> Proposals:
        """(H, W, 3) uint8 RGB -> proposals in a stable order, masks (N, H, W) bool."""


class SamProposer:
    """SAM's automatic masks with the spec's settings, in SAM's output order.

    The generation is :class:`~hybridgl_ros.core.mask_generation.BoundedMaskGenerator`:
    ``SamAutomaticMaskGenerator``'s algorithm with memory that grows with the number of masks,
    not with ``points_per_batch`` × the image. The proposals keep SAM's logits of every mask
    (``Proposals.restorer``) to rebuild one at another resolution.

    Args:
        sam: a segment_anything ``Sam`` on its device, eval mode.
        config: the generator's settings (spec §3).
        encoder_dtype: autocast dtype of SAM's image encoder (see ``models.stage_dtypes``), or
            None for float32. The prompt decoder and post-processing stay float32.
    """

    def __init__(self, sam, config: ProposalConfig, encoder_dtype=None) -> None:
        from hybridgl_ros.core.mask_generation import BoundedMaskGenerator

        self.sam = sam
        self.config = config
        self._generator = BoundedMaskGenerator(sam, config, encoder_dtype)

    def propose(self, image_rgb: np.ndarray) -> Proposals:
        from hybridgl_ros.core.pipeline import check_aspect_ratio

        height, width = image_rgb.shape[:2]
        check_aspect_ratio(height, width, self._generator.transform.target_length)
        generated = self._generator.generate(image_rgb)
        if len(generated['masks']) == 0:
            return Proposals.empty(height, width)
        xyxy = generated['boxes_xyxy']
        boxes = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)  # SAM's bbox
        return Proposals(masks=generated['masks'], boxes_xywh=boxes.astype(np.int64),
                         scores=generated['iou_preds'].astype(np.float32),
                         restorer=generated['restorer'])
