"""The reliability diagram of an eval run (``hybridgl eval --plots``), drawn with OpenCV.

Bars: the share of right answers in each confidence bin (red outline: the gap to the bin's
mean confidence); the diagonal is perfect calibration; the grey bars under the axis give how
many answers each bin holds. ECE is in the title.
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

_SIZE = 560
_MARGIN = 64
_BAR_RGB = (66, 133, 244)
_GAP_RGB = (234, 67, 53)


def reliability_diagram(bins: Sequence[Mapping], ece: float | None, title: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB picture of a reliability table (``grounding.calibration_bins``)."""
    import cv2

    height = _SIZE + 90
    image = np.full((height, _SIZE, 3), 255, np.uint8)
    side = _SIZE - 2 * _MARGIN
    x0, y0 = _MARGIN, _MARGIN + side                              # origin, image y down

    def point(conf: float, acc: float) -> tuple[int, int]:
        return int(round(x0 + conf * side)), int(round(y0 - acc * side))

    most = max(1, max(b['count'] for b in bins))
    for b in bins:
        left, right = point(b['low'], 0)[0] + 2, point(b['high'], 0)[0] - 2
        cv2.rectangle(image, (left, y0 + 24), (right, y0 + 24 + int(50 * b['count'] / most)),
                      (170,) * 3, -1)
        if not b['count']:
            continue
        cv2.rectangle(image, (left, point(0, b['accuracy'])[1]), (right, y0), _BAR_RGB, -1)
        top, gap = sorted((point(0, b['accuracy'])[1], point(0, b['confidence'])[1]))
        cv2.rectangle(image, (left, top), (right, gap), _GAP_RGB, 1)
    cv2.line(image, point(0, 0), point(1, 1), (60, 60, 60), 1, cv2.LINE_AA)
    cv2.rectangle(image, point(0, 1), point(1, 0), (0, 0, 0), 1)
    for tick in np.linspace(0, 1, 6):
        label = f'{tick:.1f}'
        _text(image, label, (point(tick, 0)[0] - 10, y0 + 16), 0.4)
        _text(image, label, (x0 - 34, point(0, tick)[1] + 4), 0.4)
    _text(image, 'answers per bin', (x0, y0 + 90), 0.4)
    _text(image, 'confidence', (x0 + side // 2 - 40, height - 8), 0.45)
    _text(image, 'right', (6, _MARGIN - 10), 0.45)
    heading = title if ece is None else f'{title}   ECE {100 * ece:.1f} %'
    _text(image, heading, (x0, 30), 0.5)
    return image


def _text(image: np.ndarray, text: str, origin: tuple[int, int], scale: float) -> None:
    import cv2

    cv2.putText(image, text, origin, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1,
                cv2.LINE_AA)


def write_reliability_plot(path: str | Path, grounding: Mapping, title: str) -> Path:
    """Writes the reliability diagram of a summary's ``grounding`` block as a PNG."""
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = reliability_diagram(grounding['reliability'], grounding['ECE'], title)
    cv2.imwrite(str(path), image[..., ::-1])
    return path
