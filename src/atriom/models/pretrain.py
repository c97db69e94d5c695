"""Pretrain the tiny VideoMAE base that ships in ``atriom/models/tiny_videomae/``.

Why: LoRA adapts a *pretrained* base. Over a randomly initialised transformer the low-rank
updates have no useful features to steer and the default motion-pattern task stays at
chance; no model hub is reachable in the embedded default, so the base is made here, from a
seed, on CPU, in minutes, and shipped with the package.

The pretext task is *motion estimation on random walks*, not the default task. A shape
(circle, square, triangle, ring, cross, diamond, bar) moves over a noisy background with
static distractors: in a straight line, with one sharp turn, along a gentle curve, or
erratically (reversals, speed changes, bounces off the walls). From 8 frames the model
predicts clip-level facts of the walk -- the compass heading (8 classes) of the first half,
of the second half and of the whole, how straight it is (net displacement / path length: 3
classes) and how fast (3 classes) -- and, per token, whether the shape's centre is in that
patch and, if so, where it heads next and how it turns (dense targets: they teach the tokens
to localise the shape, which the clip-level loss alone learns slowly). The default task's
labels (linear, circular, oscillate, zigzag, jitter) are fixed trajectory families; none of
them is a pretext class or trajectory generator, so the base learns to *see* motion and the
fine-tuning learns what a pattern is.

The architecture follows measurements (see the model card): 64x64 inputs of 8 frames, cut
into 8x8 patches x 4-frame tubelets (a 16x16 patch / 2-frame tubelet base learns motion far
more slowly: each token must see the shape move).

One ``VideoMAEForVideoClassification`` does it all: its classifier emits the concatenated
logits of every clip head (loss: mean cross-entropy over heads), a throw-away linear layer
on the last hidden states gives the dense targets. Only the backbone and ``fc_norm`` (the
mean-pooling LayerNorm) are kept: the pretext classifier and the dense layer are dropped
from the saved weights, so ``from_pretrained(dir, num_labels=N,
ignore_mismatched_sizes=True)`` creates a fresh head for the downstream classes.

Usage::

    python -m atriom.models.pretrain --out src/atriom/models/tiny_videomae --seed 0
    python -m atriom.models.pretrain --out /tmp/smoke --quick    # one tiny epoch, < 60 s

Everything (data, initialisation, order) is drawn from ``--seed``: on CPU the same command
gives the same weights.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import random
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: Compass headings in image coordinates, counter-clockwise as seen on screen (y points down,
#: so "N" is up = negative y).
HEADINGS = ("E", "NE", "N", "NW", "W", "SW", "S", "SE")
SPEEDS = ("slow", "medium", "fast")
#: Net displacement / path length: how straight the walk is.
STRAIGHTNESS = ("winding", "bent", "straight")
STRAIGHTNESS_EDGES = (0.4, 0.85)
SHAPES = ("circle", "square", "triangle", "ring", "cross", "diamond", "bar")
#: The clip-level heads the shipped base was trained with.
DEFAULT_HEADS = ("halves", "net_heading", "straightness", "speed")

#: The architecture of the shipped base (VideoMAEConfig keyword arguments).
ARCHITECTURE: dict[str, Any] = {
    "image_size": 64,
    "num_frames": 8,
    "patch_size": 8,
    "tubelet_size": 4,
    "num_channels": 3,
    "hidden_size": 128,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "intermediate_size": 256,
    "hidden_dropout_prob": 0.0,
    "attention_probs_dropout_prob": 0.0,
    "use_mean_pooling": True,
}
#: Pixels are scaled to [0, 1] then normalised with these (the project's model.image_mean/std).
IMAGE_MEAN = (0.5, 0.5, 0.5)
IMAGE_STD = (0.5, 0.5, 0.5)


@dataclass
class PretextConfig:
    """The synthetic pretext world: ranges every clip draws its knobs from."""

    frames: int = 8
    size: int = 64
    step: tuple[float, float] = (2.0, 10.0)  # pixels per frame
    radius: tuple[float, float] = (4.0, 10.0)
    noise: tuple[float, float] = (0.0, 0.08)  # Gaussian pixel noise, fraction of 255
    distractors: tuple[int, int] = (0, 2)  # static shapes
    shapes: tuple[str, ...] = SHAPES
    heads: tuple[str, ...] = field(default=DEFAULT_HEADS)
    #: Also supervise every token: is the shape's centre in this patch at the tubelet's first
    #: frame, and where does it head next (0 = no, 1 + heading index)?
    dense: bool = True
    patch: int = 8
    tubelet: int = 4

    def dense_tokens(self) -> int:
        return (self.frames // self.tubelet) * (self.size // self.patch) ** 2

    def head_sizes(self) -> list[tuple[str, int, bool]]:
        """``(name, classes, soft)`` of every clip head, in logit order.

        ``soft`` heads predict a distribution (a histogram over the clip's steps, trained
        with soft-target cross-entropy); the others one class.
        """
        n = len(HEADINGS)
        sizes: list[tuple[str, int, bool]] = []
        for head in self.heads:
            if head == "headings":
                sizes += [(f"heading_step{t + 1}", n, False) for t in range(self.frames - 1)]
            elif head == "turns":
                sizes += [(f"turn_step{t + 1}", n, False) for t in range(self.frames - 2)]
            elif head in ("heading_hist", "turn_hist"):
                sizes.append((head, n, True))
            elif head == "net_heading":
                sizes.append(("net_heading", n, False))
            elif head == "halves":
                sizes += [("first_half_heading", n, False), ("second_half_heading", n, False)]
            elif head == "straightness":
                sizes.append(("straightness", len(STRAIGHTNESS), False))
            elif head == "speed":
                sizes.append(("speed", len(SPEEDS), False))
            else:
                raise ValueError(f"unknown pretext head {head!r}")
        return sizes

    def label_columns(self) -> int:
        """Label entries per clip: one per class head, ``classes`` counts per soft head."""
        return sum(n if soft else 1 for _, n, soft in self.head_sizes())


# --------------------------------------------------------------------------------------
# The synthetic pretext data
# --------------------------------------------------------------------------------------


def heading_bin(dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """The nearest of the 8 compass headings (index into :data:`HEADINGS`) of ``(dx, dy)``."""
    angle = np.arctan2(-dy, dx)  # screen y points down: negate for counter-clockwise angles
    return np.round(angle / (math.pi / 4)).astype(np.int64) % len(HEADINGS)


def random_walk(
    rng: np.random.Generator, cfg: PretextConfig, margin: float
) -> tuple[np.ndarray, float]:
    """Positions ``(frames, 2)`` of a random walk, and its nominal step length.

    Each clip draws its own character: a straight line, a line with one sharp turn, a gentle
    curve, or erratic turns, sometimes with reversals and speed changes. Walls reflect the
    walk, so it never leaves the frame.
    """
    lo, hi = margin, cfg.size - 1 - margin
    step = rng.uniform(*cfg.step)
    theta = rng.uniform(0, 2 * math.pi)
    style = int(rng.integers(0, 4))  # straight, one turn, curving, erratic
    turn_sd = (0.0, 0.0, rng.uniform(0.1, 0.6), rng.uniform(0.8, 2.5))[style]
    bias = rng.uniform(-1.2, 1.2) if style == 2 and rng.random() < 0.6 else 0.0
    turn_at = int(rng.integers(1, cfg.frames - 1)) if style == 1 else -1
    p_reverse = rng.uniform(0.1, 0.5) if style >= 2 and rng.random() < 0.3 else 0.0
    speed_sd = rng.uniform(0.0, 0.4) if style >= 2 and rng.random() < 0.5 else 0.0
    if style == 0:  # a straight line that fits in the frame: no bounce
        step = min(step, 0.9 * (hi - lo) / (cfg.frames - 1))
        delta = step * (cfg.frames - 1) * np.array([math.cos(theta), -math.sin(theta)])
        start_lo = lo - np.minimum(delta, 0.0)
        start_hi = hi - np.maximum(delta, 0.0)
        position = rng.uniform(start_lo, np.maximum(start_lo, start_hi))
    else:
        position = rng.uniform(lo, hi, size=2)
    path = [position.copy()]
    for t in range(cfg.frames - 1):
        if t == turn_at:
            theta += rng.choice([-1.0, 1.0]) * rng.uniform(math.pi / 4, math.pi)
        length = step * math.exp(rng.normal(0.0, speed_sd)) if speed_sd else step
        length = min(max(length, 0.75 * cfg.step[0]), 1.25 * cfg.step[1])
        move = length * np.array([math.cos(theta), -math.sin(theta)])
        nxt = position + move
        for axis in range(2):  # reflect off the walls
            if nxt[axis] < lo:
                nxt[axis] = 2 * lo - nxt[axis]
                move[axis] = -move[axis]
            elif nxt[axis] > hi:
                nxt[axis] = 2 * hi - nxt[axis]
                move[axis] = -move[axis]
        nxt = np.clip(nxt, lo, hi)
        theta = math.atan2(-move[1], move[0])
        theta += bias + rng.normal(0.0, turn_sd) if turn_sd else bias
        if p_reverse and rng.random() < p_reverse:
            theta += math.pi
        position = nxt
        path.append(position.copy())
    return np.stack(path), step


_GRID: dict[int, tuple[np.ndarray, np.ndarray]] = {}


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    if size not in _GRID:
        yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
        _GRID[size] = (yy, xx)
    return _GRID[size]


def shape_mask(
    kind: str, centres: np.ndarray, radius: float, size: int, angle: float = 0.0
) -> np.ndarray:
    """Boolean masks ``(len(centres), size, size)`` of a shape drawn at every centre."""
    yy, xx = _grid(size)
    dx = xx[None] - centres[:, 0, None, None].astype(np.float32)
    dy = yy[None] - centres[:, 1, None, None].astype(np.float32)
    if angle:
        c, s = math.cos(angle), math.sin(angle)
        dx, dy = c * dx + s * dy, -s * dx + c * dy
    r = radius
    if kind == "circle":
        return dx * dx + dy * dy <= r * r
    if kind == "square":
        return np.maximum(np.abs(dx), np.abs(dy)) <= 0.85 * r
    if kind == "diamond":
        return np.abs(dx) + np.abs(dy) <= 1.15 * r
    if kind == "ring":
        d2 = dx * dx + dy * dy
        return (d2 <= r * r) & (d2 >= (0.55 * r) ** 2)
    if kind == "cross":
        ax, ay = np.abs(dx), np.abs(dy)
        return ((ax <= 0.3 * r) & (ay <= r)) | ((ay <= 0.3 * r) & (ax <= r))
    if kind == "triangle":  # apex up, base at 0.6 r below the centre
        return (dy <= 0.6 * r) & (np.abs(dx) <= (dy + r) * 0.6)
    if kind == "bar":
        return (np.abs(dx) <= r) & (np.abs(dy) <= 0.4 * r)
    raise ValueError(f"unknown shape {kind!r}")


def render_pretext_clip(
    rng: np.random.Generator, cfg: PretextConfig
) -> tuple[np.ndarray, np.ndarray]:
    """One clip ``(frames, size, size, 3)`` uint8 and its labels (one per head, in order)."""
    size = cfg.size
    radius = rng.uniform(*cfg.radius)
    path, step = random_walk(rng, cfg, margin=math.ceil(radius))
    background = rng.uniform(0, 90, size=3).astype(np.float32)
    colour = rng.uniform(120, 255, size=3).astype(np.float32)
    kind = str(rng.choice(cfg.shapes))
    angle = rng.uniform(0, 2 * math.pi) if rng.random() < 0.5 else 0.0
    canvas = np.empty((cfg.frames, size, size, 3), dtype=np.float32)
    canvas[:] = background
    for _ in range(int(rng.integers(cfg.distractors[0], cfg.distractors[1] + 1))):
        r = rng.uniform(0.5, 1.0) * radius
        centre = rng.uniform(r, size - 1 - r, size=(1, 2))
        mask = shape_mask(str(rng.choice(cfg.shapes)), centre, r, size)[0]
        canvas[:, mask] = rng.uniform(60, 220, size=3).astype(np.float32)
    canvas[shape_mask(kind, path, radius, size, angle)] = colour
    noise = rng.uniform(*cfg.noise)
    if noise > 0:
        canvas += rng.standard_normal(canvas.shape, dtype=np.float32) * np.float32(noise * 255)
    clip = np.clip(canvas, 0, 255).astype(np.uint8)

    deltas = np.diff(path, axis=0)
    headings = heading_bin(deltas[:, 0], deltas[:, 1])
    turns = np.diff(headings) % len(HEADINGS)
    labels: list[int] = []
    for head in cfg.heads:
        if head == "headings":
            labels += headings.tolist()
        elif head == "turns":
            labels += turns.tolist()
        elif head == "heading_hist":
            labels += np.bincount(headings, minlength=len(HEADINGS)).tolist()
        elif head == "turn_hist":
            labels += np.bincount(turns, minlength=len(HEADINGS)).tolist()
        elif head == "net_heading":
            net = path[-1] - path[0]
            labels.append(int(heading_bin(net[:1], net[1:])[0]))
        elif head == "halves":
            half = cfg.frames // 2
            for a, b in ((0, half - 1), (half, cfg.frames - 1)):
                move = path[b] - path[a]
                labels.append(int(heading_bin(move[:1], move[1:])[0]))
        elif head == "straightness":
            length = float(np.linalg.norm(deltas, axis=1).sum())
            ratio = float(np.linalg.norm(path[-1] - path[0])) / max(length, 1e-6)
            labels.append(int(np.searchsorted(STRAIGHTNESS_EDGES, ratio)))
        elif head == "speed":
            fraction = (step - cfg.step[0]) / (cfg.step[1] - cfg.step[0])
            labels.append(min(int(fraction * len(SPEEDS)), len(SPEEDS) - 1))
    if cfg.dense:
        labels += dense_labels(path, cfg).tolist()
    return clip, np.asarray(labels, dtype=np.int64)


def dense_labels(path: np.ndarray, cfg: PretextConfig) -> np.ndarray:
    """Two targets per token (tubelet-major, then row, column), 0 where the shape is not.

    Where the shape's centre is at the tubelet's first frame: 1 + the heading of its move to
    the next tubelet, and 1 + the turn it makes inside the tubelet (the heading change
    between the move into its second frame and the move out of it).
    """
    grid = cfg.size // cfg.patch
    steps = cfg.frames // cfg.tubelet
    moves = np.zeros((steps, grid, grid), dtype=np.int64)
    turns = np.zeros((steps, grid, grid), dtype=np.int64)
    deltas = np.diff(path, axis=0)
    headings = heading_bin(deltas[:, 0], deltas[:, 1])
    for tau in range(steps):
        first = tau * cfg.tubelet
        nxt = min(first + cfg.tubelet, cfg.frames - 1)
        x, y = path[first]
        row = min(int(y // cfg.patch), grid - 1)
        col = min(int(x // cfg.patch), grid - 1)
        move = path[nxt] - path[first]
        moves[tau, row, col] = 1 + int(heading_bin(move[:1], move[1:])[0])
        middle = min(first + 1, len(headings) - 1)  # the turn at frame first + 1
        turns[tau, row, col] = 1 + int((headings[middle] - headings[middle - 1]) % len(HEADINGS))
    return np.concatenate([moves.ravel(), turns.ravel()])


class PretextClips:
    """A map-style dataset of rendered clips: item ``i`` of ``epoch`` is drawn from its own
    generator seeded by ``(seed, stream, epoch, i)``, so data never depend on batch order or
    on the number of loader workers, and every epoch sees fresh clips."""

    def __init__(self, cfg: PretextConfig, length: int, seed: int, stream: int, fixed: bool):
        self.cfg, self.length, self.seed, self.stream, self.fixed = cfg, length, seed, stream, fixed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int):
        import torch

        epoch = 0 if self.fixed else self.epoch
        rng = np.random.default_rng([self.seed, self.stream, epoch, index])
        clip, labels = render_pretext_clip(rng, self.cfg)
        return torch.from_numpy(clip), torch.from_numpy(labels)


def to_pixel_values(clips):
    """uint8 ``(B, T, H, W, 3)`` -> normalised float ``(B, T, 3, H, W)`` as the model expects."""
    import torch

    mean = torch.tensor(IMAGE_MEAN).view(1, 1, 3, 1, 1)
    std = torch.tensor(IMAGE_STD).view(1, 1, 3, 1, 1)
    video = clips.permute(0, 1, 4, 2, 3).float().div_(255.0)
    return (video - mean) / std


# --------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------


@dataclass
class PretrainSettings:
    epochs: int = 10
    clips_per_epoch: int = 6000
    val_clips: int = 1000
    batch_size: int = 32
    lr: float = 2.0e-3
    weight_decay: float = 0.05
    warmup_ratio: float = 0.05
    max_grad_norm: float = 1.0
    workers: int = 1
    threads: int = 1


def pretext_loss(model, dense_head, clips, labels, sizes: Sequence[tuple[str, int, bool]]):
    """Mean cross-entropy over the clip heads (+ the dense token losses).

    Returns the loss and, per clip head, whether the prediction (argmax) hit the label (for
    soft heads: the histogram's mode).
    """
    import torch
    import torch.nn.functional as F

    pixel_values = to_pixel_values(clips)
    if dense_head is None:
        logits = model(pixel_values=pixel_values).logits
    else:
        tokens = model.videomae(pixel_values=pixel_values).last_hidden_state
        logits = model.classifier(model.fc_norm(tokens.mean(1)))
    losses, hits, start, column = [], [], 0, 0
    for _, n, soft in sizes:
        chunk = logits[:, start : start + n]
        if soft:
            counts = labels[:, column : column + n].float()
            losses.append(F.cross_entropy(chunk, counts / counts.sum(1, keepdim=True)))
            hits.append(chunk.argmax(-1) == counts.argmax(-1))
            column += n
        else:
            losses.append(F.cross_entropy(chunk, labels[:, column]))
            hits.append(chunk.argmax(-1) == labels[:, column])
            column += 1
        start += n
    loss = torch.stack(losses).mean()
    if dense_head is not None:
        dense = dense_head(tokens)  # (batch, tokens, 2 * (1 + headings))
        target = labels[:, column:].reshape(len(labels), 2, -1)
        classes = dense.shape[-1] // 2
        for k in range(2):
            chunk = dense[..., k * classes : (k + 1) * classes]
            loss = loss + 0.5 * F.cross_entropy(
                chunk.reshape(-1, classes), target[:, k].reshape(-1)
            )
    return loss, torch.stack(hits, dim=1)


def _evaluate(model, dense_head, loader, sizes) -> dict[str, float]:
    import torch

    model.eval()
    correct = None
    total, loss_sum = 0, 0.0
    with torch.no_grad():
        for clips, labels in loader:
            loss, hit = pretext_loss(model, dense_head, clips, labels, sizes)
            hits = hit.sum(0).double()
            correct = hits if correct is None else correct + hits
            total += len(labels)
            loss_sum += float(loss) * len(labels)
    per_head = (correct / total).tolist()
    return _summary(per_head, sizes, loss_sum / total)


def _summary(per_head: Sequence[float], sizes, loss: float) -> dict[str, Any]:
    names = [name for name, *_ in sizes]
    headings = [a for a, name in zip(per_head, names, strict=True) if name.startswith("heading")]
    out: dict[str, Any] = {
        "loss": round(loss, 4),
        "accuracy": round(float(np.mean(per_head)), 4),
        "per_head": {name: round(a, 4) for name, a in zip(names, per_head, strict=True)},
    }
    if headings:
        out["heading_accuracy"] = round(float(np.mean(headings)), 4)
    return out


def seed_all(seed: int) -> None:
    """One seed for Python, NumPy and torch; deterministic kernels on CPU."""
    import torch

    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def build_model(num_labels: int, seed: int, architecture: dict[str, Any] | None = None):
    """A fresh ``VideoMAEForVideoClassification`` of ``architecture`` (default
    :data:`ARCHITECTURE`; no download)."""
    import torch
    from transformers import VideoMAEConfig, VideoMAEForVideoClassification

    torch.manual_seed(seed)
    config = VideoMAEConfig(**(architecture or ARCHITECTURE), num_labels=num_labels)
    return VideoMAEForVideoClassification(config)


def pretrain(
    out: Path,
    *,
    seed: int = 0,
    settings: PretrainSettings | None = None,
    pretext: PretextConfig | None = None,
    architecture: dict[str, Any] | None = None,
    command: str = "",
    log=lambda message: print(message, flush=True),
) -> dict[str, Any]:
    """Pretrain on the pretext task and save the base (head removed) into ``out``.

    ``architecture``: VideoMAEConfig keywords (default :data:`ARCHITECTURE`, the shipped base).
    """
    import torch
    import transformers

    settings = settings or PretrainSettings()
    pretext = pretext or PretextConfig()
    architecture = dict(architecture or ARCHITECTURE)
    sizes = pretext.head_sizes()
    started = time.perf_counter()
    torch.set_num_threads(settings.threads)
    seed_all(seed)

    model = build_model(sum(n for _, n, _ in sizes), seed, architecture)
    dense_head = (
        torch.nn.Linear(model.config.hidden_size, 2 * (1 + len(HEADINGS)))
        if pretext.dense
        else None
    )
    train_set = PretextClips(pretext, settings.clips_per_epoch, seed, stream=1, fixed=False)
    val_set = PretextClips(pretext, settings.val_clips, seed, stream=2, fixed=True)
    workers = settings.workers
    loader_kw: dict[str, Any] = {"num_workers": workers}
    if workers:
        # Not persistent: workers are forked anew each epoch and so see `set_epoch`.
        loader_kw |= {"prefetch_factor": 4}
    train_loader = torch.utils.data.DataLoader(
        train_set,
        batch_size=settings.batch_size,
        shuffle=False,  # every epoch renders new clips: order is already random
        drop_last=True,
        **loader_kw,
    )
    val_loader = torch.utils.data.DataLoader(val_set, batch_size=64, **loader_kw)

    steps = settings.epochs * len(train_loader)
    decay, no_decay = [], []
    named = list(model.named_parameters())
    if dense_head is not None:
        named += [(f"dense_head.{n}", p) for n, p in dense_head.named_parameters()]
    for name, parameter in named:
        (no_decay if parameter.ndim < 2 or "norm" in name else decay).append(parameter)
    optimizer = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": settings.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=settings.lr,
    )
    scheduler = transformers.get_cosine_schedule_with_warmup(
        optimizer, max(1, int(settings.warmup_ratio * steps)), steps
    )

    history = []
    for epoch in range(settings.epochs):
        train_set.set_epoch(epoch)
        model.train()
        epoch_started = time.perf_counter()
        loss_sum, seen, correct = 0.0, 0, None
        for clips, labels in train_loader:
            loss, hit = pretext_loss(model, dense_head, clips, labels, sizes)
            loss.backward()
            torch.nn.utils.clip_grad_norm_([p for _, p in named], settings.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            loss_sum += float(loss.detach()) * len(labels)
            seen += len(labels)
            hits = hit.sum(0).double()
            correct = hits if correct is None else correct + hits
        train = _summary((correct / seen).tolist(), sizes, loss_sum / seen)
        val = _evaluate(model, dense_head, val_loader, sizes)
        row = {
            "epoch": epoch,
            "train_loss": train["loss"],
            "train_accuracy": train["accuracy"],
            "val_loss": val["loss"],
            "val_accuracy": val["accuracy"],
            "seconds": round(time.perf_counter() - epoch_started, 1),
        }
        history.append(row)
        log(json.dumps(row))
    final_train = train
    final_val = val
    wall = time.perf_counter() - started

    save_base(model, out, sizes=sizes)
    provenance = {
        "name": "tiny_videomae",
        "command": command,
        "seed": seed,
        "epochs": settings.epochs,
        "settings": asdict(settings),
        "pretext": {
            "task": "motion estimation on synthetic random walks (not the default task)",
            "description": (
                "A shape (" + ", ".join(pretext.shapes) + ") on a noisy background with "
                "static distractor shapes takes a random walk (straight, curving or erratic "
                "turns, reversals, speed changes, bounces off the walls). From 8 frames the "
                "model predicts the compass heading of every step between consecutive frames "
                "and the walk's speed class; loss = mean cross-entropy over the heads."
            ),
            "config": asdict(pretext),
            "heads": {name: n for name, n, _ in sizes},
            "classes": {"heading": list(HEADINGS), "speed": list(SPEEDS)},
            "train_clips_seen": settings.epochs * len(train_loader) * settings.batch_size,
            "val_clips": settings.val_clips,
        },
        "head": (
            "The pretext classifier was removed from the saved weights (backbone and fc_norm "
            "kept): from_pretrained(..., num_labels=N, ignore_mismatched_sizes=True) creates a "
            "freshly initialised head for the downstream classes."
        ),
        "architecture": architecture,
        "preprocessing": {
            "frames": pretext.frames,
            "size": pretext.size,
            "rescale": "1/255",
            "image_mean": list(IMAGE_MEAN),
            "image_std": list(IMAGE_STD),
            "layout": "pixel_values (batch, frames, 3, height, width)",
        },
        "final": {"train": final_train, "val": final_val},
        "history": history,
        "parameters": sum(
            p.numel() for name, p in model.named_parameters() if not name.startswith("classifier")
        ),
        "wall_seconds": round(wall, 1),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "numpy": np.__version__,
        },
        "platform": platform.platform(),
        "threads": settings.threads,
        "licence": "Apache-2.0",
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    (out / "provenance.json").write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    log(
        f"saved {out} in {wall:.0f} s: pretext val accuracy {final_val['accuracy']:.3f} "
        f"(train {final_train['accuracy']:.3f})"
    )
    return provenance


def save_base(model, out: Path, *, sizes: Sequence[tuple[str, int]] = ()) -> None:
    """Save backbone + ``fc_norm`` (no pretext head), the config and the preprocessor."""
    from transformers import VideoMAEImageProcessor

    out.mkdir(parents=True, exist_ok=True)
    config = model.config
    # The saved head-less config: downstream code sets num_labels / label names itself.
    config.num_labels = 2
    config.id2label = {0: "LABEL_0", 1: "LABEL_1"}
    config.label2id = {"LABEL_0": 0, "LABEL_1": 1}
    config.architectures = ["VideoMAEForVideoClassification"]
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("classifier.")}
    model.save_pretrained(out, state_dict=state, safe_serialization=True)
    processor = VideoMAEImageProcessor(
        do_resize=True,
        size={"shortest_edge": config.image_size},
        do_center_crop=True,
        crop_size={"height": config.image_size, "width": config.image_size},
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=list(IMAGE_MEAN),
        image_std=list(IMAGE_STD),
    )
    processor.save_pretrained(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m atriom.models.pretrain",
        description="Pretrain the tiny VideoMAE base on a synthetic motion-estimation pretext.",
    )
    parser.add_argument("--out", type=Path, required=True, help="directory to save the base")
    parser.add_argument("--epochs", type=int, default=PretrainSettings.epochs)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--clips-per-epoch", type=int, default=PretrainSettings.clips_per_epoch)
    parser.add_argument("--lr", type=float, default=PretrainSettings.lr)
    parser.add_argument("--workers", type=int, default=PretrainSettings.workers)
    parser.add_argument("--threads", type=int, default=PretrainSettings.threads)
    parser.add_argument(
        "--heads",
        default=",".join(DEFAULT_HEADS),
        help="clip-level pretext heads, comma-separated (default: %(default)s)",
    )
    parser.add_argument(
        "--arch", default="", help="JSON of VideoMAEConfig keys to change (experiments)"
    )
    parser.add_argument(
        "--dense",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="also supervise every token (where the shape is, where it heads)",
    )
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: one tiny epoch (tests), < 60 s"
    )
    args = parser.parse_args(argv)
    settings = PretrainSettings(
        epochs=args.epochs,
        clips_per_epoch=args.clips_per_epoch,
        lr=args.lr,
        workers=args.workers,
        threads=args.threads,
    )
    if args.quick:
        settings.epochs, settings.clips_per_epoch, settings.val_clips = 1, 64, 32
        settings.workers = 0
    architecture = {**ARCHITECTURE, **(json.loads(args.arch) if args.arch else {})}
    pretext = PretextConfig(
        heads=tuple(args.heads.split(",")),
        dense=args.dense,
        patch=architecture["patch_size"],
        tubelet=architecture["tubelet_size"],
    )
    command = " ".join(
        ["python -m atriom.models.pretrain", *(shlex.quote(a) for a in (argv or sys.argv[1:]))]
    )
    pretrain(
        args.out,
        seed=args.seed,
        settings=settings,
        pretext=pretext,
        architecture=architecture,
        command=command,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
