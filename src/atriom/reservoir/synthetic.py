"""The embedded default dataset: synthetic motion-pattern clips, encoded as real video files.

A coloured shape moves over a noisy background; the *motion pattern* is the label. Start
positions, directions, colours and shapes are random, so one frame does not tell the class
apart: the model has to look at motion. Every clip is drawn from its own generator seeded by
``(seed, class, clip)``, so the same seed always yields byte-identical files and adding clips
never changes existing ones. Per-clip difficulty knobs (speed, shape radius, noise,
distractors) are recorded for curriculum learning.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from atriom.errors import ConfigError
from atriom.reservoir.sources import CollectedClip

Trajectory = Callable[[np.random.Generator, int, int, float, int], np.ndarray]


def _fit_segment(rng: np.random.Generator, size: int, margin: int, delta: np.ndarray) -> np.ndarray:
    """A start point such that ``start + delta`` stays inside the frame."""
    lo = margin - np.minimum(delta, 0.0)
    hi = size - 1 - margin - np.maximum(delta, 0.0)
    return np.array([rng.uniform(lo[i], max(lo[i], hi[i])) for i in range(2)])


def _unit(theta: float) -> np.ndarray:
    return np.array([math.cos(theta), math.sin(theta)])


def linear(
    rng: np.random.Generator, frames: int, size: int, speed: float, margin: int
) -> np.ndarray:
    """Constant velocity along a random direction."""
    direction = _unit(rng.uniform(0, 2 * math.pi))
    span = size - 1 - 2 * margin
    speed = min(speed, 0.9 * span / max(frames - 1, 1))
    delta = direction * speed * (frames - 1)
    start = _fit_segment(rng, size, margin, delta)
    t = np.arange(frames)[:, None]
    return start + direction * speed * t


def circular(
    rng: np.random.Generator, frames: int, size: int, speed: float, margin: int
) -> np.ndarray:
    """An orbit around a random centre, clockwise or anticlockwise."""
    max_radius = (size - 1 - 2 * margin) / 2
    radius = rng.uniform(0.45, 0.8) * max_radius
    centre = np.array([rng.uniform(margin + radius, size - 1 - margin - radius) for _ in range(2)])
    omega = rng.choice([-1.0, 1.0]) * max(speed / radius, 2 * math.pi / frames)
    phase = rng.uniform(0, 2 * math.pi)
    angle = phase + omega * np.arange(frames)
    return centre + radius * np.stack([np.cos(angle), np.sin(angle)], axis=1)


def oscillate(
    rng: np.random.Generator, frames: int, size: int, speed: float, margin: int
) -> np.ndarray:
    """Back and forth along a random axis around a fixed point."""
    axis = _unit(rng.uniform(0, math.pi))
    period = rng.uniform(5.0, 8.0)
    amplitude = min(speed * period / (2 * math.pi) * 1.5 + 4.0, (size - 1 - 2 * margin) / 2)
    centre = _fit_segment(rng, size, margin + int(amplitude), np.zeros(2))
    phase = rng.uniform(0, 2 * math.pi)
    offset = amplitude * np.sin(phase + 2 * math.pi * np.arange(frames) / period)
    return centre + offset[:, None] * axis


def zigzag(
    rng: np.random.Generator, frames: int, size: int, speed: float, margin: int
) -> np.ndarray:
    """Steady drift with a sharp side-to-side triangle wave across it."""
    direction = _unit(rng.uniform(0, 2 * math.pi))
    side = np.array([-direction[1], direction[0]])
    amplitude = rng.uniform(4.0, 7.0)
    period = rng.uniform(4.0, 6.0)
    drift = 0.6 * speed
    t = np.arange(frames)
    wave = amplitude * (4 * np.abs((t / period + rng.uniform()) % 1.0 - 0.5) - 1)
    delta = direction * drift * (frames - 1)
    start = _fit_segment(rng, size, margin + int(amplitude), delta)
    return start + direction * drift * t[:, None] + wave[:, None] * side


def jitter(
    rng: np.random.Generator, frames: int, size: int, speed: float, margin: int
) -> np.ndarray:
    """Random jumps around a fixed point (no direction persists)."""
    reach = min(3.0 * speed + 4.0, (size - 1 - 2 * margin) / 2)
    centre = _fit_segment(rng, size, margin + int(reach), np.zeros(2))
    return centre + rng.uniform(-reach, reach, size=(frames, 2))


PATTERNS: dict[str, Trajectory] = {
    "linear": linear,
    "circular": circular,
    "oscillate": oscillate,
    "zigzag": zigzag,
    "jitter": jitter,
}


def _draw_shape(
    canvas: np.ndarray, centre: np.ndarray, radius: float, colour: np.ndarray, square: bool
) -> None:
    size = canvas.shape[0]
    yy, xx = np.mgrid[0:size, 0:size]
    dx, dy = xx - centre[0], yy - centre[1]
    mask = (
        (np.maximum(np.abs(dx), np.abs(dy)) <= radius * 0.85)
        if square
        else (dx * dx + dy * dy <= radius * radius)
    )
    canvas[mask] = colour


def render_clip(
    rng: np.random.Generator,
    pattern: Trajectory,
    *,
    frames: int,
    size: int,
    speed: float,
    radius: float,
    noise: float,
    distractors: int,
) -> np.ndarray:
    """``(frames, size, size, 3)`` uint8 RGB frames of one clip."""
    margin = math.ceil(radius)
    path = pattern(rng, frames, size, speed, margin)
    background = rng.uniform(10, 60, size=3)
    colour = rng.uniform(150, 255, size=3)
    square = bool(rng.integers(0, 2))
    extras = [
        (
            rng.uniform(margin, size - 1 - margin, size=2),
            rng.uniform(0.5, 1.0) * radius,
            rng.uniform(80, 200, size=3),
            bool(rng.integers(0, 2)),
        )
        for _ in range(distractors)
    ]
    clip = np.empty((frames, size, size, 3), dtype=np.uint8)
    for t in range(frames):
        canvas = np.broadcast_to(background, (size, size, 3)).astype(np.float32)
        for centre, r, c, sq in extras:
            _draw_shape(canvas, centre, r, c, sq)
        _draw_shape(canvas, path[t], radius, colour, square)
        if noise > 0:
            canvas += rng.normal(0.0, noise * 255.0, size=canvas.shape)
        clip[t] = np.clip(canvas, 0, 255).astype(np.uint8)
    return clip


def _normalise(value: float, bounds: Sequence[float]) -> float:
    lo, hi = float(bounds[0]), float(bounds[1])
    return 0.0 if hi <= lo else (value - lo) / (hi - lo)


@dataclass
class SyntheticVideos:
    """Dataset source plug-in: generate ``clips_per_class`` clips for each motion class."""

    classes: Sequence[str]
    clips_per_class: int
    num_frames: int
    size: int
    fps: int
    codec: str = "libx264"
    crf: int = 18
    speed: Sequence[float] = (1.5, 3.5)
    radius: Sequence[float] = (5, 9)
    noise: Sequence[float] = (0.0, 0.06)
    distractors: Sequence[int] = (0, 1)
    licence: str = "Apache-2.0 (generated by atriom's synthetic source)"

    def __post_init__(self) -> None:
        unknown = [c for c in self.classes if c not in PATTERNS]
        if unknown:
            raise ConfigError(
                f"reservoir.dataset.classes: unknown motion pattern(s) {unknown}; "
                f"choose from {sorted(PATTERNS)}."
            )
        if len(set(self.classes)) < 2:
            raise ConfigError("reservoir.dataset.classes: need at least two distinct classes.")
        if self.clips_per_class < 1 or self.num_frames < 2 or self.size < 16 or self.size % 2:
            raise ConfigError(
                "reservoir.dataset: clips_per_class >= 1, num_frames >= 2 and an even size >= 16 are required."
            )

    def knobs(self, rng: np.random.Generator) -> dict[str, float]:
        speed = float(rng.uniform(*self.speed))
        radius = float(rng.uniform(*self.radius))
        noise = float(rng.uniform(*self.noise))
        distractors = int(rng.integers(int(self.distractors[0]), int(self.distractors[1]) + 1))
        # 0 = easiest: fast, large, clean, alone.
        difficulty = float(
            np.mean(
                [
                    1 - _normalise(speed, self.speed),
                    1 - _normalise(radius, self.radius),
                    _normalise(noise, self.noise),
                    _normalise(distractors, self.distractors),
                ]
            )
        )
        return {
            "speed": round(speed, 4),
            "radius": round(radius, 4),
            "noise": round(noise, 4),
            "distractors": distractors,
            "difficulty": round(difficulty, 4),
        }

    def collect(
        self, directory: Path, *, seed: int, root: Path | None = None
    ) -> list[CollectedClip]:
        """Render and encode every clip under ``directory/videos/<class>/``."""
        from atriom.video import write_video

        clips = []
        for class_index, label in enumerate(self.classes):
            for clip_index in range(self.clips_per_class):
                rng = np.random.default_rng([seed, class_index, clip_index])
                knobs = self.knobs(rng)
                frames = render_clip(
                    rng,
                    PATTERNS[label],
                    frames=self.num_frames,
                    size=self.size,
                    speed=knobs["speed"],
                    radius=knobs["radius"],
                    noise=knobs["noise"],
                    distractors=knobs["distractors"],
                )
                path = directory / "videos" / label / f"{label}_{clip_index:04d}.mp4"
                write_video(path, frames, fps=self.fps, codec=self.codec, crf=self.crf)
                clips.append(CollectedClip(path=path, label=label, meta=knobs))
        return clips
