"""Process-wide run settings: one seed for Python, NumPy and torch."""

from __future__ import annotations

import os
import random


def seed_everything(seed: int, *, torch: bool = False) -> None:
    """Seed Python and NumPy (and torch when asked, making CPU runs repeatable)."""
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    import numpy as np

    np.random.seed(seed)
    if torch:
        import torch as _torch

        _torch.manual_seed(seed)
        _torch.use_deterministic_algorithms(True, warn_only=True)
