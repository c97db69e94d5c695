"""Label-preserving clip transforms: training augmentation and test-time augmentation (TTA).

A clip is a tensor ``(..., T, C, H, W)`` (one clip or a batch). Each transform is an exact
symmetry of the pixel grid or of time, so it never blurs or crops:

* ``hflip`` -- mirror left-right;
* ``vflip`` -- mirror top-bottom;
* ``transpose`` -- swap the x and y axes (with the flips it spans all 8 rotations and
  reflections of a square frame);
* ``reverse`` -- play the clip backwards.

Whether a transform keeps a clip's label depends on the task: motion patterns such as the
embedded default's (linear, circular, oscillate, zigzag, jitter) survive all four; "swipe
left" does not survive ``hflip``, "sit down" does not survive ``reverse``. Configure them in
``conduit.augment`` (a probability each for training, a list under ``test_time`` for
evaluation and inference).

Test-time augmentation averages the logits of every combination of the listed transforms
(``2**n`` views of each clip, the identity included), as multi-clip evaluation averages the
logits of several segments.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

Transform = Callable[["torch.Tensor"], "torch.Tensor"]

TRANSFORMS: dict[str, Transform] = {
    "hflip": lambda clip: clip.flip(-1),
    "vflip": lambda clip: clip.flip(-2),
    "transpose": lambda clip: clip.transpose(-1, -2),
    "reverse": lambda clip: clip.flip(-4),
}


def check_names(names: Sequence[str], key: str) -> list[str]:
    """``names`` as a list, or :class:`~atriom.errors.ConfigError` naming ``key``."""
    from atriom.errors import ConfigError

    names = list(names)
    unknown = [n for n in names if n not in TRANSFORMS]
    if unknown:
        raise ConfigError(
            f"{key}: unknown transform(s) {unknown}; choose from {sorted(TRANSFORMS)}."
        )
    if len(set(names)) != len(names):
        raise ConfigError(f"{key}: {names} lists a transform twice.")
    return names


def apply(clip: torch.Tensor, names: Sequence[str]) -> torch.Tensor:
    for name in names:
        clip = TRANSFORMS[name](clip)
    return clip


def combinations(names: Sequence[str]) -> list[tuple[str, ...]]:
    """Every subset of ``names`` (the empty one first): the views test-time augmentation sees."""
    names = list(names)
    return [
        combo for size in range(len(names) + 1) for combo in itertools.combinations(names, size)
    ]


def tta_logits(model, pixel_values: torch.Tensor, names: Sequence[str]) -> torch.Tensor:
    """``model``'s logits for ``pixel_values (B, T, C, H, W)``, averaged over every combination
    of the ``names`` transforms (plain logits when ``names`` is empty)."""
    views = combinations(names)
    total = None
    for combo in views:
        logits = model(pixel_values=apply(pixel_values, combo).contiguous()).logits.float()
        total = logits if total is None else total + logits
    return total / len(views)
