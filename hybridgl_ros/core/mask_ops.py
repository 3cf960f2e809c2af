"""Mask operations of the tracker: prompt boxes, growing, eroding, cropping, components."""
from __future__ import annotations

import cv2
import numpy as np

from hybridgl_ros.core.geometry import mask_box_xywh


def prompt_box(mask: np.ndarray, margin: float) -> np.ndarray:
    """(4,) float32 x0, y0, x1, y1: the mask's box grown by ``margin`` of its size per side."""
    x, y, w, h = mask_box_xywh(mask)
    height, width = mask.shape
    dx, dy = margin * w + 2.0, margin * h + 2.0
    return np.array([max(x - dx, 0.0), max(y - dy, 0.0), min(x + w - 1 + dx, width - 1.0),
                     min(y + h - 1 + dy, height - 1.0)], np.float32)


def grown(mask: np.ndarray, margin: float) -> np.ndarray:
    """The mask dilated by ``margin`` times the longer side of its box (at least 3 px)."""
    _, _, w, h = mask_box_xywh(mask)
    radius = max(3, int(round(margin * max(w, h))))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1,) * 2)
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


def keep_touching(mask: np.ndarray, moved: np.ndarray) -> np.ndarray:
    """The connected parts of ``mask`` that overlap ``moved``."""
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    if count <= 2:
        return mask
    keep = np.unique(labels[mask & moved])
    return np.isin(labels, keep[keep > 0])


def eroded(mask: np.ndarray, fraction: float) -> np.ndarray:
    """The mask eroded by ``fraction`` of its box's longer side (at least 2 px), or the mask
    itself when nothing would be left."""
    _, _, w, h = mask_box_xywh(mask)
    radius = max(2, int(round(fraction * max(w, h))))
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1,) * 2)
    core = cv2.erode(mask.astype(np.uint8), kernel).astype(bool)
    return core if core.any() else mask


def touches_border(mask: np.ndarray) -> bool:
    """Whether the (H, W) mask has a pixel on the picture's border."""
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())


def object_crop(image_rgb: np.ndarray, mask: np.ndarray, context: float
                ) -> tuple[np.ndarray, np.ndarray]:
    """A square crop around a mask: its box's longer side plus ``context`` of it on each side,
    cut at the picture's border. Returns (h, w, 3) uint8 and (h, w) bool, contiguous."""
    x, y, w, h = mask_box_xywh(mask)
    half = max(w, h) * (0.5 + context)
    cx, cy = x + w / 2.0, y + h / 2.0
    x0, y0 = max(int(cx - half), 0), max(int(cy - half), 0)
    x1 = min(int(np.ceil(cx + half)), mask.shape[1])
    y1 = min(int(np.ceil(cy + half)), mask.shape[0])
    return (np.ascontiguousarray(image_rgb[y0:y1, x0:x1]),
            np.ascontiguousarray(mask[y0:y1, x0:x1]))
