"""Reservoir stage: environment and resource reports, dataset collection and its manifest.

Outputs (``paths.reservoir``): ``env.json``, ``env_packages.csv``, ``resources.json``,
``dataset.json`` (the dataset manifest) and, for generated sources, ``videos/``.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from atriom.errors import DataError
from atriom.io import sha256_file, sha256_json, write_json
from atriom.reservoir.environment import environment_report
from atriom.reservoir.resources import resource_report
from atriom.reservoir.sources import CollectedClip, instantiate_source
from atriom.stage import StageContext
from atriom.video import probe

DATASET_MANIFEST = "dataset.json"
DATASET_SCHEMA = "atriom.dataset/1"


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


def dataset_entries(ctx: StageContext, clips: list[CollectedClip]) -> list[dict[str, Any]]:
    entries = []
    for clip in clips:
        info = probe(clip.path)
        entries.append(
            {
                "path": project_path(ctx, clip.path),
                "label": clip.label,
                "sha256": sha256_file(clip.path),
                "bytes": clip.path.stat().st_size,
                **info.to_dict(),
                "meta": clip.meta,
            }
        )
    return sorted(entries, key=lambda e: e["path"])


def dataset_manifest(entries: list[dict[str, Any]], source: str) -> dict[str, Any]:
    classes = sorted({e["label"] for e in entries})
    # The digest covers content, not where or when it was collected.
    digest = sha256_json([{k: e[k] for k in ("path", "label", "sha256")} for e in entries])
    return {
        "schema": DATASET_SCHEMA,
        "source": source,
        "digest": digest,
        "classes": classes,
        "counts": dict(sorted(Counter(e["label"] for e in entries).items())),
        "clips": entries,
    }


def run(ctx: StageContext) -> None:
    import pandas as pd

    cfg = ctx.cfg
    env = environment_report(ctx.root)
    write_json(ctx.out / "env.json", env)
    pd.DataFrame(env["packages"]).to_csv(ctx.out / "env_packages.csv", index=False)
    ctx.log.info(
        "environment: Python %s, %d packages", env["python"]["version"], len(env["packages"])
    )

    resources = resource_report({name: ctx.root / path for name, path in cfg.paths.items()})
    write_json(ctx.out / "resources.json", resources)
    ctx.log.info(
        "resources: %s cores, %.1f GiB RAM, %d GPU(s)",
        resources["cpu"]["usable_cores"],
        resources["memory"]["total_bytes"] / 2**30,
        len(resources["cuda"]["gpus"]),
    )

    spec = OmegaConf.to_container(cfg.reservoir.dataset, resolve=True)
    source = instantiate_source(spec)
    clips = source.collect(ctx.out, cfg.seed)
    if not clips:
        raise DataError(f"reservoir.dataset ({spec['_target_']}) collected no clips.")
    entries = dataset_entries(ctx, clips)
    manifest = dataset_manifest(entries, spec["_target_"])
    write_json(ctx.out / DATASET_MANIFEST, manifest)
    ctx.log.info(
        "dataset: %d clips in %d classes, digest %s",
        len(entries),
        len(manifest["classes"]),
        manifest["digest"][:12],
    )

    ctx.summary.update(
        {
            "dataset_digest": manifest["digest"],
            "num_clips": len(entries),
            "classes": manifest["classes"],
        }
    )
    ctx.artifacts += ["env.json", "env_packages.csv", "resources.json", DATASET_MANIFEST]
    ctx.run.set_tags(
        {
            "atriom.python": env["python"]["version"],
            "atriom.torch": env["key_packages"]["torch"],
            "atriom.dataset.digest": manifest["digest"],
        }
    )
    ctx.run.log_metrics(
        {
            "dataset.num_clips": len(entries),
            **{f"dataset.clips.{k}": v for k, v in manifest["counts"].items()},
        }
    )
