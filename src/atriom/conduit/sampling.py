"""Clip sampling: pure functions from a video's frame count to the frame indices of a clip.

Indices past the end of a short video repeat its last frame, so every clip has exactly
``num_frames`` indices.
"""

from __future__ import annotations

import itertools

import numpy as np


def _check(total: int, num_frames: int, stride: int = 1) -> None:
    if total < 1:
        raise ValueError(f"video has {total} frames; need at least 1")
    if num_frames < 1 or stride < 1:
        raise ValueError(f"num_frames ({num_frames}) and stride ({stride}) must be >= 1")


def _segment(start: int, total: int, num_frames: int, stride: int) -> list[int]:
    return [min(start + i * stride, total - 1) for i in range(num_frames)]


def span(num_frames: int, stride: int) -> int:
    """Frames a segment of ``num_frames`` with ``stride`` covers."""
    return (num_frames - 1) * stride + 1


def uniform(total: int, num_frames: int) -> list[int]:
    """``num_frames`` indices spread evenly over the whole video (centres of equal bins)."""
    _check(total, num_frames)
    edges = np.linspace(0, total, num_frames + 1)
    return [min(int((lo + hi) / 2), total - 1) for lo, hi in itertools.pairwise(edges)]


def centred(total: int, num_frames: int, stride: int) -> list[int]:
    """The segment in the middle of the video (evaluation)."""
    _check(total, num_frames, stride)
    start = max(0, (total - span(num_frames, stride)) // 2)
    return _segment(start, total, num_frames, stride)


def random_segment(total: int, num_frames: int, stride: int, rng: np.random.Generator) -> list[int]:
    """A segment starting at a random frame (training)."""
    _check(total, num_frames, stride)
    last_start = max(0, total - span(num_frames, stride))
    return _segment(int(rng.integers(0, last_start + 1)), total, num_frames, stride)


def multi_clip(total: int, num_frames: int, stride: int, clips: int) -> list[list[int]]:
    """``clips`` segments with evenly spaced starts (evaluation; logits averaged later)."""
    _check(total, num_frames, stride)
    if clips < 1:
        raise ValueError(f"clips ({clips}) must be >= 1")
    last_start = max(0, total - span(num_frames, stride))
    starts = np.linspace(0, last_start, clips) if clips > 1 else [last_start // 2]
    return [_segment(round(s), total, num_frames, stride) for s in starts]


TRAIN_SAMPLERS = ("random_segment", "uniform")
EVAL_SAMPLERS = ("centred", "uniform", "multi_clip")


def train_indices(total: int, sampler: dict, rng: np.random.Generator) -> list[int]:
    """The frames of one training draw, by ``sampler['train']``."""
    if sampler["train"] == "uniform":
        return uniform(total, sampler["num_frames"])
    return random_segment(total, sampler["num_frames"], sampler["stride"], rng)


def eval_views(total: int, sampler: dict) -> list[list[int]]:
    """The fixed evaluation clip(s) of a video, by ``sampler['eval']`` (several for multi_clip)."""
    if sampler["eval"] == "uniform":
        return [uniform(total, sampler["num_frames"])]
    if sampler["eval"] == "multi_clip":
        return multi_clip(total, sampler["num_frames"], sampler["stride"], sampler["eval_clips"])
    return [centred(total, sampler["num_frames"], sampler["stride"])]
