"""Active stage: PEFT fine-tuning of the collected base, evaluation and deployable outputs.

Reads Reservoir's model manifest (the base), device plan (device, dtype, quantisation,
workers, per-device batch) and Conduit's clip index. Writes:

* ``<active>/metrics.json`` (``dvc metrics``) and ``<active>/history.csv`` (``dvc plots``);
* ``<active>/runs/run_YYYYmmdd_HHMMSS/`` -- checkpoints while training (resumable),
  then ``best_model_adapters/`` (PEFT format), ``merged_model/`` (a plain transformers model
  with ``inference.json``), ``confusion_matrix.png``, ``model_card.md``, ``history.csv``,
  ``test_evaluation.json``, ``batch_plan.json``, ``label_map.json`` and ``COMPLETE`` last.

The run directory is written in place (``runs`` is a persistent DVC output), so an
interrupted run can be resumed with ``active.resume=auto``; everything else goes through
the stage's staging directory. Under ``torchrun``/``accelerate launch`` every process
trains and only the main one writes files or talks to MLflow.
"""

from __future__ import annotations

import csv
import os
import shutil
import time
from pathlib import Path

from omegaconf import OmegaConf

from atriom.artifacts import (
    CLIP_INDEX,
    DATASET_MANIFEST,
    DEVICE_PLAN,
    LABEL_MAP,
    MODEL_MANIFEST,
    model_dir,
    read_output,
)
from atriom.config import stage_params
from atriom.devices import batch_plan
from atriom.io import atomic_write_text, read_json, sha256_json, utc_now, write_json
from atriom.runtime import seed_everything
from atriom.stage import StageContext

METRICS = "metrics.json"
HISTORY = "history.csv"
RUNS = "runs"
RUN_FILE = "run.json"
RUN_COMPLETE = "COMPLETE"
MIXED_PRECISION = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}
#: Settings that do not change what training computes (ignored when matching a run to resume).
_NOT_TRAINING = ("resume", "keep_runs", "checkpoint", "registry")


