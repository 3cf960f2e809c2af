"""Mask proposals with SAM's automatic mask generation (spec §3)."""
from __future__ import annotations

from typing import Protocol

import numpy as np

from hybridgl_ros.core.config import ProposalConfig
from hybridgl_ros.core.types import Proposals


class MaskProposer(Protocol):
    """Anything that turns an image into mask proposals."""

    def propose(self, image_rgb: np.ndarray) -> Proposals:
        """(H, W, 3) uint8 RGB -> proposals in a stable order, masks (N, H, W) bool.

        A proposer whose ``takes_hole_area`` is true (:class:`SamProposer`) also takes, for an
        image downscaled from the camera's, ``min_hole_area=``: the holes its clean-up fills,
        in the image's pixels."""


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

    #: ``propose`` takes ``min_hole_area`` (see :class:`MaskProposer`).
    takes_hole_area = True

    def propose(self, image_rgb: np.ndarray, min_hole_area: float | None = None) -> Proposals:
        """Proposals of ``image_rgb``; ``min_hole_area``: holes below this many of its pixels
        are filled (None: SAM's clean-up area, ``min_mask_region_area``)."""
        from hybridgl_ros.core.pipeline import check_aspect_ratio

        height, width = image_rgb.shape[:2]
        check_aspect_ratio(height, width, self._generator.transform.target_length)
        generated = self._generator.generate(image_rgb, min_hole_area)
        if len(generated['masks']) == 0:
            return Proposals.empty(height, width)
        xyxy = generated['boxes_xyxy']
        boxes = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1)  # SAM's bbox
        return Proposals(masks=generated['masks'], boxes_xywh=boxes.astype(np.int64),
                         scores=generated['iou_preds'].astype(np.float32),
                         restorer=generated['restorer'])


def drop_split_masks(proposals: Proposals) -> Proposals:
    """The proposals without the masks that come in two or more pieces (8-connected).

    SAM's point prompts sometimes return two separate objects as one mask (a hexagon and part
    of a ring beside it); whatever that mask looks like to CLIP is the look of no object. After
    SAM's small-region clean-up (``min_mask_region_area``) every piece left is a region of its
    own, so a mask in two pieces is two regions, not one object. When every mask is in
    pieces the proposals are kept as they are.

    Args:
        proposals: SAM's proposals (any :class:`Proposals`).

    Returns:
        The one-piece proposals in their order, with a restorer that rebuilds them.
    """
    keep = [i for i, (mask, box) in enumerate(zip(proposals.masks, proposals.boxes_xywh))
            if pieces(mask, box) <= 1]
    if len(keep) in (0, len(proposals)):
        return proposals
    restorer = proposals.restorer
    if restorer is not None:
        restorer = _KeptRestorer(restorer, [i for i in keep if i < len(restorer)])
    return Proposals(masks=proposals.masks[keep], boxes_xywh=proposals.boxes_xywh[keep],
                     scores=proposals.scores[keep], restorer=restorer)


def pieces(mask: np.ndarray, box_xywh) -> int:
    """The number of 8-connected pieces of ``mask``, counted inside its box (SAM's ``bbox``:
    x, y, width, height with an inclusive last column and row), so that the time follows the
    object's size, not the frame's."""
    import cv2

    x, y, width, height = (int(v) for v in box_xywh)
    crop = mask[max(y, 0):y + height + 2, max(x, 0):x + width + 2]
    return int(cv2.connectedComponents(crop.astype(np.uint8), connectivity=8)[0]) - 1


class _KeptRestorer:
    """A restorer of the kept proposals: proposal i is the inner restorer's ``kept[i]``."""

    def __init__(self, inner, kept: list[int]) -> None:
        self.inner = inner
        self.kept = kept

    def __len__(self) -> int:
        return len(self.kept)

    def mask(self, index: int, size_hw: tuple[int, int]) -> np.ndarray:
        return self.inner.mask(self.kept[index], size_hw)
