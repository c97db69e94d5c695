"""An example plug-in: a curriculum difficulty scorer.

Selected with ``active/curriculum=motion_energy``. A scorer is any class with
``score(model, dataset, accelerator) -> numpy array`` (one difficulty per training clip,
higher = harder); ATRIOM calls it once before training.
"""

from __future__ import annotations

import numpy as np


class MotionEnergyScorer:
    """Clips with little motion are hard: nothing moves enough to tell the pattern apart.

    Difficulty = minus the mean absolute difference between consecutive frames (the
    model is not needed, so scoring costs one decode of each clip).
    """

    def __init__(self, limit: int | None = None):
        self.limit = limit

    def score(self, model, dataset, accelerator) -> np.ndarray:
        count = len(dataset) if self.limit is None else min(self.limit, len(dataset))
        energy = np.empty(count, dtype=np.float64)
        for index in range(count):
            video = dataset[index]["pixel_values"]  # (frames, channels, height, width)
            energy[index] = float((video[1:] - video[:-1]).abs().mean())
        return -energy
