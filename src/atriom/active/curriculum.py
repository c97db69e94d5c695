"""Curriculum learning: easy samples first, the harder ones let in as training goes on.

Two parts, both chosen in ``conf/active/curriculum/``:

* **difficulty** per training sample: from the dataset manifest (``source: manifest``, a
  numeric field of each clip's ``meta`` such as the synthetic generator's ``difficulty``),
  or from a scorer plug-in (``source: scorer``, ``scorer._target_``; e.g.
  :class:`LossScorer`, the base model's loss on each clip);
* **pacing**: the fraction of the easiest samples available at each epoch -- ``none``
  (everything from the start), ``linear``, ``root`` (fast at first, then slower) or
  ``step`` (a staircase of ``steps`` stairs), growing from ``start`` to 1 at
  ``full_at`` x epochs.

The easiest fraction is taken *within each class*, so no class drops out early.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from atriom.errors import ConfigError, DataError

PACINGS = ("none", "linear", "root", "step")


def pacing_fraction(
    pacing: str, epoch: int, epochs: int, *, start: float, full_at: float, steps: int = 4
) -> float:
    """Fraction of the (per-class) easiest samples available in ``epoch`` (0-based)."""
    if pacing not in PACINGS:
        raise ConfigError(
            f"active.curriculum.pacing must be one of {list(PACINGS)}, got {pacing!r}."
        )
    if pacing == "none":
        return 1.0
    if not 0.0 < start <= 1.0 or not 0.0 < full_at <= 1.0:
        raise ConfigError(
            f"active.curriculum: need 0 < start <= 1 and 0 < full_at <= 1 (got {start}, {full_at})."
        )
    ramp = max(1.0, full_at * epochs)
    progress = min(1.0, epoch / ramp)
    if pacing == "root":
        progress = math.sqrt(progress)
    elif pacing == "step":
        if steps < 1:
            raise ConfigError(f"active.curriculum.steps must be >= 1, got {steps}.")
        progress = math.floor(progress * steps) / steps
    return start + (1.0 - start) * progress


def available(difficulty: np.ndarray, labels: Sequence[int], fraction: float) -> np.ndarray:
    """Indices of the easiest ``fraction`` of samples of each class (at least one per class)."""
    labels = np.asarray(labels)
    keep = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        count = max(1, math.ceil(fraction * len(members)))
        # Stable sort: ties keep index order, so the subset is deterministic.
        order = members[np.argsort(difficulty[members], kind="stable")]
        keep.append(order[:count])
    return np.sort(np.concatenate(keep))


def manifest_difficulty(rows: Sequence[Mapping[str, Any]], key: str) -> np.ndarray:
    """``meta[key]`` of every sample, as floats; a clear error when a sample lacks it."""
    values = []
    for row in rows:
        value = row.get("meta", {}).get(key)
        if value is None:
            raise DataError(
                f"active.curriculum.difficulty.key={key!r}: clip {row.get('clip', row.get('path'))} has no "
                f"meta.{key}. Use a dataset that records it (the synthetic one does), a scorer "
                "(active.curriculum.difficulty.source=scorer), or active/curriculum=none."
            )
        values.append(float(value))
    return np.asarray(values, dtype=np.float64)


class LossScorer:
    """Difficulty = the loss of the model as it is before training (higher = harder).

    A scorer is any object with ``score(model, dataset, accelerator) -> np.ndarray``
    returning one number per dataset item.
    """

    def __init__(self, batch_size: int = 16):
        self.batch_size = batch_size

    def score(self, model, dataset, accelerator) -> np.ndarray:
        import torch

        model.eval()
        losses = []
        loader = torch.utils.data.DataLoader(dataset, batch_size=self.batch_size, shuffle=False)
        with torch.no_grad():
            for batch in loader:
                logits = model(
                    pixel_values=batch["pixel_values"].to(accelerator.device)
                ).logits.float()
                losses.append(
                    torch.nn.functional.cross_entropy(
                        logits, batch["labels"].to(accelerator.device), reduction="none"
                    ).cpu()
                )
        return torch.cat(losses).numpy().astype(np.float64)


class Curriculum:
    """Which training samples each epoch may use, and the fraction that is."""

    def __init__(
        self,
        cfg: Mapping[str, Any],
        difficulty: np.ndarray | None,
        labels: Sequence[int],
        epochs: int,
    ):
        self.cfg = dict(cfg)
        self.difficulty = difficulty
        self.labels = list(labels)
        self.epochs = epochs

    @property
    def enabled(self) -> bool:
        return self.cfg["pacing"] != "none"

    def fraction(self, epoch: int) -> float:
        return pacing_fraction(
            self.cfg["pacing"],
            epoch,
            self.epochs,
            start=self.cfg["start"],
            full_at=self.cfg["full_at"],
            steps=self.cfg["steps"],
        )

    def indices(self, epoch: int) -> np.ndarray:
        if not self.enabled or self.difficulty is None:
            return np.arange(len(self.labels))
        return available(self.difficulty, self.labels, self.fraction(epoch))
