"""MLflow tracking shared by every stage: one run per stage execution.

* Tracking URI: ``MLFLOW_TRACKING_URI`` when set, else ``sqlite:///<project>/mlflow.db``
  (MLflow's own default, anchored at the project root) with artifacts in ``<project>/mlruns``.
* Tags on every run: ``atriom.phase``, ``atriom.git.commit``, ``atriom.git.dirty``,
  ``atriom.dvc.stage``, ``atriom.params.digest`` and ``atriom.upstream.<phase>`` (lineage).
* Params: the stage's params sections, flattened to dotted names (``active.lr``) so MLflow's
  compare view lines runs up.
* Status: FINISHED on success, FAILED when the stage raises, KILLED on SIGTERM/SIGINT; a
  run never stays RUNNING.

mlflow is imported inside functions: importing this module is cheap.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from atriom.git import git_info
from atriom.logs import get_logger

log = get_logger("tracking")

TAG_PHASE = "atriom.phase"
TAG_GIT_COMMIT = "atriom.git.commit"
TAG_GIT_DIRTY = "atriom.git.dirty"
TAG_DVC_STAGE = "atriom.dvc.stage"
TAG_DVC_EXP = "atriom.dvc.experiment"
TAG_PARAMS_DIGEST = "atriom.params.digest"
TAG_UPSTREAM = "atriom.upstream."
TAG_INVOKED_BY = "atriom.invoked_by"

_MAX_PARAM_CHARS = 6000


class StageTerminated(BaseException):
    """Raised in the main thread when the stage process receives SIGTERM."""


def tracking_root(root: Path) -> Path:
    """Where the default MLflow store lives: the main repository, also for DVC experiments
    run in a temporary workspace (DVC points ``DVC_ROOT`` there), else the project root."""
    dvc_root = os.environ.get("DVC_ROOT")
    return Path(dvc_root).resolve() if dvc_root else root


def tracking_uri(root: Path) -> str:
    return (
        os.environ.get("MLFLOW_TRACKING_URI")
        or f"sqlite:///{(tracking_root(root) / 'mlflow.db').resolve()}"
    )


def _default_artifact_location(root: Path) -> str | None:
    """For the local default store, keep artifacts in ``<project>/mlruns``.

    Call before ``mlflow.set_tracking_uri``, which exports ``MLFLOW_TRACKING_URI`` itself.
    """
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return None
    return (tracking_root(root) / "mlruns").resolve().as_uri()


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``; lists stay values (stable, comparable names)."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _param_value(value: Any) -> str:
    text = str(value)
    return text if len(text) <= _MAX_PARAM_CHARS else text[: _MAX_PARAM_CHARS - 3] + "..."


class StageRun:
    """The active MLflow run of a stage, with the few calls stages need."""

    def __init__(self, run_id: str, experiment_id: str):
        self.run_id = run_id
        self.experiment_id = experiment_id

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        import mlflow

        mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step)

    def log_params(self, params: Mapping[str, Any]) -> None:
        import mlflow

        mlflow.log_params({k: _param_value(v) for k, v in params.items()})

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        import mlflow

        mlflow.set_tags({k: str(v) for k, v in tags.items()})

    def log_artifact(self, path: Path, artifact_path: str | None = None) -> None:
        import mlflow

        mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def log_metric_steps(self, key: str, points: list[tuple[int, float]]) -> None:
        """Many steps of one metric in a single call (per-step losses, flushed once an epoch)."""
        if not points:
            return
        import time

        import mlflow
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        mlflow.MlflowClient().log_batch(
            self.run_id,
            metrics=[Metric(key, float(value), now, int(step)) for step, value in points],
        )

    def close_stale(self, run_id: str, resumed_by: str) -> None:
        """Mark an earlier attempt (killed without a word, e.g. SIGKILL) KILLED, and link it."""
        import mlflow

        client = mlflow.MlflowClient()
        client.set_tag(run_id, "atriom.resumed_by", resumed_by)
        if client.get_run(run_id).info.status == "RUNNING":
            client.set_terminated(run_id, "KILLED")

    def log_dict(self, data: Mapping[str, Any], name: str) -> None:
        """A small JSON document as an artifact, straight from memory (e.g. before failing)."""
        import mlflow

        mlflow.log_dict(dict(data), name)

    def log_artifacts(self, directory: Path, artifact_path: str | None = None) -> None:
        import mlflow

        mlflow.log_artifacts(str(directory), artifact_path=artifact_path)


class NullRun(StageRun):
    """What non-main processes of a multi-process stage get: every call is a no-op."""

    def __init__(self) -> None:
        super().__init__(run_id="", experiment_id="")

    def __getattribute__(self, name: str):
        attribute = super().__getattribute__(name)
        if callable(attribute) and not name.startswith("__"):
            return lambda *args, **kwargs: None
        return attribute


def run_name(phase: str) -> str:
    """``active``, or ``active-<experiment>`` inside a DVC experiment (tells runs apart in the UI)."""
    experiment = os.environ.get("DVC_EXP_NAME")
    return f"{phase}-{experiment}" if experiment else phase


def enable_system_metrics() -> None:
    """CPU, memory (and GPU, with pynvml) every second: stages last seconds to minutes, and
    MLflow's default 10 s interval would record almost nothing. ``MLFLOW_SYSTEM_METRICS_*``
    variables still win."""
    import mlflow

    interval = float(os.environ.get("MLFLOW_SYSTEM_METRICS_SAMPLING_INTERVAL", "1"))
    samples = int(os.environ.get("MLFLOW_SYSTEM_METRICS_SAMPLES_BEFORE_LOGGING", "1"))
    mlflow.set_system_metrics_sampling_interval(interval)
    mlflow.set_system_metrics_samples_before_logging(samples)


def _ensure_experiment(name: str, artifact_location: str | None) -> str:
    import mlflow

    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        # "custom model development": MLflow 3's UI then opens on the training-runs view,
        # not the GenAI traces overview.
        experiment_id = client.create_experiment(
            name,
            artifact_location=artifact_location,
            tags={"mlflow.experimentKind": "custom_model_development"},
        )
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def open_experiment(root: Path, experiment: str) -> str:
    """Point MLflow at the project's store and experiment; return the experiment id."""
    import mlflow

    uri = tracking_uri(root)
    artifact_location = _default_artifact_location(root)
    mlflow.set_tracking_uri(uri)
    return _ensure_experiment(experiment, artifact_location)


