"""SAM's automatic mask generation (spec §3) in memory that grows with the masks, not the frame.

The algorithm, its settings and its output order are those of segment_anything's
``SamAutomaticMaskGenerator`` (a test compares the two mask for mask): per crop a grid of
point prompts, three masks per prompt, kept if their predicted IoU and stability pass the
thresholds, then box NMS; across crops a second NMS (keeping the smaller crop's mask of a
duplicate pair; with ``prefer_whole_image_masks``, the default mode's, the whole image's, and
a crop's mask that overlaps one of the whole image by mask IoU ≥ 0.5, or lies inside one at
least twice its size, is dropped as well);
then islands and holes below ``min_mask_region_area`` removed and a last NMS. It is written
here on SAM's own parts (the image encoder, prompt encoder, mask decoder, ``postprocess_masks``
and the helpers of ``segment_anything.utils.amg``) because the generator holds its
intermediate masks in a way that does not scale: ``points_per_batch`` × 3 logit maps upsampled
to the image in float32 at once (1.6 GB at 1080p, 6.4 GB at 4K) and every mask run-length
encoded and decoded again. Here:

* a prompt batch's masks are upsampled a few at a time (about ``UPSAMPLE_BUDGET_FLOATS`` floats),
  and only those whose predicted IoU passed the threshold (the filter does not need the mask);
* surviving masks are kept bit-packed (H·W/8 bytes each) until the final list is known;
* each kept mask's 256×256 logits stay with it, so that :class:`LogitRestorer` can rebuild the
  mask at another resolution (the camera's, when the frame was processed downscaled).

For a frame processed downscaled (the default mode's working size) the holes its clean-up
fills can have an area of their own (``min_hole_area``: the camera's 800 px in the working
image's pixels), so that an object's hole the camera sees is kept.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import numpy as np
import torch

from hybridgl_ros.core.config import ProposalConfig
from hybridgl_ros.core.sam_encoder import banded_global_attention

#: Floats upsampled at once (SAM's 1024² frame plus the crop, per mask): 64 MiB of float32.
UPSAMPLE_BUDGET_FLOATS = 2 ** 24
#: segment_anything's defaults for the settings the spec does not name.
STABILITY_SCORE_OFFSET = 1.0
CROP_NMS_THRESH = 0.7
CROP_OVERLAP_RATIO = 512 / 1500
#: Default mode (``prefer_whole_image_masks``): a crop's mask overlapping one of the whole image
#: by this mask IoU or more duplicates it, and one lying this much inside a mask of the whole
#: image at least 1 / CROP_PART_AREA times its size is a part of it; both are dropped.
CROP_DUPLICATE_IOU = 0.5
CROP_PART_INSIDE = 0.8
CROP_PART_AREA = 0.5
#: Set bits of each byte value.
_BITS = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(1).astype(np.uint8)


class BoundedMaskGenerator:
    """Automatic masks of an image, SAM's algorithm with bounded intermediate memory.

    Args:
        sam: a segment_anything ``Sam`` on its device, eval mode.
        config: the generator's settings (spec §3; a grid side of 0 and crop layers of -1 are
            the default mode's for this SAM).
        encoder_dtype: autocast dtype for the image encoder only (its output is cast back to
            float32), or None for float32. The prompt path always runs in float32: its scores
            are compared with thresholds.
    """

    def __init__(self, sam, config: ProposalConfig, encoder_dtype: torch.dtype | None = None):
        from segment_anything.utils.amg import build_all_layer_point_grids
        from segment_anything.utils.transforms import ResizeLongestSide

        self.sam = sam
        # A grid side of 0, crop layers or score thresholds of -1 left to resolve are the
        # default mode's.
        self.config = config.for_mode(False, sam.image_encoder.img_size)
        self.encoder_dtype = encoder_dtype
        self.transform = ResizeLongestSide(sam.image_encoder.img_size)
        self.point_grids = build_all_layer_point_grids(
            self.config.points_per_side, self.config.crop_n_layers,
            self.config.crop_n_points_downscale_factor)

    @property
    def device(self) -> torch.device:
        return self.sam.device

    @torch.inference_mode()
    def generate(self, image_rgb: np.ndarray, min_hole_area: float | None = None) -> dict:
        """Masks of an (H, W, 3) uint8 RGB image, in SAM's output order.

        Args:
            image_rgb: the image the masks are made for.
            min_hole_area: holes below this many of ``image_rgb``'s pixels are filled; None:
                ``min_mask_region_area``, as islands (SAM's clean-up; neither when that is 0).

        Returns:
            ``masks`` (N, H, W) bool, ``boxes_xyxy`` (N, 4) int64 (SAM's: last column and row
            inclusive), ``iou_preds`` (N,) float32, and ``restorer`` (a :class:`LogitRestorer`).
        """
        from segment_anything.utils.amg import MaskData, generate_crop_boxes

        size = image_rgb.shape[:2]
        area = self.config.min_mask_region_area
        holes = area if min_hole_area is None else min_hole_area
        crop_boxes, layers = generate_crop_boxes(size, self.config.crop_n_layers,
                                                 CROP_OVERLAP_RATIO)
        data = MaskData()
        for index, (crop_box, layer) in enumerate(zip(crop_boxes, layers)):
            data.cat(self._crop(image_rgb, crop_box, layer, index))
        if _count(data) == 0:
            return {'masks': np.zeros((0, *size), bool), 'boxes_xyxy': np.zeros((0, 4), np.int64),
                    'iou_preds': np.zeros(0, np.float32), 'restorer': None}
        if len(crop_boxes) > 1:
            # SAM keeps the smaller crop's mask of a duplicate pair; the default mode the whole
            # image's (ProposalConfig.prefer_whole_image_masks).
            areas = _crop_areas(crop_boxes, data['crop_index'])
            _nms_filter(data, areas if self.config.prefer_whole_image_masks else 1.0 / areas,
                        CROP_NMS_THRESH)
            if self.config.prefer_whole_image_masks:
                _keep_what_crops_add(data, size[1])
        if area > 0:
            self._remove_small_regions(data, size, area, holes)
        masks = np.unpackbits(data['packed'], axis=-1, count=size[1]).astype(bool)
        return {'masks': masks, 'boxes_xyxy': data['boxes'].cpu().numpy().astype(np.int64),
                'iou_preds': data['iou_preds'].float().cpu().numpy(),
                'restorer': LogitRestorer(self.sam, data['logits'], data['crop_index'],
                                          crop_boxes, data['input_sizes'], size, area,
                                          holes)}

    def _crop(self, image_rgb: np.ndarray, crop_box: list[int], layer: int, index: int):
        """The masks of one crop after the per-crop NMS, in the image's frame."""
        from segment_anything.utils.amg import MaskData, uncrop_boxes_xyxy

        x0, y0, x1, y1 = crop_box
        crop = image_rgb[y0:y1, x0:x1]
        features, input_size = self._embed(crop)
        points = self.point_grids[layer] * np.array(crop.shape[:2])[None, ::-1]
        data = MaskData()
        for start in range(0, len(points), self.config.points_per_batch):
            batch = points[start:start + self.config.points_per_batch]
            data.cat(self._batch(features, input_size, batch, crop_box, image_rgb.shape[:2]))
        if _count(data) == 0:
            return MaskData()
        _nms_filter(data, data['iou_preds'], self.config.box_nms_thresh)
        data['boxes'] = uncrop_boxes_xyxy(data['boxes'], crop_box)
        data['crop_index'] = torch.full((len(data['iou_preds']),), index, dtype=torch.int64)
        data['input_sizes'] = torch.tensor([input_size] * len(data['iou_preds']))
        return data

    def _embed(self, crop_rgb: np.ndarray) -> tuple[torch.Tensor, tuple[int, int]]:
        """SAM's image embedding (1, 256, 64, 64) float32 and the resized input size."""
        resized = self.transform.apply_image(crop_rgb)
        pixels = torch.as_tensor(resized, device=self.device).permute(2, 0, 1).contiguous()[None]
        fused = self.encoder_dtype is not None
        with self._autocast(), banded_global_attention(self.sam.image_encoder, fused=fused):
            features = self.sam.image_encoder(self.sam.preprocess(pixels))
        return features.float(), tuple(int(v) for v in pixels.shape[-2:])

    def _autocast(self):
        """Autocast without its weight cache: each weight is used once per pass, and the cache
        would hold a reduced-precision copy of all of them (1.3 GB for vit_h in bf16)."""
        if self.encoder_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.encoder_dtype, cache_enabled=False)

    def _batch(self, features, input_size, points, crop_box, image_size):
        """One prompt batch: decode, filter, upsample in chunks; survivors bit-packed."""
        from segment_anything.utils.amg import MaskData

        logits, iou_preds = self._decode(features, points, (crop_box[3] - crop_box[1],
                                                             crop_box[2] - crop_box[0]))
        if self.config.pred_iou_thresh > 0.0:
            keep = iou_preds > self.config.pred_iou_thresh
            logits, iou_preds = logits[keep], iou_preds[keep]
        data = MaskData()
        for chunk in _chunks(len(iou_preds), self._chunk_size(crop_box)):
            data.cat(self._upsampled(logits[chunk], iou_preds[chunk], input_size, crop_box,
                                     image_size))
        return data

    def _decode(self, features, points: np.ndarray, crop_size) -> tuple[torch.Tensor, ...]:
        """(3B, 256, 256) logits and (3B,) predicted IoU of B point prompts, 3 masks each."""
        coords = self.transform.apply_coords(points, crop_size)
        coords = torch.as_tensor(coords, device=self.device)[:, None]   # (B, 1, 2)
        labels = torch.ones(coords.shape[:2], dtype=torch.int, device=self.device)
        sparse, dense = self.sam.prompt_encoder(points=(coords, labels), boxes=None, masks=None)
        logits, iou_preds = self.sam.mask_decoder(
            image_embeddings=features, image_pe=self.sam.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse, dense_prompt_embeddings=dense,
            multimask_output=True)
        return logits.flatten(0, 1), iou_preds.flatten(0, 1)

    def _chunk_size(self, crop_box) -> int:
        side = self.sam.image_encoder.img_size
        crop_pixels = (crop_box[2] - crop_box[0]) * (crop_box[3] - crop_box[1])
        return max(1, UPSAMPLE_BUDGET_FLOATS // (side * side + crop_pixels))

    def _upsampled(self, logits, iou_preds, input_size, crop_box, image_size):
        """Masks of a few decoded logits at the crop's size: stability, boxes, edge filter."""
        from segment_anything.utils.amg import (
            MaskData, batched_mask_to_box, calculate_stability_score, is_box_near_crop_edge,
            uncrop_masks)

        height, width = image_size
        crop_hw = (crop_box[3] - crop_box[1], crop_box[2] - crop_box[0])
        maps = self.sam.postprocess_masks(logits[:, None], input_size, crop_hw)[:, 0]
        threshold = self.sam.mask_threshold
        data = MaskData(logits=logits, iou_preds=iou_preds, stability_score=(
            calculate_stability_score(maps, threshold, STABILITY_SCORE_OFFSET)))
        keep = torch.ones_like(iou_preds, dtype=torch.bool)
        if self.config.stability_score_thresh > 0.0:
            keep = data['stability_score'] >= self.config.stability_score_thresh
        masks = maps[keep] > threshold
        del maps
        data.filter(keep)
        data['boxes'] = batched_mask_to_box(masks)
        keep = ~is_box_near_crop_edge(data['boxes'], crop_box, [0, 0, width, height])
        if not torch.all(keep):
            data.filter(keep)
            masks = masks[keep]
        full = uncrop_masks(masks, crop_box, height, width)
        data['packed'] = np.packbits(full.cpu().numpy(), axis=-1)
        return data

    def _remove_small_regions(self, data, size: tuple[int, int], area: float,
                              holes: float) -> None:
        """Islands and holes below the minimum area removed, then NMS preferring masks that
        needed no change; changed masks that survive take their new mask and box."""
        from segment_anything.utils.amg import batched_mask_to_box

        packed, boxes, unchanged = [], [], []
        for row in data['packed']:
            mask = np.unpackbits(row, axis=-1, count=size[1]).astype(bool)
            mask, same = remove_islands_and_holes(mask, area, holes)
            packed.append(row if same else np.packbits(mask, axis=-1))
            boxes.append(batched_mask_to_box(torch.as_tensor(mask)[None])[0])
            unchanged.append(float(same))
        data['packed'] = np.stack(packed)
        data['boxes'] = torch.stack(boxes)   # on the CPU, where SAM runs this NMS too
        _nms_filter(data, torch.as_tensor(unchanged),
                    max(self.config.box_nms_thresh, CROP_NMS_THRESH))


def remove_islands_and_holes(mask: np.ndarray, area: float,
                             holes: float) -> tuple[np.ndarray, bool]:
    """SAM's small-region clean-up: holes below ``holes`` pixels, then islands below ``area``
    pixels.

    Returns:
        The (H, W) bool mask and whether it is unchanged.
    """
    from segment_anything.utils.amg import remove_small_regions

    mask, filled = remove_small_regions(mask, holes, mode='holes')
    mask, removed = remove_small_regions(mask, area, mode='islands')
    return mask, not (filled or removed)


class LogitRestorer:
    """Rebuilds kept masks at any resolution from their 256×256 logits.

    Args:
        sam: the SAM whose ``postprocess_masks`` made them.
        logits: (N, 256, 256) float32 of the kept masks, in output order.
        crop_index: (N,) int64, each mask's crop.
        crop_boxes: the crops (x0, y0, x1, y1) in the generator's image.
        input_sizes: (N, 2) int64, SAM's resized input (h, w) of each mask's crop.
        image_size: (h, w) the generator's image.
        min_area: SAM's small-region area in that image's pixels (0 = off).
        min_hole_area: holes below this many of that image's pixels are filled.
    """

    def __init__(self, sam, logits, crop_index, crop_boxes, input_sizes, image_size,
                 min_area: float, min_hole_area: float) -> None:
        self.sam = sam
        self.logits = logits
        self.crop_index = crop_index
        self.input_sizes = input_sizes
        self.crop_boxes = [list(box) for box in crop_boxes]
        self.image_size = tuple(image_size)
        self.min_area = min_area
        self.min_hole_area = min_hole_area

    def __len__(self) -> int:
        return int(self.logits.shape[0])

    @torch.inference_mode()
    def mask(self, index: int, size_hw: tuple[int, int]) -> np.ndarray:
        """Mask ``index`` as (H, W) bool at ``size_hw`` (same aspect as the generator's image)."""
        height, width = (int(v) for v in size_hw)
        scale_y, scale_x = height / self.image_size[0], width / self.image_size[1]
        x0, y0, x1, y1 = self.crop_boxes[int(self.crop_index[index])]
        x0, x1 = round(x0 * scale_x), round(x1 * scale_x)
        y0, y1 = round(y0 * scale_y), round(y1 * scale_y)
        input_size = tuple(int(v) for v in self.input_sizes[index])
        logits = self.logits[index][None, None]
        crop = self.sam.postprocess_masks(logits, input_size, (y1 - y0, x1 - x0))[0, 0]
        mask = np.zeros((height, width), bool)
        mask[y0:y1, x0:x1] = (crop > self.sam.mask_threshold).cpu().numpy()
        if self.min_area > 0:
            mask, _ = remove_islands_and_holes(mask, self.min_area * scale_x * scale_y,
                                               self.min_hole_area * scale_x * scale_y)
        return mask


def _nms_filter(data, scores: torch.Tensor, threshold: float) -> None:
    """Keeps the boxes NMS keeps, in its order (highest score first)."""
    from torchvision.ops.boxes import batched_nms

    boxes = data['boxes'].float()
    keep = batched_nms(boxes, scores.to(boxes.device),
                       torch.zeros(len(boxes), device=boxes.device), iou_threshold=threshold)
    data.filter(keep)


def _keep_what_crops_add(data, width: int) -> None:
    """Drops the crops' masks that the whole image (crop index 0) already has: those that
    overlap one of its masks by a mask IoU of ``CROP_DUPLICATE_IOU`` or more (the same object,
    with boxes too different for the box NMS), and parts (``CROP_PART_INSIDE`` of the mask or
    more inside one piece of one of its masks, smaller than ``CROP_PART_AREA`` of that piece).
    A whole-image mask in pieces is several objects SAM returned as one (dropped later as
    such, ``ProposalConfig.drop_split_masks``): an object of its own inside one of them is no
    part. ``width``: the masks' width in pixels (they are bit-packed)."""
    import cv2

    whole = (data['crop_index'] == 0).cpu().numpy()
    if whole.all() or not whole.any():
        return
    packed = data['packed']                       # bit-packed: counted without unpacking
    areas = _BITS[packed].reshape(len(packed), -1).sum(1, dtype=np.int64)
    whole_packed, whole_areas = packed[whole], areas[whole]
    pieces = [cv2.connectedComponents(np.unpackbits(row, axis=-1, count=width).astype(np.uint8),
                                      connectivity=8)[1] for row in whole_packed]
    piece_areas = [np.bincount(labels.ravel()) for labels in pieces]
    keep = whole.copy()
    for index in np.flatnonzero(~whole):
        inter = _BITS[whole_packed & packed[index]].reshape(len(whole_packed), -1).sum(
            1, dtype=np.int64)
        union = whole_areas + areas[index] - inter
        duplicate = (inter >= CROP_DUPLICATE_IOU * np.maximum(union, 1)).any()
        mask = np.unpackbits(packed[index], axis=-1, count=width).astype(bool)
        part = False
        for labels, sizes in zip(pieces, piece_areas):
            inside = np.bincount(labels[mask], minlength=len(sizes))
            inside[0] = 0                         # the background of that mask
            piece = int(inside.argmax())
            part |= bool(inside[piece] >= CROP_PART_INSIDE * areas[index]
                         and areas[index] < CROP_PART_AREA * sizes[piece])
        keep[index] = not (duplicate or part)
    data.filter(torch.from_numpy(keep))


def _crop_areas(crop_boxes: list[list[int]], crop_index: torch.Tensor) -> torch.Tensor:
    from torchvision.ops.boxes import box_area

    return box_area(torch.tensor(crop_boxes, dtype=torch.float32))[crop_index.cpu()]


def _count(data) -> int:
    """Masks held by a ``MaskData`` (0 when it holds nothing yet)."""
    stats = dict(data.items())
    return len(stats['iou_preds']) if 'iou_preds' in stats else 0


def _chunks(count: int, size: int) -> Iterator[slice]:
    for start in range(0, count, size):
        yield slice(start, start + size)
