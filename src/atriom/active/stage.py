"""Active stage: LoRA fine-tuning of the video transformer on the conduit's clips.

Writes to ``paths.active``:

* ``metrics.json`` -- test accuracy, macro-F1 and loss (for ``dvc metrics``), with the best
  validation values and the training facts;
* ``history.csv`` -- one row per epoch (for ``dvc plots``);
* ``runs/run_YYYYmmdd_HHMMSS/`` -- ``best_model_adapters/`` (``adapter_config.json`` +
  ``adapter_model.safetensors``), ``base_model/`` (what the adapters apply to),
  ``label_map.json`` and ``test_evaluation.json``.
"""

from __future__ import annotations

import csv
import time
from pathlib import Path

from omegaconf import OmegaConf

from atriom.errors import UpstreamError
from atriom.io import read_json, write_json
from atriom.runtime import seed_everything
from atriom.stage import StageContext

METRICS = "metrics.json"
HISTORY = "history.csv"


def _loader(dataset, batch_size: int, *, shuffle: bool, seed: int, workers: int):
    import torch

    generator = torch.Generator().manual_seed(seed)
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        generator=generator,
        num_workers=workers,
        persistent_workers=False,
    )


def _write_history(path: Path, rows: list[dict[str, float]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()}
            )


def run(ctx: StageContext) -> None:
    from accelerate import Accelerator

    from atriom.active.model import apply_peft, build_base, count_parameters
    from atriom.active.train import evaluate, train
    from atriom.conduit.dataset import ClipDataset

    cfg = ctx.cfg
    active = cfg.active
    seed_everything(cfg.seed, torch=True)
    index_path = ctx.phase_dir("conduit") / "clip_index.json"
    if not index_path.is_file():
        raise UpstreamError(f"{index_path} is missing: run `atriom run conduit` first.")
    index = read_json(index_path)
    label_map = read_json(ctx.phase_dir("conduit") / "label_map.json")
    class_names = sorted(label_map, key=label_map.get)

    model_cfg = OmegaConf.to_container(cfg.model, resolve=True)
    common = {
        "num_frames": index["num_frames"],
        "stride": index["stride"],
        "image_size": model_cfg["image_size"],
        "mean": model_cfg["image_mean"],
        "std": model_cfg["image_std"],
        "seed": cfg.seed,
    }
    rows = {s: [r for r in index["samples"] if r["split"] == s] for s in ("train", "val", "test")}
    datasets = {s: ClipDataset(rows[s], ctx.root, train=(s == "train"), **common) for s in rows}
    loaders = {
        s: _loader(
            datasets[s],
            active.batch_size,
            shuffle=(s == "train"),
            seed=cfg.seed,
            workers=active.num_workers,
        )
        for s in rows
    }

    run_dir = ctx.out / "runs" / time.strftime("run_%Y%m%d_%H%M%S")
    base = build_base(model_cfg, label_map)
    if active.peft.method != "full":
        # The exact base the adapters apply to, so they load without this code.
        base.save_pretrained(run_dir / "base_model")
    model = apply_peft(base, OmegaConf.to_container(active.peft, resolve=True))
    params = count_parameters(model)
    ctx.log.info(
        "model %s + %s: %d trainable of %d parameters",
        model_cfg["name"],
        active.peft.method,
        params["trainable"],
        params["total"],
    )
    accumulation = -(-active.effective_batch_size // active.batch_size)
    accelerator = Accelerator(gradient_accumulation_steps=accumulation)
    ctx.run.log_params(
        {
            "active.gradient_accumulation_steps": accumulation,
            "active.device": str(accelerator.device),
        }
    )

    def on_epoch(epoch: int, row: dict[str, float]) -> None:
        ctx.log.info(
            "epoch %d: train_loss %.4f val_loss %.4f val_accuracy %.3f",
            epoch,
            row["train_loss"],
            row["val_loss"],
            row["val_accuracy"],
        )
        ctx.run.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch)

    result = train(
        model,
        loaders["train"],
        loaders["val"],
        accelerator=accelerator,
        cfg=active,
        class_names=class_names,
        on_epoch=on_epoch,
        on_step=lambda step, loss: ctx.run.log_metrics({"train_step_loss": loss}, step=step),
    )
    test = evaluate(model, accelerator.prepare(loaders["test"]), accelerator, class_names)
    best = result.history[result.best_epoch]

    unwrapped = accelerator.unwrap_model(model)
    if active.peft.method == "full":
        unwrapped.save_pretrained(run_dir / "best_model")
    else:
        unwrapped.save_pretrained(run_dir / "best_model_adapters")
    write_json(run_dir / "label_map.json", label_map)
    write_json(run_dir / "test_evaluation.json", test)

    metrics = {
        "test": {
            "accuracy": test["accuracy"],
            "macro_f1": test["macro_f1"],
            "loss": test["loss"],
            "n": test["n"],
        },
        "val": {k: best[k] for k in ("val_accuracy", "val_macro_f1", "val_loss")},
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "stopped_early": result.stopped_early,
        "optimizer_steps": result.optimizer_steps,
        "train_seconds": round(result.train_seconds, 3),
        "trainable_params": params["trainable"],
        "total_params": params["total"],
    }
    write_json(ctx.out / METRICS, metrics)
    _write_history(ctx.out / HISTORY, result.history)
    ctx.run.log_metrics(
        {
            "test_accuracy": test["accuracy"],
            "test_macro_f1": test["macro_f1"],
            "test_loss": test["loss"],
            "best_epoch": result.best_epoch,
            "train_seconds": result.train_seconds,
            "trainable_params": params["trainable"],
        }
    )
    ctx.log.info(
        "test: accuracy %.3f macro-F1 %.3f on %d clips (best epoch %d, %.1f s training)",
        test["accuracy"],
        test["macro_f1"],
        test["n"],
        result.best_epoch,
        result.train_seconds,
    )
    ctx.summary.update(
        {"run_dir": run_dir.relative_to(ctx.out).as_posix(), "test_accuracy": test["accuracy"]}
    )
    ctx.artifacts += [METRICS, HISTORY, run_dir.relative_to(ctx.out).as_posix()]
