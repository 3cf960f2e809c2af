"""Pictures of a result: the overlay (tinted mask, box, centroid, interior point, text) and
contact sheets of several overlays."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from hybridgl_ros.core.types import Segmentation

MASK_RGB = (0, 200, 90)
BOX_RGB = (255, 210, 0)
CENTROID_RGB = (255, 40, 40)
INTERIOR_RGB = (40, 120, 255)
ALTERNATIVE_RGB = (255, 120, 0)


def draw_overlay(image_rgb: np.ndarray, segmentation: Segmentation, alpha: float = 0.45,
                 label: str | None = None) -> np.ndarray:
    """Draws a result on a copy of the image.

    Args:
        image_rgb: (H, W, 3) uint8 source image.
        segmentation: the result to draw; a "not found" result draws only the text (with
            why: "not found: no 'elephant' in view"); an ambiguous one also outlines each
            alternative (box and a point on it, orange) and says how many fit.
        alpha: opacity of the mask tint.
        label: text to print; defaults to the expression, the score and the confidence.

    Returns:
        (H, W, 3) uint8 RGB picture.
    """
    import cv2

    out = np.ascontiguousarray(image_rgb, dtype=np.uint8).copy()
    if segmentation.found:
        mask = segmentation.mask
        tint = np.asarray(MASK_RGB, np.float32)
        out[mask] = ((1.0 - alpha) * out[mask] + alpha * tint).astype(np.uint8)
        contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL,
                                       cv2.CHAIN_APPROX_SIMPLE)
        cv2.drawContours(out, contours, -1, MASK_RGB, 2)
        x, y, w, h = segmentation.box_xywh  # SAM's box: the right/bottom edge is x + w, y + h
        cv2.rectangle(out, (x, y), (x + w, y + h), BOX_RGB, 2)
        cx, cy = (int(round(v)) for v in segmentation.centroid_xy)
        cv2.drawMarker(out, (cx, cy), CENTROID_RGB, cv2.MARKER_CROSS, 14, 2)
        cv2.circle(out, tuple(int(v) for v in segmentation.interior_xy), 5, INTERIOR_RGB, -1)
        for alternative in segmentation.alternatives:
            ax, ay, aw, ah = alternative.box_xywh
            cv2.rectangle(out, (ax, ay), (ax + aw, ay + ah), ALTERNATIVE_RGB, 2)
            cv2.circle(out, tuple(int(v) for v in alternative.interior_xy), 5, ALTERNATIVE_RGB,
                       -1)
    _put_label(out, label if label is not None else overlay_label(segmentation))
    return out


def overlay_label(segmentation: Segmentation) -> str:
    """'the red ball  (0.62, conf 0.71)', '... ambiguous: 2 candidates', or
    "the elephant  (not found: no 'elephant' in view)"."""
    if not segmentation.found:
        why = segmentation.message or 'nothing fits'
        return f'{segmentation.text}  (not found: {why})'
    sure = ('' if np.isnan(segmentation.confidence)
            else f', conf {segmentation.confidence:.2f}')
    label = f'{segmentation.text}  ({segmentation.score:.2f}{sure})'
    if segmentation.ambiguous:
        label += f'  ambiguous: {len(segmentation.alternatives) + 1} candidates'
    return label


def draw_explanation(image_rgb: np.ndarray, segmentation: Segmentation) -> np.ndarray:
    """The overlay beside the spatial map A that decided the choice (``explain=True`` results).

    The right panel is A (coherence map ⊙ position ramp, spec §9) as a heat map over the image,
    with every candidate's box labelled by its final score F; the chosen one is drawn thicker.
    Without an explanation the overlay alone is returned.

    Returns:
        (H, 2W, 3) uint8 RGB, or (H, W, 3) without an explanation.
    """
    import cv2

    overlay = draw_overlay(image_rgb, segmentation)
    explanation = segmentation.explanation
    if explanation is None:
        return overlay
    weights = explanation.guidance_map
    heat = np.clip(255.0 * weights / max(float(weights.max()), 1e-6), 0, 255).astype(np.uint8)
    heat = cv2.cvtColor(cv2.applyColorMap(heat, cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    height, width = image_rgb.shape[:2]
    # A and the boxes are at the frame's working size: smaller than the image if downscaled
    scale = np.array([width / heat.shape[1], height / heat.shape[0]] * 2)
    heat = cv2.resize(heat, (width, height), interpolation=cv2.INTER_LINEAR)
    panel = (0.4 * np.asarray(image_rgb, np.float32) + 0.6 * heat).astype(np.uint8)
    boxes = explanation.boxes_xywh * scale
    for index, score in zip(explanation.candidates, explanation.final_scores):
        x, y, w, h = (int(round(v)) for v in boxes[index])
        chosen = int(index) == explanation.chosen
        cv2.rectangle(panel, (x, y), (x + w, y + h), (255, 255, 255), 3 if chosen else 1)
        cv2.putText(panel, f'#{int(index)} F={score:.2f}', (x + 2, max(y - 4, 12)),
                    cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    _put_label(panel, f'A: map x ramp ({explanation.direction}); relation {explanation.relation}')
    return np.concatenate([overlay, panel], axis=1)


def _put_label(image: np.ndarray, text: str) -> None:
    import cv2

    scale = max(0.4, image.shape[1] / 1100.0)
    (tw, th), base = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    cv2.rectangle(image, (0, 0), (min(tw + 8, image.shape[1]), th + base + 8), (0, 0, 0), -1)
    cv2.putText(image, text, (4, th + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1,
                cv2.LINE_AA)


def contact_sheet(images: Sequence[np.ndarray], columns: int = 3,
                  tile_width: int = 320) -> np.ndarray:
    """Tiles RGB pictures (any sizes) into one (rows·h, columns·w, 3) uint8 sheet."""
    import cv2

    if not images:
        return np.zeros((1, 1, 3), np.uint8)
    tiles = []
    for image in images:
        h, w = image.shape[:2]
        size = (tile_width, max(1, round(h * tile_width / w)))
        tiles.append(cv2.resize(image, size, interpolation=cv2.INTER_AREA))
    tile_h = max(t.shape[0] for t in tiles)
    rows = -(-len(tiles) // columns)
    sheet = np.full((rows * tile_h, columns * tile_width, 3), 255, np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        sheet[r * tile_h:r * tile_h + tile.shape[0], c * tile_width:(c + 1) * tile_width] = tile
    return sheet
