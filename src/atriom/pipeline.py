"""One MLflow "pipeline" run per ``dvc repro`` / ``dvc exp run``, and the run comparison table.

The last DVC stage (``pipeline``, ``atriom pipeline``) depends on the three stage manifests,
so DVC runs it exactly when some stage ran -- a no-op ``dvc repro`` stays a no-op. It opens a
parent run named ``pipeline`` and

* makes every stage run that executed since the last pipeline record its child
  (``mlflow.parentRunId``);
* references the cached stages by their original run ids (``atriom.stage.<phase>.run_id``,
  ``atriom.stage.<phase>.cached=true``) -- a run has one parent, the pipeline that ran it;
* tags the DVC experiment name (``atriom.dvc.experiment``), the git commit and a digest of
  ``dvc.lock``'s stage entries;
* logs the stages' params under the same flattened names the stage runs use, and the
  headline metrics, so MLflow's compare view lines pipeline runs up side by side.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from atriom import PHASES
from atriom.config import find_project_root, load_params
from atriom.git import git_info
from atriom.io import read_manifest, sha256_json
from atriom.logs import get_logger

log = get_logger("pipeline")

PARENT_TAG = "mlflow.parentRunId"
HEADLINE_METRICS = (
    "test_accuracy",
    "test_macro_f1",
    "test_loss",
    "train_seconds",
    "best_epoch",
    "trainable_params",
)


def lock_digest(root: Path) -> str | None:
    """Digest of dvc.lock's entries for the three stages (the pipeline stage's own excluded)."""
    import yaml

    path = root / "dvc.lock"
    if not path.is_file():
        return None
    stages = (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).get("stages", {})
    return sha256_json({name: stages.get(name) for name in PHASES})


def record_pipeline(root: Path | None = None) -> str:
    """Create the pipeline parent run for the current outputs; return its run id."""
    import mlflow
    from mlflow.entities import RunStatus

    from atriom.tracking import (
        TAG_DVC_EXP,
        TAG_GIT_COMMIT,
        TAG_GIT_DIRTY,
        TAG_PHASE,
        open_experiment,
        run_name,
    )

    root = (root or find_project_root()).resolve()
    cfg = load_params(root)
    stage_runs = {
        phase: read_manifest(root / cfg.paths[phase], phase).get("mlflow_run_id")
        for phase in PHASES
    }
    experiment_id = open_experiment(root, cfg.project.experiment)
    client = mlflow.MlflowClient()
    git = git_info(root)
    tags: dict[str, str] = {
        TAG_PHASE: "pipeline",
        TAG_GIT_COMMIT: git.commit or "none",
        TAG_GIT_DIRTY: "none" if git.dirty is None else str(git.dirty).lower(),
        "atriom.dvc.lock.digest": lock_digest(root) or "none",
    }
    if git.commit:
        tags["mlflow.source.git.commit"] = git.commit
    if os.environ.get("DVC_EXP_NAME"):
        tags[TAG_DVC_EXP] = os.environ["DVC_EXP_NAME"]
    parent = client.create_run(experiment_id, run_name=run_name("pipeline"), tags=tags)
    parent_id = parent.info.run_id
    params: dict[str, str] = {}
    metrics: dict[str, float] = {}
    summary = []
    for phase, run_id in stage_runs.items():
        if not run_id:
            continue
        run = client.get_run(run_id)
        cached = PARENT_TAG in run.data.tags
        if not cached:
            client.set_tag(run_id, PARENT_TAG, parent_id)
        client.set_tag(parent_id, f"atriom.stage.{phase}.run_id", run_id)
        client.set_tag(parent_id, f"atriom.stage.{phase}.cached", str(cached).lower())
        params.update(run.data.params)
        if phase == "active":
            metrics.update({k: v for k, v in run.data.metrics.items() if k in HEADLINE_METRICS})
        summary.append(f"{phase}={'cached ' if cached else ''}{run_id[:8]}")
    from mlflow.entities import Metric, Param

    now = parent.info.start_time
    client.log_batch(
        parent_id,
        metrics=[Metric(k, float(v), now, 0) for k, v in sorted(metrics.items())],
        params=[Param(k, v) for k, v in sorted(params.items())],
    )
    client.set_terminated(parent_id, RunStatus.to_string(RunStatus.FINISHED))
    log.info("pipeline run %s: %s", parent_id, ", ".join(summary))
    return parent_id


# -- comparison --------------------------------------------------------------------------------


def recent_runs(root: Path, last: int = 5, phase: str = "active") -> list[Any]:
    """The newest ``last`` FINISHED runs of ``phase`` in the project's experiment."""
    import mlflow

    from atriom.tracking import open_experiment

    cfg = load_params(root)
    experiment_id = open_experiment(root, cfg.project.experiment)
    return mlflow.MlflowClient().search_runs(
        [experiment_id],
        filter_string=f"tags.`atriom.phase` = '{phase}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=last,
    )


def comparison(runs: list[Any], metrics: tuple[str, ...] = HEADLINE_METRICS[:4]) -> dict[str, Any]:
    """Rows for a table: the params whose values differ across ``runs``, key metrics, lineage."""
    keys = sorted({k for r in runs for k in r.data.params})
    differing = [k for k in keys if len({r.data.params.get(k) for r in runs}) > 1]
    rows = []
    for run in runs:
        tags = run.data.tags
        rows.append(
            {
                "run": run.info.run_id[:8],
                "started": run.info.start_time,
                "experiment": tags.get("atriom.dvc.experiment", ""),
                **{k: run.data.params.get(k, "") for k in differing},
                **{m: run.data.metrics.get(m) for m in metrics},
                "reservoir": tags.get("atriom.upstream.reservoir", "")[:8],
                "conduit": tags.get("atriom.upstream.conduit", "")[:8],
                "pipeline": tags.get(PARENT_TAG, "")[:8],
            }
        )
    return {"differing": differing, "metrics": list(metrics), "rows": rows}
