"""A torch ``Dataset`` that decodes clips on the fly (in DataLoader workers).

Nothing is preloaded: each item reads only its clip's frames from the video file, so memory
stays flat however many clips the index holds. Items are
``{"pixel_values": float32 (T, 3, S, S), "labels": int64, "sample": int64}``:

* training items draw their frames per epoch (``sampler.train``: a random segment inside the
  clip's bounds, seeded by ``(seed, epoch, index)`` so runs repeat) and are augmented
  (flips, transpose, time reversal -- see :mod:`atriom.conduit.transforms` -- and
  brightness) as the clip index says;
* evaluation items are the clip index's fixed views -- one per video, or several for
  multi-clip evaluation (``sample`` tells which video a view belongs to, so logits can be
  averaged per video).

Pixels are resized to the model's input size and normalised with its mean and std (from the
collected model's preprocessor config). An optional on-disk cache keeps decoded clips, keyed
by the file's sha256 and the frame indices.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from atriom.conduit.sampling import train_indices
from atriom.conduit.transforms import TRANSFORMS
from atriom.reader import read_frames


class FrameCache:
    """Decoded clips as ``.npy`` files under ``directory/<sha[:2]>/``, written atomically."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)

    def path(self, sha256: str, indices: Sequence[int]) -> Path:
        key = hashlib.sha256(f"{sha256}:{','.join(map(str, indices))}".encode()).hexdigest()[:24]
        return self.directory / sha256[:2] / f"{sha256[:16]}_{key}.npy"

    def get(self, sha256: str, indices: Sequence[int]) -> np.ndarray | None:
        path = self.path(sha256, indices)
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            return None

    def put(self, sha256: str, indices: Sequence[int], frames: np.ndarray) -> None:
        path = self.path(sha256, indices)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            np.save(fh, frames, allow_pickle=False)
        os.replace(tmp, path)


class ClipDataset(torch.utils.data.Dataset):
    def __init__(
        self,
        rows: Sequence[Mapping[str, Any]],
        root: Path,
        *,
        sampler: Mapping[str, Any],
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        train: bool = False,
        augment: Mapping[str, float] | None = None,
        seed: int = 0,
        cache_dir: Path | None = None,
    ):
        self.rows = list(rows)
        self.root = Path(root)
        self.sampler = dict(sampler)
        self.image_size = image_size
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self.train = train
        self.augment = dict(augment or {})
        self.seed = seed
        self.epoch = 0
        self.cache = FrameCache(cache_dir) if cache_dir else None
        # Evaluation items are (row, view) pairs: a flat list of small ints, not clips.
        self.items = (
            [(r, 0) for r in range(len(self.rows))]
            if train
            else [(r, v) for r, row in enumerate(self.rows) for v in range(len(row["views"]))]
        )

    @classmethod
    def from_index(
        cls,
        index: Mapping[str, Any],
        split: str,
        root: Path,
        preprocessing: Mapping[str, Any],
        *,
        seed: int,
        train: bool | None = None,
    ) -> ClipDataset:
        """The dataset of one split of Conduit's ``clip_index.json``."""
        train = split == "train" if train is None else train
        cache = index.get("frame_cache") or {}
        return cls(
            [r for r in index["samples"] if r["split"] == split],
            root,
            sampler=index["sampler"],
            image_size=preprocessing["image_size"],
            mean=preprocessing["image_mean"],
            std=preprocessing["image_std"],
            train=train,
            augment=index.get("augment") if train else None,
            seed=seed,
            cache_dir=(Path(root) / cache["dir"]) if cache.get("enabled") else None,
        )

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.items)

    def frame_indices(self, item: int, epoch: int | None = None) -> list[int]:
        row_index, view = self.items[item]
        row = self.rows[row_index]
        if not self.train:
            return list(row["views"][view])
        epoch = self.epoch if epoch is None else epoch
        rng = np.random.default_rng([self.seed, epoch, item])
        first = int(row.get("first_frame", 0))
        end = int(row.get("end_frame", row["video_frames"]))
        return [first + i for i in train_indices(end - first, self.sampler, rng)]

    def _frames(self, row: Mapping[str, Any], indices: list[int]) -> np.ndarray:
        if self.cache is not None:
            cached = self.cache.get(row["sha256"], indices)
            if cached is not None:
                return cached
        frames = read_frames(self.root / row["path"], indices)
        if self.cache is not None:
            self.cache.put(row["sha256"], indices, frames)
        return frames

    def __getitem__(self, item: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        """``item`` is an index, or ``(epoch, index)`` from a sampler that carries the epoch
        (DataLoader workers hold their own copy of the dataset, deaf to :meth:`set_epoch`)."""
        epoch, item = item if isinstance(item, tuple) else (self.epoch, item)
        row_index, _ = self.items[item]
        row = self.rows[row_index]
        frames = self._frames(row, self.frame_indices(item, epoch))
        video = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div_(255.0)
        if video.shape[-2:] != (self.image_size, self.image_size):
            video = torch.nn.functional.interpolate(
                video,
                size=(self.image_size, self.image_size),
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )
        if self.train and self.augment:
            video = self._augment(video, np.random.default_rng([self.seed, epoch, item, 1]))
        video = (video - self.mean) / self.std
        return {
            "pixel_values": video.contiguous(),
            "labels": torch.tensor(int(row["label_id"]), dtype=torch.long),
            "sample": torch.tensor(int(row["id"]), dtype=torch.long),
        }

    def _augment(self, video: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        # One draw per transform, always in this order, so a setting of 0 leaves the others'
        # draws (and so a run's augmentation) unchanged.
        draws = {name: rng.random() for name in TRANSFORMS}
        for name, draw in draws.items():
            if draw < float(self.augment.get(name, 0.0)):
                video = TRANSFORMS[name](video)
        jitter = self.augment.get("brightness", 0.0)
        if jitter:
            video = (video * float(1.0 + rng.uniform(-jitter, jitter))).clamp_(0.0, 1.0)
        return video