@contextlib.contextmanager
def stage_run(
    *,
    root: Path,
    experiment: str,
    phase: str,
    params: Mapping[str, Any],
    params_digest: str,
    upstream: Mapping[str, str] | None = None,
) -> Iterator[StageRun]:
    """Open the MLflow run of one stage execution; end it FINISHED, FAILED or KILLED."""
    import mlflow
    from mlflow.entities import RunStatus

    uri = tracking_uri(root)
    experiment_id = open_experiment(root, experiment)
    git = git_info(root)
    tags = {
        TAG_PHASE: phase,
        TAG_GIT_COMMIT: git.commit or "none",
        TAG_GIT_DIRTY: "none" if git.dirty is None else str(git.dirty).lower(),
        TAG_DVC_STAGE: os.environ.get("DVC_STAGE", phase),
        TAG_INVOKED_BY: "dvc" if os.environ.get("DVC_STAGE") else "cli",
        TAG_PARAMS_DIGEST: params_digest,
        **{f"{TAG_UPSTREAM}{p}": run_id for p, run_id in (upstream or {}).items()},
    }
    if git.commit:
        tags["mlflow.source.git.commit"] = git.commit
    if os.environ.get("DVC_EXP_NAME"):
        tags[TAG_DVC_EXP] = os.environ["DVC_EXP_NAME"]

    enable_system_metrics()
    run = mlflow.start_run(
        experiment_id=experiment_id, run_name=run_name(phase), tags=tags, log_system_metrics=True
    )
    handle = StageRun(run.info.run_id, experiment_id)
    log.info("MLflow run %s (%s) in experiment '%s' at %s", run.info.run_id, phase, experiment, uri)
    try:
        handle.log_params(flatten(params))
        yield handle
    except (StageTerminated, KeyboardInterrupt):
        mlflow.end_run(RunStatus.to_string(RunStatus.KILLED))
        raise
    except BaseException:
        mlflow.end_run(RunStatus.to_string(RunStatus.FAILED))
        raise
    else:
        mlflow.end_run(RunStatus.to_string(RunStatus.FINISHED))
