"""The pictures of an eval run (``hybridgl eval --plots``), drawn with OpenCV.

The reliability diagram: bars are the share of right answers in each confidence bin (red
outline: the gap to the bin's mean confidence); the diagonal is perfect calibration; the grey
bars under the axis give how many answers each bin holds. ECE is in the title.

Answers by target size: one bar per target-size group (``grounding.by_target_size``: the side
of a square with the target's area at the working size), split into right (blue), another
object (grey) and "not found" (red), with how many expressions each group holds; a black line
across each bar is the answers' mean confidence (on the blue bar's top when calibrated).
"""
from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

_SIZE = 560
_MARGIN = 64
_BAR_RGB = (66, 133, 244)
_GAP_RGB = (234, 67, 53)
_WRONG_RGB = (170, 170, 170)


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


def size_diagram(groups: Mapping[str, Mapping], title: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB stacked bars of ``grounding.by_target_size``: per group, the share
    of single-target expressions answered right, with another object and "not found"."""
    height, width = _SIZE + 40, _SIZE + 80
    image = np.full((height, width, 3), 255, np.uint8)
    _size_bars(image, groups, (_MARGIN, _MARGIN + _SIZE - 2 * _MARGIN, width - _MARGIN))
    _text(image, title, (_MARGIN, 30), 0.5)
    _text(image, 'share of expressions', (6, _MARGIN - 10), 0.45)
    y = height - 14
    for label, rgb, x in (('right', _BAR_RGB, _MARGIN), ('another object', _WRONG_RGB, 140),
                          ('not found', _GAP_RGB, 300), ('mean confidence', (0, 0, 0), 420)):
        _swatch(image, (x, y - 10), rgb)
        _text(image, label, (x + 18, y), 0.45)
    return image


def _size_bars(image: np.ndarray, groups: Mapping[str, Mapping], frame: tuple[int, int, int]
               ) -> None:
    import cv2

    from hybridgl_ros.eval.grounding import size_group_key

    x0, y0, x1 = frame
    side = y0 - _MARGIN
    cv2.rectangle(image, (x0, _MARGIN), (x1, y0), (0, 0, 0), 1)
    for tick in np.linspace(0, 1, 6):
        y = int(round(y0 - tick * side))
        _text(image, f'{tick:.1f}', (x0 - 34, y + 4), 0.4)
    step = (x1 - x0) / max(1, len(groups))
    for i, name in enumerate(sorted(groups, key=size_group_key)):
        g = groups[name]
        left, right = int(x0 + i * step + 6), int(x0 + (i + 1) * step - 6)
        found, hit = g['found'] or 0.0, g['right'] or 0.0
        top = y0
        for share, rgb in ((hit, _BAR_RGB), (found - hit, _WRONG_RGB), (1.0 - found, _GAP_RGB)):
            bottom, top = top, int(round(top - share * side))
            if bottom > top:
                cv2.rectangle(image, (left, top), (right, bottom), rgb, -1)
        bar_top = y0 - int(hit * side)          # the label inside a tall bar, above a short one
        _text(image, f'{100 * hit:.0f} %', (left + 2, bar_top + 16 if hit * side >= 24
                                            else bar_top - 6), 0.4)
        if g.get('confidence') is not None:             # the mean confidence, a black line
            y = int(round(y0 - g['confidence'] * side))
            cv2.line(image, (left, y), (right, y), (0, 0, 0), 2)
        _text(image, f'{name} px', (left, y0 + 18), 0.4)
        _text(image, f'n {g["queries"]}', (left, y0 + 36), 0.4)
    _text(image, 'target side at the working size', (x0 + (x1 - x0) // 2 - 110, y0 + 58), 0.45)


def _swatch(image: np.ndarray, corner: tuple[int, int], rgb: tuple[int, int, int]) -> None:
    import cv2

    cv2.rectangle(image, corner, (corner[0] + 12, corner[1] + 12), rgb, -1)


def write_size_plot(path: str | Path, grounding: Mapping, title: str) -> Path:
    """Writes the answers-by-target-size picture of a summary's ``grounding`` block (PNG)."""
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), size_diagram(grounding['by_target_size'], title)[..., ::-1])
    return path
