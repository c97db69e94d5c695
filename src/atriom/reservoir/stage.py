"""Reservoir stage: gather and validate everything the run stands on.

Outputs (``paths.reservoir``):

* ``env.json`` + ``env_packages.csv`` -- the environment report (and ``env_<timestamp>.json``
  copies, the newest ``reservoir.env.history`` kept), ``env_drift.json`` -- drift against
  the lock file and the previous report;
* ``resources.json`` -- CPU, RAM, disk, GPUs; ``device_plan.json`` -- what Conduit and Active
  run on (requirements checked first);
* ``dataset.json`` -- the dataset manifest; ``quarantine.json`` -- bad files and why;
  ``videos/`` for generated datasets;
* ``model.json`` -- the model manifest; ``model/`` for the built-in model.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from atriom.artifacts import DATASET_MANIFEST, DEVICE_PLAN, MODEL_MANIFEST
from atriom.devices import RequirementError, check_requirements, plan_devices
from atriom.errors import DataError
from atriom.io import read_json, sha256_file, sha256_json, write_json
from atriom.reservoir.drift import apply_policies, drift_report
from atriom.reservoir.environment import environment_report
from atriom.reservoir.models import inspect_model, model_files, model_licence, preprocessing
from atriom.reservoir.resources import resource_report
from atriom.reservoir.sources import instantiate_plugin, instantiate_source
from atriom.reservoir.validate import enforce, validate_clips
from atriom.stage import StageContext

DATASET_SCHEMA = "atriom.dataset/1"
MODEL_SCHEMA = "atriom.model/1"
ENV_HISTORY_GLOB = "env_[0-9]*_[0-9]*.json"


def project_path(ctx: StageContext, path: Path) -> str:
    """Where ``path`` will live relative to the project root once the stage commits."""
    path = path.resolve()
    if path.is_relative_to(ctx.out.resolve()):
        final = ctx.phase_dir(ctx.phase) / path.relative_to(ctx.out.resolve())
        return final.relative_to(ctx.root).as_posix()
    if path.is_relative_to(ctx.root):
        return path.relative_to(ctx.root).as_posix()
    raise DataError(
        f"{path} lies outside the project {ctx.root}; copy or link it into the project."
    )


# -- environment ---------------------------------------------------------------------------


def _previous_reports(ctx: StageContext) -> list[Path]:
    return sorted(ctx.phase_dir(ctx.phase).glob(ENV_HISTORY_GLOB))


def collect_environment(ctx: StageContext) -> dict[str, Any]:
    import pandas as pd

    env_cfg = ctx.cfg.reservoir.env
    env = environment_report(ctx.root, env_cfg.allowlist, ctx.environ)
    stamp = time.strftime("%Y%m%d_%H%M%S")
    env["timestamp"] = stamp
    history = _previous_reports(ctx)
    previous = read_json(history[-1]) if history else None
    lock = ctx.root / env_cfg.lock_file if env_cfg.lock_file else None
    drift = drift_report(env["packages"], lock, previous)
    write_json(ctx.out / "env.json", env)
    write_json(ctx.out / f"env_{stamp}.json", env)
    write_json(ctx.out / "env_drift.json", drift)
    pd.DataFrame(env["packages"]).to_csv(ctx.out / "env_packages.csv", index=False)
    keep = max(0, env_cfg.history - 1)
    for old in history[len(history) - keep :] if keep else []:
        (ctx.out / old.name).write_bytes(old.read_bytes())
    ctx.remove_after_commit += [p for p in history if not (ctx.out / p.name).exists()]

    conflicts = env["pip_check"]["conflicts"]
    ctx.log.info(
        "environment: Python %s, torch %s, %d packages, %d conflict(s); drift from lock: %s, from previous: %s",
        env["python"]["version"],
        env["torch"]["version"],
        len(env["packages"]),
        len(conflicts),
        "n/a" if drift["lock"] is None else drift["lock"]["total"],
        "n/a" if drift["previous"] is None else drift["previous"]["total"],
    )
    ctx.run.log_metrics(
        {
            "env.packages": len(env["packages"]),
            "env.conflicts": len(conflicts),
            **{
                f"env.drift.lock.{k}": len(drift["lock"][k])
                for k in ("added", "removed", "changed")
                if drift["lock"]
            },
            **{
                f"env.drift.previous.{k}": len(drift["previous"][k])
                for k in ("added", "removed", "changed")
                if drift["previous"]
            },
        }
    )
    apply_policies(
        drift, conflicts, {"conflicts": env_cfg.conflicts, "drift": env_cfg.drift}, ctx.log
    )
    ctx.artifacts += ["env.json", "env_packages.csv", "env_drift.json"]
    return env


# -- resources and device plan ------------------------------------------------------------


def plan_resources(ctx: StageContext) -> dict[str, Any]:
    cfg = ctx.cfg
    places = {name: ctx.root / path for name, path in cfg.paths.items()}
    places["dvc_cache"] = ctx.root / ".dvc" / "cache"
    resources = resource_report(places)
    write_json(ctx.out / "resources.json", resources)
    requirements = OmegaConf.to_container(cfg.reservoir.requirements, resolve=True)
    problems = check_requirements(resources, requirements)
    if problems:
        raise RequirementError("unmet requirement(s): " + " | ".join(problems))
    plan = plan_devices(resources, OmegaConf.to_container(cfg.reservoir.device, resolve=True))
    write_json(ctx.out / DEVICE_PLAN, plan.to_dict())
    for note in plan.notes:
        ctx.log.warning("device plan: %s", note)
    ctx.log.info(
        "resources: %s usable cores, %.1f GiB RAM, %d GPU(s) -> %s/%s, %d worker(s), batch %d per device",
        resources["cpu"]["usable_cores"],
        resources["memory"]["total_bytes"] / 2**30,
        len(resources["cuda"]["gpus"]),
        plan.device,
        plan.dtype,
        plan.num_workers,
        plan.per_device_batch_size,
    )
    ctx.artifacts += ["resources.json", DEVICE_PLAN]
    return plan.to_dict()


# -- dataset -------------------------------------------------------------------------------


def dataset_manifest(entries: list[dict[str, Any]], source: str) -> dict[str, Any]:
    classes = sorted({e["label"] for e in entries})
    # The digest covers content, not where or when it was collected.
    digest = sha256_json([{k: e[k] for k in ("id", "label", "sha256")} for e in entries])
    return {
        "schema": DATASET_SCHEMA,
        "source": source,
        "digest": digest,
        "classes": classes,
        "counts": dict(sorted(Counter(e["label"] for e in entries).items())),
        "clips": entries,
    }


def _segment_frames(
    start: float | None, end: float | None, fps: float, frames: int
) -> tuple[int, int]:
    first = 0 if start is None else min(frames - 1, round(start * fps))
    last = frames if end is None else max(first + 1, min(frames, round(end * fps)))
    return first, last


def collect_dataset(ctx: StageContext) -> dict[str, Any]:
    cfg = ctx.cfg.reservoir
    spec = OmegaConf.to_container(cfg.dataset, resolve=True)
    source = instantiate_source(spec)
    clips = source.collect(ctx.out, seed=ctx.cfg.seed, root=ctx.root)
    if not clips:
        raise DataError(f"reservoir.dataset ({spec['_target_']}) collected no clips.")
    classes = getattr(source, "classes", None)

    def describe(path: Path) -> str:
        try:
            return project_path(ctx, path)
        except DataError:
            return str(path)

    validation = validate_clips(clips, classes=classes, describe=describe)
    quarantine = validation.report()
    if validation.quarantine:
        ctx.run.log_dict(quarantine, "quarantine.json")
    enforce(validation, cfg.validation.on_bad_file, ctx.log)
    write_json(ctx.out / "quarantine.json", quarantine)

    entries = []
    for clip, info, digest in validation.good:
        path = project_path(ctx, clip.path)
        first, last = _segment_frames(clip.start, clip.end, info.fps, info.frames)
        segment = clip.start is not None or clip.end is not None
        entries.append(
            {
                "id": f"{path}#{first}-{last}" if segment else path,
                "path": path,
                "label": clip.label,
                "sha256": digest,
                "bytes": clip.path.stat().st_size,
                **info.to_dict(),
                "start": clip.start,
                "end": clip.end,
                "first_frame": first,
                "end_frame": last,
                "meta": clip.meta,
            }
        )
    entries.sort(key=lambda e: e["id"])
    manifest = dataset_manifest(entries, spec["_target_"])
    manifest["licence"] = getattr(source, "licence", None)
    write_json(ctx.out / DATASET_MANIFEST, manifest)
    ctx.log.info(
        "dataset: %d clips in %d classes (%d quarantined), digest %s",
        len(entries),
        len(manifest["classes"]),
        len(validation.quarantine),
        manifest["digest"][:12],
    )
    ctx.run.log_metrics(
        {
            "dataset.num_clips": len(entries),
            "dataset.quarantined": len(validation.quarantine),
            **{f"dataset.clips.{k}": v for k, v in manifest["counts"].items()},
        }
    )
    _log_dataset_input(ctx, manifest)
    ctx.artifacts += [DATASET_MANIFEST, "quarantine.json"]
    return manifest


def _log_dataset_input(ctx: StageContext, manifest: dict[str, Any]) -> None:
    """The dataset manifest as an MLflow dataset input, carrying its digest."""
    import warnings

    import mlflow
    import pandas as pd

    frame = pd.DataFrame(
        [
            {k: e[k] for k in ("id", "path", "label", "sha256", "frames", "fps", "width", "height")}
            for e in manifest["clips"]
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # MLflow's schema-inference hints
        dataset = mlflow.data.from_pandas(
            frame,
            source=(ctx.phase_dir(ctx.phase) / DATASET_MANIFEST).resolve().as_uri(),
            name=f"{ctx.cfg.project.name}-dataset",
            targets="label",
            digest=manifest["digest"][:32],
        )
        mlflow.log_input(dataset, context="reservoir")


# -- model ---------------------------------------------------------------------------------


def collect_model(ctx: StageContext) -> dict[str, Any]:
    spec = OmegaConf.to_container(ctx.cfg.model, resolve=True)
    source = instantiate_plugin(spec, "model", "collect")
    collected = source.collect(ctx.out, root=ctx.root, final_dir=ctx.phase_dir(ctx.phase))
    facts = inspect_model(collected.path, spec)
    files = [
        {
            "path": p.relative_to(collected.path).as_posix(),
            "sha256": sha256_file(p),
            "bytes": p.stat().st_size,
        }
        for p in model_files(collected.path)
    ]
    provenance_file = collected.path / "provenance.json"
    provenance = read_json(provenance_file) if provenance_file.is_file() else None
    manifest = {
        "schema": MODEL_SCHEMA,
        "target": spec["_target_"],
        "source": collected.source,
        "location": collected.location,
        "family": spec["family"],
        "num_frames": spec["num_frames"],
        "image_size": spec["image_size"],
        "lora_targets": list(spec.get("lora_targets", [])),
        "preprocessing": preprocessing(collected.path, spec["image_size"]),
        **facts,
        "files": files,
        "digest": sha256_json([(f["path"], f["sha256"]) for f in files]),
        "licence": model_licence(collected.path, provenance),
        "provenance": provenance,
    }
    write_json(ctx.out / MODEL_MANIFEST, manifest)
    ctx.log.info(
        "model: %s (%s, %.2f M parameters, licence %s), digest %s",
        collected.location,
        facts["model_type"],
        facts["num_parameters"] / 1e6,
        manifest["licence"],
        manifest["digest"][:12],
    )
    ctx.artifacts.append(MODEL_MANIFEST)
    return manifest


def run(ctx: StageContext) -> None:
    env = collect_environment(ctx)
    plan = plan_resources(ctx)
    model = collect_model(ctx)
    dataset = collect_dataset(ctx)
    ctx.summary.update(
        {
            "dataset_digest": dataset["digest"],
            "num_clips": len(dataset["clips"]),
            "classes": dataset["classes"],
            "model_digest": model["digest"],
            "device": plan["device"],
            "dtype": plan["dtype"],
        }
    )
    ctx.run.set_tags(
        {
            "atriom.python": env["python"]["version"],
            "atriom.torch": env["torch"]["version"],
            "atriom.device": plan["device"],
            "atriom.dtype": plan["dtype"],
            "atriom.dataset.digest": dataset["digest"],
            "atriom.model.digest": model["digest"],
            "atriom.model.location": model["location"],
        }
    )
    ctx.run.log_params({f"dataset.clips_per_class.{k}": v for k, v in dataset["counts"].items()})
