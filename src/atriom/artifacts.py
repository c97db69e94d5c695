"""Readers for the files phases hand each other (the typed contract between phases).

Phases never import each other's internals; they read these outputs:

* ``<reservoir>/dataset.json`` -- the dataset manifest (clips, labels, hashes, video facts);
* ``<reservoir>/model.json`` -- the model manifest (where the base model is, its hashes,
  preprocessing), resolved to a loadable directory by :func:`model_dir`;
* ``<reservoir>/device_plan.json`` -- device, dtype, quantisation, workers, batch size;
* ``<conduit>/clip_index.json`` and ``label_map.json`` -- what each training sample is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from atriom.errors import ModelError, UpstreamError
from atriom.io import read_json

DATASET_MANIFEST = "dataset.json"
MODEL_MANIFEST = "model.json"
DEVICE_PLAN = "device_plan.json"
CLIP_INDEX = "clip_index.json"
LABEL_MAP = "label_map.json"


def read_output(directory: Path, name: str, phase: str) -> Any:
    """``directory/name`` as JSON, or an error saying which stage to run."""
    path = directory / name
    if not path.is_file():
        raise UpstreamError(
            f"{path} is missing: run `atriom run {phase}` (or `dvc repro {phase}`) first."
        )
    try:
        return read_json(path)
    except (OSError, ValueError) as exc:
        raise UpstreamError(f"{path} is unreadable ({exc}); re-run `atriom run {phase}`.") from exc


def resolve_hf_snapshot(repo_id: str, revision: str) -> tuple[Path, str]:
    """The local snapshot of ``repo_id@revision``: from the cache first, else downloaded.

    Returns the snapshot directory (named by its commit) and ``"cache"`` or ``"hub"``.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        return Path(snapshot_download(repo_id, revision=revision, local_files_only=True)), "cache"
    except HFValidationError as exc:
        raise ModelError(
            f"model.repo_id: {repo_id!r} is not a valid Hugging Face id ({exc})."
        ) from exc
    except (LocalEntryNotFoundError, FileNotFoundError, OSError):
        pass
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")
    hint = (
        f"run `huggingface-cli download {repo_id} --revision {revision}` on a connected machine "
        "(and copy its cache, HF_HUB_CACHE), or point model at a local directory (model=local model.path=...)."
    )
    if offline:
        raise ModelError(
            f"model {repo_id}@{revision} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set: {hint}"
        )
    try:
        return Path(snapshot_download(repo_id, revision=revision)), "hub"
    except Exception as exc:  # network errors come in many types
        raise ModelError(
            f"model {repo_id}@{revision} is neither in the local Hugging Face cache nor reachable "
            f"({type(exc).__name__}): {hint}"
        ) from exc


def model_dir(manifest: dict[str, Any], root: Path) -> Path:
    """The directory ``from_pretrained`` loads for a model manifest's ``location``."""
    location = manifest["location"]
    if location.startswith("hf://"):
        repo_id, _, commit = location[5:].rpartition("@")
        path, _ = resolve_hf_snapshot(repo_id, commit)
        return path
    path = Path(location)
    return path if path.is_absolute() else root / path
