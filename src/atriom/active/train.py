"""The training loop: Accelerate under a short loop of our own.

Why not Hugging Face ``Trainer``: this project's needs -- curriculum subsets that change per
epoch, multi-clip evaluation with logits averaged per video, resumable checkpoints without
pickle, per-epoch DVC plots -- would each be a callback or subclass fighting Trainer's own
loop; Accelerate gives the parts that are hard to get right (device placement, mixed
precision, gradient accumulation with correct loss scaling and sync at the end of the data,
several processes) and leaves a loop a reader understands in one sitting:

    for each epoch:
        the curriculum picks the available samples; a seeded permutation orders them
        for each micro-batch: forward, (distillation), backward; every k micro-batches: clip, step
        evaluate on validation; keep the best weights; checkpoint; stop early when stuck

Everything that decides the next step -- weights, optimizer, scheduler, RNG, data position,
early-stopping state -- is in each checkpoint, so a run killed at any point and resumed
ends with the same metrics as one that never stopped.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from atriom.active.checkpoint import (
    complete_checkpoints,
    load_checkpoint,
    prune,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from atriom.active.curriculum import Curriculum
from atriom.active.metrics import classification_metrics, confusion_matrix
from atriom.conduit.transforms import combinations, tta_logits
from atriom.errors import ConfigError

#: Per-epoch values early stopping can monitor.
MONITORABLE = ("val_accuracy", "val_macro_f1", "val_loss", "train_loss")


@dataclass
class EarlyStopping:
    """Stop after ``patience`` epochs without an improvement of more than ``min_delta``."""

    mode: str
    patience: int
    min_delta: float
    best: float | None = None
    best_epoch: int = -1
    bad_epochs: int = 0

    def update(self, value: float, epoch: int) -> bool:
        """Record ``value``; return True when it is a new best."""
        improved = (
            self.best is None
            or (self.mode == "max" and value > self.best + self.min_delta)
            or (self.mode == "min" and value < self.best - self.min_delta)
        )
        if improved:
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
        else:
            self.bad_epochs += 1
        return improved

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs >= self.patience


class EpochSampler(torch.utils.data.Sampler[tuple[int, int]]):
    """The training order of an epoch: the curriculum's subset, permuted by ``(seed, epoch)``.

    A pure function of the epoch, so a resumed run sees exactly the order the interrupted one
    would have. It yields ``(epoch, index)``: the epoch travels with each index into the
    DataLoader workers, whose copy of the dataset (persistent workers keep theirs) never
    hears of ``set_epoch``.
    """

    def __init__(self, curriculum: Curriculum, seed: int):
        self.curriculum = curriculum
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def order(self) -> np.ndarray:
        subset = self.curriculum.indices(self.epoch)
        return subset[np.random.default_rng([self.seed, self.epoch]).permutation(len(subset))]

    def __iter__(self):
        return iter([(self.epoch, i) for i in self.order().tolist()])

    def __len__(self) -> int:
        return len(self.curriculum.indices(self.epoch))


@dataclass
class TrainResult:
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_value: float | None = None
    stopped_early: bool = False
    optimizer_steps: int = 0
    train_seconds: float = 0.0
    resumed_from: str | None = None


@torch.no_grad()
def evaluate(
    model, loader, accelerator, class_names: Sequence[str], test_time: Sequence[str] = ()
) -> dict[str, Any]:
    """Loss, accuracy, macro-F1, per-class precision/recall and the confusion matrix.

    Each clip's logits are averaged over the ``test_time`` transform combinations
    (:func:`atriom.conduit.transforms.tta_logits`); views of one video (multi-clip evaluation)
    are merged by averaging their logits. ``n`` counts videos, ``views`` clips,
    ``tta_views`` the transformed copies of each clip. Results are gathered from every process.
    """
    model.eval()
    logits: dict[int, list[torch.Tensor]] = {}
    labels: dict[int, int] = {}
    for batch in loader:
        output = tta_logits(model, batch["pixel_values"], test_time)
        gathered = accelerator.gather_for_metrics((batch["sample"], batch["labels"], output))
        for sample, label, row in zip(*(t.cpu() for t in gathered), strict=True):
            logits.setdefault(int(sample), []).append(row)
            labels[int(sample)] = int(label)
    samples = sorted(logits)
    mean_logits = torch.stack([torch.stack(logits[s]).mean(0) for s in samples])
    y_true = torch.tensor([labels[s] for s in samples])
    loss = torch.nn.functional.cross_entropy(mean_logits, y_true).item()
    matrix = confusion_matrix(y_true.numpy(), mean_logits.argmax(-1).numpy(), len(class_names))
    return {
        "loss": float(loss),
        "n": len(samples),
        "views": int(sum(len(v) for v in logits.values())),
        "tta_views": len(combinations(test_time)),
        **classification_metrics(matrix, class_names),
        "confusion_matrix": matrix.tolist(),
    }


def trainable_state(model) -> dict[str, torch.Tensor]:
    return {
        name: p.detach().cpu().clone() for name, p in model.named_parameters() if p.requires_grad
    }


def distillation_loss(student_logits, teacher_logits, labels, temperature: float, weight: float):
    """(1 - w) * cross-entropy + w * T^2 * KL(teacher_T || student_T)."""
    hard = torch.nn.functional.cross_entropy(student_logits, labels)
    soft = torch.nn.functional.kl_div(
        torch.nn.functional.log_softmax(student_logits / temperature, dim=-1),
        torch.nn.functional.softmax(teacher_logits / temperature, dim=-1),
        reduction="batchmean",
    )
    return (1.0 - weight) * hard + weight * temperature**2 * soft


class Trainer:
    """One training run: state, loop, checkpoints. ``fit()`` leaves the best weights loaded."""

    def __init__(
        self,
        model,
        train_dataset,
        val_loader,
        *,
        accelerator,
        cfg,
        class_names: Sequence[str],
        curriculum: Curriculum,
        per_device_batch_size: int,
        num_workers: int,
        seed: int,
        run_dir: Path | None,
        teacher=None,
        test_time: Sequence[str] = (),
        on_epoch: Callable[[int, dict[str, float]], None] | None = None,
        on_step: Callable[[int, float], None] | None = None,
    ):
        from transformers import get_cosine_schedule_with_warmup

        self.cfg = cfg
        self.accelerator = accelerator
        self.class_names = list(class_names)
        self.curriculum = curriculum
        self.run_dir = run_dir
        self.test_time = list(test_time)
        self.on_epoch, self.on_step = on_epoch, on_step
        self.metric = cfg.early_stopping.metric
        if self.metric not in MONITORABLE:
            raise ConfigError(
                f"active.early_stopping.metric: {self.metric!r} is not one of {list(MONITORABLE)}."
            )
        self.sampler = EpochSampler(curriculum, seed)
        loader = torch.utils.data.DataLoader(
            train_dataset,
            batch_size=per_device_batch_size,
            sampler=self.sampler,
            num_workers=num_workers,
            persistent_workers=num_workers > 0,
            # Its own generator: starting worker iterators must not draw from the global torch
            # RNG (dropout's), or a resumed run would see other dropout masks.
            generator=torch.Generator().manual_seed(seed),
        )
        accumulation = accelerator.gradient_accumulation_steps
        # Steps per epoch when every sample is available: the schedule spans the full run.
        full_batches = math.ceil(
            len(train_dataset) / (per_device_batch_size * accelerator.num_processes)
        )
        total_steps = math.ceil(full_batches / accumulation) * cfg.epochs
        optimizer = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad],
            lr=cfg.lr,
            weight_decay=cfg.weight_decay,
        )
        scheduler = get_cosine_schedule_with_warmup(
            optimizer, int(cfg.warmup_ratio * total_steps), total_steps
        )
        self.model, self.optimizer, self.train_loader, self.val_loader, self.scheduler = (
            accelerator.prepare(model, optimizer, loader, val_loader, scheduler)
        )
        self.teacher = (
            accelerator.prepare_model(teacher, evaluation_mode=True)
            if teacher is not None
            else None
        )
        self.stopper = EarlyStopping(
            cfg.early_stopping.mode, cfg.early_stopping.patience, cfg.early_stopping.min_delta
        )
        self.result = TrainResult()
        self.best_state = trainable_state(accelerator.unwrap_model(self.model))
        self.epoch = 0
        self.batches_done = 0
        self.epoch_loss = 0.0
        self.epoch_seen = 0

    # -- checkpoints ---------------------------------------------------------------------

    def _state(self) -> dict[str, Any]:
        return {
            "trainable": trainable_state(self.accelerator.unwrap_model(self.model)),
            "best": self.best_state,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": rng_state(),
            "position": {
                "epoch": self.epoch,
                "batches_done": self.batches_done,
                "epoch_loss": self.epoch_loss,
                "epoch_seen": self.epoch_seen,
                "optimizer_steps": self.result.optimizer_steps,
            },
            "early_stopping": asdict(self.stopper),
            "history": self.result.history,
        }

    def checkpoint(self) -> None:
        if self.run_dir is None:
            return
        self.accelerator.wait_for_everyone()
        if self.accelerator.is_main_process:
            save_checkpoint(self.run_dir, f"step_{self.result.optimizer_steps:07d}", self._state())
            prune(self.run_dir, self.cfg.checkpoint.keep)
        self.accelerator.wait_for_everyone()

    def resume(self, path: Path) -> None:
        state = load_checkpoint(path)
        unwrapped = self.accelerator.unwrap_model(self.model)
        unwrapped.load_state_dict(state["trainable"], strict=False)
        self.best_state = state["best"]
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        set_rng_state(state["rng"])
        position = state["position"]
        self.epoch, self.batches_done = position["epoch"], position["batches_done"]
        self.epoch_loss, self.epoch_seen = position["epoch_loss"], position["epoch_seen"]
        self.result.optimizer_steps = position["optimizer_steps"]
        self.stopper = EarlyStopping(**state["early_stopping"])
        self.result.history = list(state["history"])
        self.result.resumed_from = path.name

    # -- the loop ------------------------------------------------------------------------

    def _loss(self, batch):
        output = self.model(pixel_values=batch["pixel_values"], labels=batch["labels"])
        if self.teacher is None:
            return output.loss
        with torch.no_grad():
            teacher_logits = self.teacher(pixel_values=batch["pixel_values"]).logits
        distill = self.cfg.distill
        return distillation_loss(
            output.logits, teacher_logits, batch["labels"], distill.temperature, distill.weight
        )

    def _train_epoch(self) -> None:
        accelerator, every = self.accelerator, self.cfg.checkpoint.every_steps
        # Through the prepared loader: Accelerate re-sets the sampler's and dataset's epoch
        # from its own iteration counter on every pass, which must be *our* epoch (a resumed
        # run's loader has counted fewer passes).
        self.train_loader.set_epoch(self.epoch)
        self.model.train()
        loader = self.train_loader
        if self.batches_done:
            loader = accelerator.skip_first_batches(loader, self.batches_done)
            loader.set_epoch(self.epoch)
        for batch in loader:
            with accelerator.accumulate(self.model):
                loss = self._loss(batch)
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(self.model.parameters(), self.cfg.max_grad_norm)
                self.optimizer.step()
                self.scheduler.step()
                self.optimizer.zero_grad()
            self.batches_done += 1
            self.epoch_loss += float(loss.detach()) * len(batch["labels"])
            self.epoch_seen += len(batch["labels"])
            if accelerator.sync_gradients:
                self.result.optimizer_steps += 1
                if self.on_step:
                    self.on_step(self.result.optimizer_steps, float(loss.detach()))
                if every and self.result.optimizer_steps % every == 0:
                    self.checkpoint()

    def fit(self) -> TrainResult:
        started = time.perf_counter()
        while self.epoch < self.cfg.epochs and not self.stopper.should_stop:
            self._train_epoch()
            val = evaluate(
                self.model, self.val_loader, self.accelerator, self.class_names, self.test_time
            )
            row = {
                "epoch": self.epoch,
                "train_loss": self.epoch_loss / max(self.epoch_seen, 1),
                "val_loss": val["loss"],
                "val_accuracy": val["accuracy"],
                "val_macro_f1": val["macro_f1"],
                "lr": float(self.scheduler.get_last_lr()[0]),
                "curriculum_fraction": self.curriculum.fraction(self.epoch),
            }
            self.result.history.append(row)
            if self.stopper.update(row[self.metric], self.epoch):
                self.best_state = trainable_state(self.accelerator.unwrap_model(self.model))
            if self.on_epoch:
                self.on_epoch(self.epoch, row)
            self.epoch += 1
            self.batches_done, self.epoch_loss, self.epoch_seen = 0, 0.0, 0
            self.checkpoint()
        self.result.stopped_early = self.stopper.should_stop and self.epoch < self.cfg.epochs
        self.result.train_seconds = time.perf_counter() - started
        self.result.best_epoch, self.result.best_value = self.stopper.best_epoch, self.stopper.best
        self.accelerator.unwrap_model(self.model).load_state_dict(self.best_state, strict=False)
        return self.result


def newest_checkpoint(run_dir: Path) -> Path | None:
    done = complete_checkpoints(run_dir)
    return done[-1] if done else None
