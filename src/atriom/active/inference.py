"""Inference with an exported model directory: video files or frame arrays in, probabilities out.

An exported directory (``merged_model/``) holds a ``save_pretrained`` video classifier, its
preprocessor config and ``inference.json`` (how frames are sampled and normalised, the class
names). :class:`VideoClassifier` is what ``atriom predict`` and the MLflow pyfunc model use,
so the command line and a served model answer identically.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

INFERENCE_FILE = "inference.json"


class VideoClassifier:
    def __init__(self, model, info: dict[str, Any]):
        self.model = model.eval()
        self.info = info
        self.labels: list[str] = list(info["labels"])

    @classmethod
    def load(cls, directory: str | os.PathLike[str]) -> VideoClassifier:
        from transformers import AutoModelForVideoClassification

        directory = Path(directory)
        info = json.loads((directory / INFERENCE_FILE).read_text(encoding="utf-8"))
        return cls(AutoModelForVideoClassification.from_pretrained(directory), info)

    def _views(self, total: int) -> list[list[int]]:
        from atriom.conduit.sampling import eval_views

        return eval_views(total, self.info["sampler"])

    def _tensor(self, frames: np.ndarray):
        import torch

        prep = self.info["preprocessing"]
        size = prep["image_size"]
        video = (
            torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float().div_(255.0)
        )
        if video.shape[-2:] != (size, size):
            video = torch.nn.functional.interpolate(
                video, size=(size, size), mode="bilinear", align_corners=False, antialias=True
            )
        mean = torch.tensor(prep["image_mean"]).view(1, 3, 1, 1)
        std = torch.tensor(prep["image_std"]).view(1, 3, 1, 1)
        return (video - mean) / std

    def predict_frames(self, frames: np.ndarray) -> np.ndarray:
        """Class probabilities for one video given as ``uint8 (T, H, W, 3)`` RGB frames.

        The frames are sampled and transformed the way evaluation did (all views and
        test-time transforms averaged).
        """
        import torch

        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3:
            raise ValueError(f"expected frames shaped (T, H, W, 3), got {frames.shape}")
        views = torch.stack([self._tensor(frames[view]) for view in self._views(len(frames))])
        return self._probabilities(views)

    def _probabilities(self, views) -> np.ndarray:
        """Softmax of the logits averaged over the views and the test-time transforms."""
        import torch

        from atriom.conduit.transforms import tta_logits

        with torch.no_grad():
            logits = tta_logits(self.model, views, self.info.get("test_time", [])).mean(0)
        return torch.softmax(logits, -1).numpy()

    def predict_path(self, path: str | os.PathLike[str]) -> np.ndarray:
        import torch

        from atriom.reader import FrameReader

        with FrameReader(path) as reader:
            views = self._views(reader.num_frames)
            wanted = sorted({i for view in views for i in view})
            decoded = dict(zip(wanted, reader.read(wanted), strict=True))

        batch = torch.stack([self._tensor(np.stack([decoded[i] for i in view])) for view in views])
        return self._probabilities(batch)

    def predict_paths(self, paths: Sequence[str | os.PathLike[str]]) -> np.ndarray:
        return (
            np.stack([self.predict_path(p) for p in paths])
            if paths
            else np.zeros((0, len(self.labels)))
        )