def _write_history(path: Path, rows: list[dict[str, float]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {k: (round(v, 6) if isinstance(v, float) else v) for k, v in row.items()}
            )


def training_digest(ctx: StageContext) -> str:
    """What a resumed run must share with the interrupted one: params and upstream data."""
    params = stage_params(ctx.cfg, "active")
    params["active"] = {k: v for k, v in params["active"].items() if k not in _NOT_TRAINING}
    upstream = {p: m["digest"] for p, m in sorted(ctx.upstream.items())}
    return sha256_json({"params": params, "upstream": upstream})


def choose_run_dir(runs: Path, resume: str, digest: str) -> tuple[Path | None, Path | None]:
    """``(existing run dir, checkpoint)`` to resume, or ``(None, None)`` for a new run."""
    from atriom.active.train import newest_checkpoint

    if resume == "never" or not runs.is_dir():
        return None, None
    if resume != "auto":
        run_dir = runs / resume
        checkpoint = newest_checkpoint(run_dir) if run_dir.is_dir() else None
        if checkpoint is None:
            from atriom.errors import ConfigError

            raise ConfigError(
                f"active.resume={resume}: {run_dir} has no complete checkpoint to resume from."
            )
        return run_dir, checkpoint
    for run_dir in sorted((p for p in runs.glob("run_*") if p.is_dir()), reverse=True):
        if (run_dir / RUN_COMPLETE).exists() or not (run_dir / RUN_FILE).is_file():
            continue
        if read_json(run_dir / RUN_FILE).get("digest") != digest:
            continue
        checkpoint = newest_checkpoint(run_dir)
        if checkpoint is not None:
            return run_dir, checkpoint
    return None, None


def _new_run_dir(runs: Path) -> Path:
    stamp = time.strftime("run_%Y%m%d_%H%M%S")
    run_dir, n = runs / stamp, 1
    while run_dir.exists():
        n += 1
        run_dir = runs / f"{stamp}_{n}"
    return run_dir


def _prune_runs(runs: Path, keep: int, current: Path) -> None:
    finished = sorted(p for p in runs.glob("run_*") if (p / RUN_COMPLETE).exists() and p != current)
    for old in finished[: max(0, len(finished) - (keep - 1))]:
        shutil.rmtree(old, ignore_errors=True)


def _link_attempts(ctx: StageContext, run_dir: Path, digest: str, resumed: bool) -> None:
    """Record this MLflow run in run.json; on resume tag the link and close the old attempt."""
    record = (
        read_json(run_dir / RUN_FILE)
        if (run_dir / RUN_FILE).is_file()
        else {"digest": digest, "attempts": []}
    )
    previous = record["attempts"][-1]["mlflow_run_id"] if record["attempts"] else None
    record["attempts"].append({"mlflow_run_id": ctx.run.run_id, "started": utc_now()})
    write_json(run_dir / RUN_FILE, record)
    tags = {"atriom.run_dir": run_dir.name}
    if resumed and previous:
        tags["atriom.resumed_from"] = previous
        ctx.run.close_stale(previous, resumed_by=ctx.run.run_id)
    ctx.run.set_tags(tags)


def _difficulty(ctx: StageContext, rows, model, dataset, accelerator):
    curriculum = ctx.cfg.active.curriculum
    if curriculum.pacing == "none":
        return None
    if curriculum.difficulty.source == "manifest":
        from atriom.active.curriculum import manifest_difficulty

        return manifest_difficulty(rows, curriculum.difficulty.key)
    from atriom.reservoir.sources import instantiate_plugin

    scorer = instantiate_plugin(
        OmegaConf.to_container(curriculum.difficulty.scorer, resolve=True),
        "active.curriculum.difficulty.scorer",
        "score",
    )
    return scorer.score(model, dataset, accelerator)


def run(ctx: StageContext) -> None:
    import torch
    from accelerate import Accelerator

    from atriom.active import export
    from atriom.active.curriculum import Curriculum
    from atriom.active.model import apply_peft, count_parameters, load_base
    from atriom.active.train import Trainer, evaluate
    from atriom.conduit.dataset import ClipDataset

    cfg = ctx.cfg
    active = cfg.active
    seed_everything(cfg.seed, torch=True)
    reservoir, conduit = ctx.phase_dir("reservoir"), ctx.phase_dir("conduit")
    model_manifest = read_output(reservoir, MODEL_MANIFEST, "reservoir")
    plan = read_output(reservoir, DEVICE_PLAN, "reservoir")
    index = read_output(conduit, CLIP_INDEX, "conduit")
    label_map = read_output(conduit, LABEL_MAP, "conduit")
    class_names = sorted(label_map, key=label_map.get)
    # Clip indexes written before test-time augmentation existed carry none.
    test_time = list((index.get("augment") or {}).get("test_time", []))

    world = int(os.environ.get("WORLD_SIZE", "1"))
    batches = batch_plan({**plan, "num_processes": world}, active.effective_batch_size)
    accelerator = Accelerator(
        cpu=plan["device"] == "cpu",
        mixed_precision=MIXED_PRECISION[plan["dtype"]],
        gradient_accumulation_steps=batches.gradient_accumulation_steps,
    )
    main = accelerator.is_main_process

    runs = ctx.phase_dir("active") / RUNS
    digest = training_digest(ctx)
    run_dir, checkpoint = choose_run_dir(runs, active.resume, digest)
    accelerator.wait_for_everyone()
    resumed = run_dir is not None
    run_dir = run_dir or _new_run_dir(runs)
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        _link_attempts(ctx, run_dir, digest, resumed)

    prep = model_manifest["preprocessing"]
    datasets = {
        s: ClipDataset.from_index(index, s, ctx.root, prep, seed=cfg.seed)
        for s in ("train", "val", "test")
    }

    def eval_loader(split: str):
        return torch.utils.data.DataLoader(
            datasets[split],
            batch_size=batches.per_device_batch_size,
            shuffle=False,
            num_workers=plan["num_workers"],
            generator=torch.Generator().manual_seed(cfg.seed),
        )

    base_dir = model_dir(model_manifest, ctx.root)
    model = apply_peft(
        load_base(base_dir, label_map, plan["quantization"]),
        OmegaConf.to_container(active.peft, resolve=True),
    )
    params = count_parameters(model)
    train_rows = datasets["train"].rows
    difficulty = _difficulty(
        ctx,
        train_rows,
        model,
        ClipDataset.from_index(index, "train", ctx.root, prep, seed=cfg.seed, train=False),
        accelerator,
    )
    curriculum = Curriculum(
        OmegaConf.to_container(active.curriculum, resolve=True),
        difficulty,
        [r["label_id"] for r in train_rows],
        active.epochs,
    )
    teacher = None
    if active.distill.teacher:
        from transformers import AutoModelForVideoClassification

        teacher = AutoModelForVideoClassification.from_pretrained(
            ctx.resolve(active.distill.teacher)
        ).eval()

    ctx.log.info(
        "model %s + %s: %d trainable of %d parameters; %s/%s, %d x %d process(es) x %d accumulation = batch %d%s",
        model_manifest["location"],
        active.peft.method,
        params["trainable"],
        params["total"],
        plan["device"],
        plan["dtype"],
        batches.per_device_batch_size,
        batches.num_processes,
        batches.gradient_accumulation_steps,
        batches.effective_batch_size,
        f"; resuming {run_dir.name} from {checkpoint.name}" if checkpoint else "",
    )
    ctx.run.log_params({f"active.batch.{k}": v for k, v in batches.to_dict().items()})
    ctx.run.set_tags(
        {
            "atriom.device": str(accelerator.device),
            "atriom.num_processes": accelerator.num_processes,
            "atriom.model.location": model_manifest["location"],
            "atriom.model.digest": model_manifest["digest"],
        }
    )

    step_losses: list[tuple[int, float]] = []

    def on_epoch(epoch: int, row: dict[str, float]) -> None:
        ctx.log.info(
            "epoch %d: train_loss %.4f val_loss %.4f val_accuracy %.3f (curriculum %.2f)",
            epoch,
            row["train_loss"],
            row["val_loss"],
            row["val_accuracy"],
            row["curriculum_fraction"],
        )
        ctx.run.log_metrics({k: v for k, v in row.items() if k != "epoch"}, step=epoch)
        ctx.run.log_metric_steps("train_step_loss", step_losses)
        step_losses.clear()

    trainer = Trainer(
        model,
        datasets["train"],
        eval_loader("val"),
        accelerator=accelerator,
        cfg=active,
        class_names=class_names,
        curriculum=curriculum,
        per_device_batch_size=batches.per_device_batch_size,
        num_workers=plan["num_workers"],
        seed=cfg.seed,
        run_dir=run_dir,
        teacher=teacher,
        test_time=test_time,
        on_epoch=on_epoch,
        on_step=lambda step, loss: step_losses.append((step, loss)),
    )
    if checkpoint is not None:
        trainer.resume(checkpoint)
        for row in trainer.result.history:  # the new run shows the whole curve
            ctx.run.log_metrics(
                {k: v for k, v in row.items() if k != "epoch"}, step=int(row["epoch"])
            )
    result = trainer.fit()
    test = evaluate(
        trainer.model,
        accelerator.prepare(eval_loader("test")),
        accelerator,
        class_names,
        test_time,
    )
    accelerator.wait_for_everyone()
    if not main:
        return

    best = result.history[result.best_epoch]
    unwrapped = accelerator.unwrap_model(trainer.model)
    inference = {
        "labels": class_names,
        "sampler": index["sampler"],
        "test_time": test_time,
        "preprocessing": prep,
        "base": model_manifest["location"],
        "peft": active.peft.method,
    }
    if active.peft.method != "full":
        export.save_adapters(unwrapped, run_dir / "best_model_adapters", model_manifest["location"])
    export.save_merged(unwrapped, run_dir / "merged_model", base_dir, inference)
    write_json(run_dir / LABEL_MAP, label_map)
    write_json(run_dir / "batch_plan.json", batches.to_dict())
    write_json(run_dir / "test_evaluation.json", test)
    _write_history(run_dir / HISTORY, result.history)
    export.confusion_png(
        test["confusion_matrix"],
        class_names,
        run_dir / "confusion_matrix.png",
        f"test ({test['n']} videos)",
    )

    registered = None
    if active.registry.enabled:
        registered = export.log_pyfunc(
            run_dir / "merged_model", active.registry.name or cfg.project.name, ctx.log
        )
    metrics = {
        "test": {
            "accuracy": test["accuracy"],
            "macro_f1": test["macro_f1"],
            "loss": test["loss"],
            "n": test["n"],
            "per_class": {
                c: {k: v[k] for k in ("precision", "recall")} for c, v in test["per_class"].items()
            },
        },
        "val": {k: best[k] for k in ("val_accuracy", "val_macro_f1", "val_loss")},
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "stopped_early": result.stopped_early,
        "optimizer_steps": result.optimizer_steps,
        "train_seconds": round(result.train_seconds, 3),
        "trainable_params": params["trainable"],
        "total_params": params["total"],
        "run_dir": run_dir.name,
        "resumed_from": result.resumed_from,
        "sampler": index["sampler"],
        "test_time": test_time,
    }
    dataset = read_output(reservoir, DATASET_MANIFEST, "reservoir")
    stats = read_json(conduit / "stats.json")
    card = export.model_card(
        title=f"{cfg.project.name} ({run_dir.name})",
        model_manifest=model_manifest,
        dataset_digest=dataset["digest"],
        dataset_source=dataset["source"],
        counts=stats["counts"],
        peft=OmegaConf.to_container(active.peft, resolve=True),
        params=params,
        metrics=metrics,
        test=test,
        env_digest=export.environment_digest(reservoir),
        data_licence=dataset.get("licence") or "not recorded",
        registered=registered,
        early_stopping=active.early_stopping.metric,
    )
    export.write_card(run_dir / "model_card.md", card)
    atomic_write_text(run_dir / RUN_COMPLETE, utc_now() + "\n")
    if not active.checkpoint.keep_after_finish:
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
    _prune_runs(runs, active.keep_runs, run_dir)

    metrics.pop("sampler")
    metrics.pop("test_time")
    if registered:
        metrics["registered_version"] = registered["version"]
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
    for name in (
        "model_card.md",
        "confusion_matrix.png",
        "test_evaluation.json",
        "best_model_adapters",
    ):
        path = run_dir / name
        if path.is_dir():
            ctx.run.log_artifacts(path, name)
        elif path.is_file():
            ctx.run.log_artifact(path)
    ctx.log.info(
        "test: accuracy %.3f macro-F1 %.3f on %d videos (best epoch %d, %.1f s training) -> %s",
        test["accuracy"],
        test["macro_f1"],
        test["n"],
        result.best_epoch,
        result.train_seconds,
        run_dir.relative_to(ctx.root),
    )
    ctx.summary.update(
        {"run_dir": run_dir.name, "test_accuracy": test["accuracy"], "registered": registered}
    )
    ctx.artifacts += [METRICS, HISTORY]
