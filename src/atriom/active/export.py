"""Deployable outputs: adapters, a merged model, an MLflow pyfunc model in the registry,
a confusion-matrix chart and a model card."""

from __future__ import annotations

import io
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from atriom.active.inference import INFERENCE_FILE
from atriom.io import atomic_write_bytes, atomic_write_text, read_json, sha256_json, write_json

ALIAS = "candidate"


def save_adapters(model, directory: Path, base_location: str) -> Path:
    """PEFT's own format (``adapter_config.json`` + ``adapter_model.safetensors``).

    The base is named by its manifest location (project-relative or ``hf://``), not by a path
    on this machine.
    """
    model.save_pretrained(directory)
    config = read_json(directory / "adapter_config.json")
    config["base_model_name_or_path"] = base_location
    write_json(directory / "adapter_config.json", config)
    return directory


def save_merged(model, directory: Path, base_dir: Path, info: Mapping[str, Any]) -> Path:
    """The adapted model as a plain ``transformers`` model (LoRA merged in), ready to serve."""
    from peft import PeftModel

    merged = model.merge_and_unload() if isinstance(model, PeftModel) else model
    merged.save_pretrained(directory)
    processor = base_dir / "preprocessor_config.json"
    if processor.is_file():
        shutil.copyfile(processor, directory / "preprocessor_config.json")
    write_json(directory / INFERENCE_FILE, dict(info))
    return directory


def confusion_png(
    matrix: Sequence[Sequence[int]], class_names: Sequence[str], path: Path, title: str
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    data = np.asarray(matrix)
    size = max(3.5, 0.7 * len(class_names) + 1.5)
    fig, ax = plt.subplots(figsize=(size, size * 0.9), dpi=100)
    ax.imshow(data, cmap="Blues")
    ax.set_xticks(range(len(class_names)), class_names, rotation=30, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    threshold = data.max() / 2 if data.size else 0
    for (i, j), value in np.ndenumerate(data):
        ax.text(
            j,
            i,
            str(value),
            ha="center",
            va="center",
            color="white" if value > threshold else "black",
        )
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def _requirements() -> list[str]:
    from importlib import metadata

    pins = []
    for name in ("torch", "transformers", "safetensors", "numpy", "pandas", "av", "mlflow"):
        version = metadata.version(name).split("+", 1)[0]
        pins.append(f"{name}=={version}")
    return pins


def log_pyfunc(merged_dir: Path, registered_name: str, log) -> dict[str, Any]:
    """Log the merged model as an MLflow pyfunc model, register it, point ``@candidate`` at it."""
    import warnings

    import mlflow

    import atriom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "add type hints": inputs are paths or arrays
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(__file__).with_name("pyfunc_entry.py")),
            artifacts={"model": str(merged_dir)},
            code_paths=[str(Path(atriom.__file__).parent)],
            pip_requirements=_requirements(),
        )
    version = mlflow.register_model(info.model_uri, registered_name)
    client = mlflow.MlflowClient()
    client.set_registered_model_alias(registered_name, ALIAS, version.version)
    log.info(
        "registered %s version %s as @%s (%s)",
        registered_name,
        version.version,
        ALIAS,
        info.model_uri,
    )
    return {
        "model_uri": info.model_uri,
        "registered_name": registered_name,
        "version": int(version.version),
        "alias": ALIAS,
    }


def model_card(
    *,
    title: str,
    model_manifest: Mapping[str, Any],
    dataset_digest: str,
    dataset_source: str,
    counts: Mapping[str, Mapping[str, int]],
    peft: Mapping[str, Any],
    params: Mapping[str, int],
    metrics: Mapping[str, Any],
    test: Mapping[str, Any],
    env_digest: str | None,
    data_licence: str,
    registered: Mapping[str, Any] | None,
    early_stopping: str,
) -> str:
    """A Markdown model card: what it is for, what it learned from, how well, its limits."""
    classes = list(test["per_class"])
    provenance = model_manifest.get("provenance") or {}
    rows = "\n".join(
        f"| {c} | {test['per_class'][c]['precision']:.3f} | {test['per_class'][c]['recall']:.3f} | {test['per_class'][c]['support']} |"
        for c in classes
    )
    split_rows = "\n".join(
        f"| {s} | {sum(v.values())} | " + ", ".join(f"{k}: {n}" for k, n in v.items()) + " |"
        for s, v in counts.items()
    )
    test_time = list(metrics.get("test_time") or [])
    tta_note = (
        f"; logits averaged over every combination of {', '.join(test_time)} (test-time augmentation)"
        if test_time
        else ""
    )
    tta_views = f" x {test['tta_views']} test-time views" if test.get("tta_views", 1) > 1 else ""
    registry = (
        f"MLflow registry: `{registered['registered_name']}` version {registered['version']} (alias `@{registered['alias']}`)."
        if registered
        else "Not registered."
    )
    return f"""# Model card: {title}

## Intended use
Classifies short video clips into {len(classes)} classes ({", ".join(classes)}), for the task the
training data defines. Input: a video file or RGB frames; the model samples frames as
evaluation did ({", ".join(f"{k}={v}" for k, v in metrics["sampler"].items())}){tta_note}. Output: class probabilities.
Not for decisions about people, nor for data unlike the training data.

## Model
- Base: `{model_manifest["location"]}` ({model_manifest.get("model_type")}, {model_manifest.get("num_parameters", 0) / 1e6:.2f} M parameters),
  digest `{model_manifest["digest"][:16]}`, licence {model_manifest.get("licence") or "unknown"}.
- Base provenance: {provenance.get("command", "not recorded")} (seed {provenance.get("seed", "n/a")}).
- Adaptation: {peft["method"]}{f" r={peft['r']} alpha={peft['alpha']} on {list(peft['target_modules'])}" if peft["method"] in ("lora", "dora") else ""};
  {params["trainable"]:,} of {params["total"]:,} parameters trained (the classifier head always).
- {registry}

## Data
- Source: `{dataset_source}`, dataset manifest digest `{dataset_digest[:16]}`; licence of the data: {data_licence}.

| split | clips | per class |
|---|---|---|
{split_rows}

## Evaluation
Test set: {test["n"]} videos ({test.get("views", test["n"])} clips evaluated{tta_views}; logits averaged per video).

| metric | value |
|---|---|
| accuracy | {test["accuracy"]:.4f} |
| macro-F1 | {test["macro_f1"]:.4f} |
| loss | {test["loss"]:.4f} |
| validation accuracy of the exported epoch | {metrics["val"]["val_accuracy"]:.4f} (epoch {metrics["best_epoch"]}, best `{early_stopping}`) |

| class | precision | recall | support |
|---|---|---|---|
{rows}

## Limitations
- Measured on {test["n"]} test videos: small test sets give wide confidence intervals.
- The test set comes from the same source and generator as the training data; expect lower
  accuracy on other cameras, resolutions, frame rates and content.
- Frames are resized to {model_manifest.get("image_size")} px and {model_manifest.get("num_frames")} frames per clip: fine detail and
  long-range events are out of reach.

## Environment
Environment report digest `{(env_digest or "n/a")[:16]}` (the Reservoir run's `env.json`).
"""


def environment_digest(reservoir_dir: Path) -> str | None:
    path = reservoir_dir / "env.json"
    if not path.is_file():
        return None
    env = read_json(path)
    return sha256_json(
        {
            "packages": env.get("packages"),
            "python": env.get("python"),
            "platform": env.get("platform"),
        }
    )


def write_card(path: Path, text: str) -> Path:
    return atomic_write_text(path, text)
