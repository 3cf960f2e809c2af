"""Configuration of following the chosen object (``core/tracking.py``), the ``tracking``
section of :class:`~hybridgl_ros.core.config.HybridGLConfig`: its fields and their checks."""
from __future__ import annotations

from dataclasses import dataclass

from hybridgl_ros.core.config_values import check_choice, check_range

ON_LOST = ('report', 'redetect')


@dataclass(frozen=True)
class TrackingConfig:
    """Following the chosen object on new frames (core/tracking.py): SAM prompted with the
    flow-moved previous mask, checked against the motion and the chosen object's look."""

    use_flow: bool = True
    """Move the previous mask by sparse optical flow before prompting SAM (else: last motion)."""
    flow_points: int = 64
    """Most corners tracked by optical flow in and around the previous mask."""
    box_prompt: bool = True
    """Prompt SAM with the moved mask's box as well as its interior point (SAM ViT-H/L/B were
    trained with boxes; the embedded demo SAM was not: config/demo_scenes.yaml turns it off)."""
    box_margin: float = 0.1
    """The prompt box is the moved mask's box grown by this fraction of its size on each side."""
    search_margin: float = 0.05
    """SAM's mask is cut to the moved mask grown by this fraction of its size: the object cannot
    jump further in one frame, and a neighbour SAM leaks into is cut off."""
    min_sam_score: float = 0.5
    """SAM's mask is not believed if its predicted IoU is lower."""
    min_agreement: float = 0.7
    """SAM's mask is not believed if it overlaps the flow-moved mask less than this (IoU)."""
    max_area_change: float = 1.5
    """SAM's mask is not believed if its area differs from the moved mask's by more than this
    factor."""
    max_growth: float = 1.25
    """A SAM mask larger than this times the chosen object's area (times the zoom since,
    squared) is not believed: it has merged with something."""
    min_area_px: int = 150
    """Fewer mask pixels than this in view: the object has left the view (lost at once)."""
    appearance_every: int = 1
    """Compare the mask's CLIP feature with the chosen object's every n-th frame; 0 = never."""
    min_appearance: float = 0.7
    """A frame is uncertain if its mask's hybrid CLIP feature (on a crop around the mask) has a
    lower cosine similarity to the chosen object's (0.9 until the demo CLIP's fourth stage, whose
    crop features vary more from frame to frame; 0.7 chosen of 0.9 / 0.8 / 0.7 on the generated
    clips of seed 6002, README "Following the object")."""
    lost_after: int = 5
    """Consecutive uncertain frames after which the object is reported lost."""
    on_lost: str = 'report'
    """report: end the track as lost; redetect: run the whole method again on the next frames."""
    redetect_attempts: int = 3
    """Frames on which on_lost = redetect runs the whole method before reporting the loss."""


#: Each tracking field's bounds (None: unbounded).
TRACKING_RANGES: dict[str, tuple[float | None, float | None]] = {
    'flow_points': (4, None), 'box_margin': (0.0, None), 'search_margin': (0.0, None),
    'min_sam_score': (0.0, 1.0), 'min_agreement': (0.0, 1.0), 'max_area_change': (1.0, None),
    'max_growth': (1.0, None), 'min_area_px': (0, None), 'appearance_every': (0, None),
    'min_appearance': (-1.0, 1.0), 'lost_after': (1, None), 'redetect_attempts': (0, None),
}


def check_tracking(t: TrackingConfig) -> None:
    """ConfigError if a tracking setting is out of range (NaN never is in range)."""
    check_choice('tracking.on_lost', t.on_lost, ON_LOST)
    for name, (low, high) in TRACKING_RANGES.items():
        check_range(f'tracking.{name}', getattr(t, name), low, high)
