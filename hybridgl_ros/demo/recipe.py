"""What the demo-model trainers share: the ``--steps``/``--seed`` overrides and the lr schedule."""
from __future__ import annotations

from dataclasses import replace

import numpy as np


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
