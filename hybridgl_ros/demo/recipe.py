"""What the demo-model trainers share: the ``--steps``/``--seed`` overrides, the lr schedule,
the object sizes of the training scenes, training in stages and SAM's low-res mask grid."""
from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np

#: The later stages' object sizes: ``SCALED_SHARE`` of their scenes at a factor in this range
#: (log-uniform) times the series' own sizes, the others at them (another camera distance,
#: another renderer's proportions; ``scenes.make_scene``'s ``object_scale``).
OBJECT_SCALES = (0.55, 1.3)
SCALED_SHARE = 0.5


@dataclass(frozen=True)
class ScaledScenes:
    """The object sizes of a recipe's training scenes (both demo trainers' recipes)."""

    object_scales: tuple[float, float] = (1.0, 1.0)
    """Range of the object size factor of the scaled scenes (``scenes.make_scene``)."""
    scaled_share: float = 0.0
    """Share of the training scenes drawn at an object size from ``object_scales`` (the
    others at the series' own sizes)."""

    turned_share: float = 0.0
    """Share of the training scenes with every object at an angle from the whole circle
    (``scenes.make_scene``'s ``any_angle``; the others at the series' own ±18°)."""

    def any_angle(self, index: int) -> bool:
        """Whether training scene ``index`` has its objects at any angle: for a
        ``turned_share`` of the scenes (seeded by the index alone, as ``object_scale``)."""
        if self.turned_share <= 0:
            return False
        return bool(np.random.default_rng([index, 6]).random() < self.turned_share)

    def object_scale(self, index: int) -> float:
        """Object size factor of training scene ``index`` (``scenes.make_scene``): 1, or for
        a ``scaled_share`` of the scenes one drawn log-uniformly from ``object_scales``
        (seeded by the index alone, so a scene is the same in every stage that pools it)."""
        low, high = self.object_scales
        rng = np.random.default_rng([index, 5])
        if self.scaled_share <= 0 or rng.random() >= self.scaled_share:
            return 1.0
        return float(np.exp(rng.uniform(np.log(low), np.log(high))))


class TrainingRecipe:
    """Base of the frozen recipe dataclasses; they define ``steps``, ``seed``, ``lr`` and
    ``warmup_steps``."""

    steps: int
    seed: int
    lr: float
    warmup_steps: int

    def with_overrides(self, steps: int = 0, seed: int | None = None):
        """This recipe with ``steps`` (if > 0) and ``seed`` (if given) replaced."""
        return replace(self, steps=steps or self.steps, seed=self.seed if seed is None else seed)

    def lr_at(self, step: int) -> float:
        """Learning rate of ``step``: linear warm-up, then cosine decay to 0 at the last step
        (computed as the shipped weights were trained, to the last bit)."""
        if step < self.warmup_steps:
            return self.lr * ((step + 1) / self.warmup_steps)
        progress = (step - self.warmup_steps) / max(1, self.steps - self.warmup_steps)
        return self.lr * (0.5 * (1.0 + np.cos(np.pi * min(1.0, progress))))


def train_in_stages(out_dir, first, later, train, weights_file: str, metrics_file: str,
                    start_from: str = '', adjust=lambda recipe: recipe) -> dict:
    """Trains a model in stages, each from the weights of the one before.

    Args:
        out_dir: the last stage's files go here, stage ``n``'s before it to ``out_dir/stageN``.
        first: the first stage's recipe (from scratch); skipped when ``start_from`` is given.
        later: per later stage, a function of the previous stage's weights file → its recipe.
        train: ``train(out, recipe) -> metrics`` of one stage.
        weights_file: the name of the weights ``train`` writes (``clip.pt``, ``sam.pth``).
        metrics_file: where the final metrics (with the earlier stages' under ``stageN``) go.
        start_from: the first stage's weights, to run only the later stages.
        adjust: applied to each recipe before it trains (``--steps``/``--seed``, smoke runs).
    """
    from pathlib import Path

    from hybridgl_ros.demo.eval_models import write_json

    out = Path(out_dir)
    earlier = {}
    if not start_from:
        earlier['stage1'] = train(out / 'stage1', adjust(first))
        start_from = str(out / 'stage1' / weights_file)
    for number, make in enumerate(later, start=2):
        last = number == len(later) + 1
        stage_out = out if last else out / f'stage{number}'
        metrics = train(stage_out, adjust(make(start_from)))
        if not last:
            earlier[f'stage{number}'] = metrics
            start_from = str(stage_out / weights_file)
    metrics.update(earlier)
    write_json(out / metrics_file, metrics)
    return metrics


def low_res_shares(mask: np.ndarray, side: int) -> np.ndarray:
    """(rows, cols) float32: the share of each cell of SAM's low-res mask grid (``side`` cells
    over the longer side of its padded, square input; the image's part of it) that the (H, W)
    bool ``mask`` covers, by area averaging."""
    rows, cols = (max(1, round(side * n / max(mask.shape))) for n in mask.shape)
    return cv2.resize(mask.astype(np.float32), (cols, rows), interpolation=cv2.INTER_AREA)
