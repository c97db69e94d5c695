"""A torch ``Dataset`` that decodes clips on the fly (in DataLoader workers).

Nothing is preloaded: each item reads only its clip's frames from the video file, so memory
stays flat however many clips the index holds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from atriom.conduit.sampling import random_segment
from atriom.video import read_frames


class ClipDataset(torch.utils.data.Dataset):
    """Items are ``{"pixel_values": float32 (T, 3, S, S), "labels": int64}``.

    ``train=True`` draws a random segment per item and epoch (seeded by ``(seed, epoch,
    index)``, so runs repeat) and flips frames horizontally at random; otherwise the
    clip index's fixed frames are used.
    """

    def __init__(
        self,
        rows: Sequence[Mapping[str, Any]],
        root: Path,
        *,
        num_frames: int,
        stride: int,
        image_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        train: bool = False,
        seed: int = 0,
    ):
        self.rows = list(rows)
        self.root = Path(root)
        self.num_frames = num_frames
        self.stride = stride
        self.image_size = image_size
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self.train = train
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.rows)

    def frame_indices(self, index: int) -> list[int]:
        row = self.rows[index]
        if not self.train:
            return list(row["frames"])
        rng = np.random.default_rng([self.seed, self.epoch, index])
        return random_segment(int(row["video_frames"]), self.num_frames, self.stride, rng)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        row = self.rows[index]
        frames = read_frames(self.root / row["path"], self.frame_indices(index))
        video = torch.from_numpy(frames).permute(0, 3, 1, 2).float().div_(255.0)
        if video.shape[-1] != self.image_size or video.shape[-2] != self.image_size:
            video = torch.nn.functional.interpolate(
                video,
                size=(self.image_size, self.image_size),
                mode="bilinear",
                align_corners=False,
                antialias=True,
            )
        if self.train:
            rng = np.random.default_rng([self.seed, self.epoch, index, 1])
            if rng.random() < 0.5:
                video = video.flip(-1)
        video = (video - self.mean) / self.std
        return {
            "pixel_values": video.contiguous(),
            "labels": torch.tensor(int(row["label_id"]), dtype=torch.long),
        }
