"""``atriom predict``: classify video files with a finished run or a registered model."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from atriom.errors import ModelError, ProjectError, VideoError


def newest_model(root: Path, active_dir: str) -> Path:
    """``merged_model/`` of the newest finished run under ``<active>/runs``."""
    runs = root / active_dir / "runs"
    finished = sorted(
        p for p in runs.glob("run_*") if (p / "COMPLETE").exists() and (p / "merged_model").is_dir()
    )
    if not finished:
        raise ProjectError(
            f"no finished training run in {runs}: run `dvc repro` (or `atriom run active`) first, or pass --model."
        )
    return finished[-1] / "merged_model"


def predict_videos(
    videos: Sequence[str], model: str | None
) -> Iterator[tuple[str, str, float, dict[str, float]]]:
    """``(video, label, probability, {class: probability})`` per video, in order."""
    missing = [v for v in videos if not Path(v).is_file()]
    if missing:
        raise VideoError(f"no such video file(s): {', '.join(missing)}")
    from atriom.logs import quiet_libraries

    quiet_libraries()
    if model and ":/" in model and not Path(model).exists():  # models:/, runs:/, s3://, ...
        predictions = _predict_mlflow(videos, model)
    else:
        predictions = _predict_local(videos, Path(model) if model else None)
    yield from predictions


def _predict_local(videos: Sequence[str], model_dir: Path | None):
    from atriom.active.inference import INFERENCE_FILE, VideoClassifier

    if model_dir is None:
        from atriom.config import find_project_root, load_params

        root = find_project_root()
        model_dir = newest_model(root, load_params(root).paths.active)
    if not (model_dir / INFERENCE_FILE).is_file():
        raise ModelError(
            f"{model_dir} is not an exported model (no {INFERENCE_FILE}); pass a run's merged_model directory."
        )
    classifier = VideoClassifier.load(model_dir)
    for video in videos:
        probabilities = classifier.predict_path(video)
        best = int(probabilities.argmax())
        yield (
            video,
            classifier.labels[best],
            float(probabilities[best]),
            dict(zip(classifier.labels, map(float, probabilities), strict=True)),
        )


def _predict_mlflow(videos: Sequence[str], uri: str):
    import mlflow
    import pandas as pd

    from atriom.config import find_project_root
    from atriom.tracking import tracking_uri

    with contextlib.suppress(
        ProjectError
    ):  # outside a project: MLFLOW_TRACKING_URI or MLflow's default
        mlflow.set_tracking_uri(tracking_uri(find_project_root()))
    try:
        loaded = mlflow.pyfunc.load_model(uri)
    except Exception as exc:  # MlflowException and friends
        raise ModelError(f"cannot load {uri}: {str(exc).splitlines()[0]}") from exc
    frame = loaded.predict(pd.DataFrame({"video": list(videos)}))
    classes = [c for c in frame.columns if c != "label"]
    for video, (_, row) in zip(videos, frame.iterrows(), strict=True):
        yield video, row["label"], float(row[row["label"]]), {c: float(row[c]) for c in classes}
