"""The training loop: Accelerate under a short loop of our own.

Accelerate handles the device, mixed precision, gradient accumulation and (later) several
processes; the loop itself stays readable in one sitting: for each epoch, train with
accumulation to the effective batch, evaluate on validation, keep the best weights, stop
early when the monitored metric stops improving.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from atriom.active.metrics import classification_metrics, confusion_matrix
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


@dataclass
class TrainResult:
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = -1
    best_value: float | None = None
    stopped_early: bool = False
    optimizer_steps: int = 0
    train_seconds: float = 0.0


@torch.no_grad()
def evaluate(model, loader, accelerator, class_names: Sequence[str]) -> dict[str, Any]:
    """Loss, accuracy, macro-F1, per-class precision/recall and the confusion matrix."""
    model.eval()
    losses, labels, predictions = [], [], []
    for batch in loader:
        output = model(pixel_values=batch["pixel_values"], labels=batch["labels"])
        losses.append(float(output.loss) * len(batch["labels"]))
        labels.append(batch["labels"].cpu().numpy())
        predictions.append(output.logits.argmax(-1).cpu().numpy())
    y_true = np.concatenate(labels)
    y_pred = np.concatenate(predictions)
    matrix = confusion_matrix(y_true, y_pred, len(class_names))
    return {
        "loss": float(sum(losses) / len(y_true)),
        "n": len(y_true),
        **classification_metrics(matrix, class_names),
        "confusion_matrix": matrix.tolist(),
    }


def trainable_state(model) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def train(
    model,
    train_loader,
    val_loader,
    *,
    accelerator,
    cfg,
    class_names: Sequence[str],
    on_epoch: Callable[[int, dict[str, float]], None] | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> TrainResult:
    """Train ``model`` (already wrapped with PEFT) and leave the best weights loaded in it."""
    from transformers import get_cosine_schedule_with_warmup

    accumulation = math.ceil(cfg.effective_batch_size / cfg.batch_size)
    steps_per_epoch = math.ceil(len(train_loader) / accumulation)
    total_steps = steps_per_epoch * cfg.epochs
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay
    )
    scheduler = get_cosine_schedule_with_warmup(
        optimizer, int(cfg.warmup_ratio * total_steps), total_steps
    )
    model, optimizer, train_loader, val_loader, scheduler = accelerator.prepare(
        model, optimizer, train_loader, val_loader, scheduler
    )
    metric = cfg.early_stopping.metric
    if metric not in MONITORABLE:
        raise ConfigError(
            f"active.early_stopping.metric: {metric!r} is not one of {list(MONITORABLE)}."
        )
    stopper = EarlyStopping(
        cfg.early_stopping.mode, cfg.early_stopping.patience, cfg.early_stopping.min_delta
    )
    result = TrainResult()
    best_state = trainable_state(accelerator.unwrap_model(model))
    started = time.perf_counter()
    for epoch in range(cfg.epochs):
        train_loader.dataset.set_epoch(epoch)
        model.train()
        epoch_loss, seen = 0.0, 0
        for batch in train_loader:
            with accelerator.accumulate(model):
                output = model(pixel_values=batch["pixel_values"], labels=batch["labels"])
                accelerator.backward(output.loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            epoch_loss += float(output.loss.detach()) * len(batch["labels"])
            seen += len(batch["labels"])
            if accelerator.sync_gradients:
                result.optimizer_steps += 1
                if on_step:
                    on_step(result.optimizer_steps, float(output.loss.detach()))
        val = evaluate(model, val_loader, accelerator, class_names)
        row = {
            "epoch": epoch,
            "train_loss": epoch_loss / max(seen, 1),
            "val_loss": val["loss"],
            "val_accuracy": val["accuracy"],
            "val_macro_f1": val["macro_f1"],
            "lr": float(scheduler.get_last_lr()[0]),
        }
        result.history.append(row)
        if stopper.update(row[metric], epoch):
            best_state = trainable_state(accelerator.unwrap_model(model))
        if on_epoch:
            on_epoch(epoch, row)
        if stopper.should_stop:
            result.stopped_early = True
            break
    result.train_seconds = time.perf_counter() - started
    result.best_epoch, result.best_value = stopper.best_epoch, stopper.best
    accelerator.unwrap_model(model).load_state_dict(best_state, strict=False)
    return result
