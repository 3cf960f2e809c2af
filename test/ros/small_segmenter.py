"""A small segmenter for the ROS adapter tests: real prepare/query contract, real Segmentation.

Proposals are the connected regions of pixels close to a few named colours; a query picks the
colour named in the text. Two regions of that colour make an ambiguous answer (the second is
the alternative), a colour word with no region of it a "not found" answer with a confidence.
It runs in microseconds, so the ROS tests measure the node, not the method. Optional delays
make slow queries for the concurrency and memory tests.
"""
from __future__ import annotations

import threading
import time

import cv2
import numpy as np

from hybridgl_ros.core.errors import InvalidInputError
from hybridgl_ros.core.geometry import interior_point, mask_box_xywh, mask_centroid
from hybridgl_ros.core.pipeline import check_image
from hybridgl_ros.core.types import Alternative, Frame, ParsedExpression, Proposals, Segmentation

COLOURS_RGB = {'red': (220, 30, 30), 'blue': (30, 40, 220), 'green': (30, 200, 60)}
MIN_AREA_PX = 20
#: Confidences the small segmenter reports: a single match, each of two, "not found".
FOUND_CONFIDENCE, TIED_CONFIDENCE, ABSENT_CONFIDENCE = 0.9, 0.45, 0.8


def scene_rgb(height: int = 96, width: int = 128) -> np.ndarray:
    """(H, W, 3) uint8: a red square left, a blue disc right, on a grey gradient.

    At 96 x 128 the red square covers rows 30..59 and columns 15..44.
    """
    yy, xx = np.mgrid[0:height, 0:width]
    image = np.stack([np.full((height, width), 90 + yy * 24 // height)] * 3, -1).astype(np.uint8)
    sy, sx = height / 96.0, width / 128.0
    image[int(30 * sy):int(60 * sy), int(15 * sx):int(45 * sx)] = COLOURS_RGB['red']
    disc = ((yy - 48 * sy) / sy) ** 2 + ((xx - 95 * sx) / sx) ** 2 < 15 ** 2
    image[disc] = COLOURS_RGB['blue']
    return image


def sam_box_xywh(mask: np.ndarray) -> tuple[int, int, int, int]:
    """SAM's box of a mask, as the library's Segmentation.box_xywh holds it: width and height
    are max - min (inclusive max), one less than the pixel counts."""
    x, y, w, h = mask_box_xywh(mask)
    return x, y, w - 1, h - 1


class ColourSegmenter:
    """prepare(image_rgb) -> Frame; query(frame, text) -> Segmentation, by colour words.

    Args:
        prepare_delay_s: extra time spent in prepare, sleeping [s].
        query_delay_s: extra time spent in query, sleeping [s].
        prepare_torch_s: extra time spent in prepare computing in torch, as a model does [s].
    """

    def __init__(self, prepare_delay_s: float = 0.0, query_delay_s: float = 0.0,
                 prepare_torch_s: float = 0.0) -> None:
        self.prepare_delay_s = prepare_delay_s
        self.query_delay_s = query_delay_s
        self.prepare_torch_s = prepare_torch_s
        self.prepare_calls = 0
        self.query_calls = 0
        self._lock = threading.Lock()

    def prepare(self, image_rgb: np.ndarray) -> Frame:
        image_rgb = check_image(image_rgb)
        with self._lock:
            self.prepare_calls += 1
        time.sleep(self.prepare_delay_s)
        _torch_work(self.prepare_torch_s)
        names, masks = [], []
        for name, rgb in COLOURS_RGB.items():
            colour = np.abs(image_rgb.astype(np.int16) - rgb).max(axis=2) < 30
            count, labels = cv2.connectedComponents(colour.astype(np.uint8))
            for label in range(1, count):
                mask = labels == label
                if mask.sum() >= MIN_AREA_PX:
                    names.append(name)
                    masks.append(mask)
        height, width = image_rgb.shape[:2]
        if not masks:
            return Frame((height, width), Proposals.empty(height, width), mask_features=[])
        stack = np.stack(masks)
        boxes = np.array([sam_box_xywh(m) for m in masks], np.int64)
        return Frame((height, width), Proposals(stack, boxes, np.ones(len(masks), np.float32)),
                     mask_features=names)

    def query(self, frame: Frame, text: str) -> Segmentation:
        if not isinstance(text, str) or not text.strip():
            raise InvalidInputError('the expression is empty')
        with self._lock:
            self.query_calls += 1
        time.sleep(self.query_delay_s)
        words = text.lower().split()
        parse = ParsedExpression(normalized=' '.join(words), head_phrase=' '.join(words[-2:]))
        names = frame.mask_features
        n = len(names)
        colour = next((w for w in words if w in COLOURS_RGB), None)
        matches = [i for i, name in enumerate(names) if name == colour]
        if not matches:
            if n and colour:
                return Segmentation.not_found(text, parse, frame.image_size, n,
                                              f"no '{colour}' in view",
                                              confidence=ABSENT_CONFIDENCE)
            why = 'no masks proposed' if n == 0 else 'no proposal matches'
            return Segmentation.not_found(text, parse, frame.image_size, n,
                                          f'no object: {why}')
        chosen, tied = matches[0], matches[1:]
        probs = np.full(n, 0.1 / max(n - 1, 1), np.float32)
        probs[chosen] = 0.9 if n > 1 else 1.0
        mask = frame.proposals.masks[chosen]
        alternatives = tuple(Alternative(
            index=i, box_xywh=sam_box_xywh(frame.proposals.masks[i]),
            interior_xy=interior_point(frame.proposals.masks[i]), score=0.9,
            confidence=TIED_CONFIDENCE) for i in tied)
        return Segmentation(
            found=True, text=text, mask=mask, box_xywh=sam_box_xywh(mask), score=0.9,
            centroid_xy=mask_centroid(mask), interior_xy=interior_point(mask), index=chosen,
            pure_index=chosen, matching_probs=probs, spatial_scores=np.ones(n, np.float32),
            candidate_indices=tuple(matches), candidate_scores=(0.9,) * len(matches),
            parse=parse, timings_ms={'total': 0.0},
            confidence=TIED_CONFIDENCE if tied else FOUND_CONFIDENCE,
            ambiguous=bool(tied), alternatives=alternatives)


def _torch_work(seconds: float) -> None:
    """Matrix products for ``seconds`` (torch releases the GIL inside each, like a model)."""
    if seconds <= 0:
        return
    import torch

    a = torch.rand(256, 256)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        a = torch.nn.functional.normalize(a @ a, dim=1)
