"""Model sources: plug-ins chosen by ``model._target_``.

* :class:`BuiltinModel` -- a model shipped inside the atriom package (the pretrained tiny
  VideoMAE), copied into the Reservoir's outputs so the run carries it;
* :class:`LocalModel` -- a ``save_pretrained`` directory on disk, used in place;
* :class:`HuggingFaceModel` -- a Hub id, resolved through the local Hugging Face cache when
  offline (or when the Hub is unreachable), with the exact commit recorded.

Every source returns a :class:`CollectedModel`; the stage hashes its files, loads it once
(so a broken or mismatched model fails here, in the first minute, not an hour into
training) and writes the model manifest that Active reads.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atriom.artifacts import resolve_hf_snapshot
from atriom.errors import ModelError

MODEL_FILES_SKIP = (".git", ".gitattributes")


@dataclass
class CollectedModel:
    #: Where the files are now (staging output, a local directory or the HF cache).
    path: Path
    #: How a later stage finds it: a project-relative path or ``hf://<repo>@<commit>``.
    location: str
    source: dict[str, Any]


@dataclass
class _ModelSpec:
    """What every model source declares; checked against the model's own config."""

    family: str
    num_frames: int
    image_size: int
    lora_targets: Sequence[str] = field(default_factory=list)


@dataclass
class BuiltinModel(_ModelSpec):
    name: str = "tiny_videomae"

    def collect(self, directory: Path, *, root: Path, final_dir: Path) -> CollectedModel:
        from atriom.models import builtin_model_path

        try:
            source = builtin_model_path(self.name)
        except (ValueError, FileNotFoundError) as exc:
            raise ModelError(f"model.name: {exc}") from exc
        target = directory / "model"
        shutil.copytree(
            source, target, ignore=shutil.ignore_patterns("__pycache__", "*.py", "*.pyc")
        )
        location = (final_dir / "model").relative_to(root).as_posix()
        return CollectedModel(target, location, {"kind": "builtin", "name": self.name})


@dataclass
class LocalModel(_ModelSpec):
    path: str = ""

    def collect(self, directory: Path, *, root: Path, final_dir: Path) -> CollectedModel:
        if not self.path:
            raise ModelError("model.path: set the directory of a save_pretrained() model.")
        path = Path(self.path).expanduser()
        path = path if path.is_absolute() else root / path
        if not (path / "config.json").is_file():
            raise ModelError(
                f"model.path: {path} holds no config.json (expected a save_pretrained() directory)."
            )
        path = path.resolve()
        location = path.relative_to(root).as_posix() if path.is_relative_to(root) else str(path)
        return CollectedModel(path, location, {"kind": "local", "path": location})


@dataclass
class HuggingFaceModel(_ModelSpec):
    repo_id: str = ""
    revision: str = "main"

    def collect(self, directory: Path, *, root: Path, final_dir: Path) -> CollectedModel:
        if not self.repo_id:
            raise ModelError("model.repo_id: set a Hugging Face model id (org/name).")
        path, how = resolve_hf_snapshot(self.repo_id, self.revision)
        commit = path.name
        return CollectedModel(
            path,
            f"hf://{self.repo_id}@{commit}",
            {
                "kind": "huggingface",
                "repo_id": self.repo_id,
                "revision": self.revision,
                "commit": commit,
                "resolved": how,
            },
        )


_LICENSE = re.compile(r"^licen[cs]e:\s*(?P<value>\S.*)$", re.IGNORECASE | re.MULTILINE)


def model_licence(path: Path, provenance: dict[str, Any] | None) -> str | None:
    """The licence from provenance.json, else a model card's front matter."""
    if provenance and provenance.get("licence"):
        return str(provenance["licence"])
    readme = path / "README.md"
    if readme.is_file():
        text = readme.read_text(encoding="utf-8", errors="replace")
        if text.startswith("---") and (m := _LICENSE.search(text.split("---", 2)[1])):
            return m["value"].strip().strip("'\"")
    return None


def preprocessing(path: Path, image_size: int) -> dict[str, Any]:
    """Resize and normalisation from the model's ``preprocessor_config.json`` (ImageNet-free default)."""
    config = path / "preprocessor_config.json"
    data = json.loads(config.read_text(encoding="utf-8")) if config.is_file() else {}
    return {
        "image_size": image_size,
        "image_mean": list(data.get("image_mean", [0.5, 0.5, 0.5])),
        "image_std": list(data.get("image_std", [0.5, 0.5, 0.5])),
        "rescale_factor": float(data.get("rescale_factor", 1 / 255)),
        "from_file": config.is_file(),
    }


def inspect_model(path: Path, spec: dict[str, Any]) -> dict[str, Any]:
    """Load the model once and check it against the config: family, frames, size, LoRA targets."""
    from transformers import AutoConfig, AutoModelForVideoClassification

    try:
        config = AutoConfig.from_pretrained(path)
        model = AutoModelForVideoClassification.from_pretrained(path)
    except Exception as exc:  # transformers raises OSError/ValueError/KeyError alike
        raise ModelError(
            f"model at {path} does not load: {type(exc).__name__}: {str(exc).splitlines()[0]}"
        ) from exc
    problems = []
    if config.model_type != spec["family"]:
        problems.append(f"model.family={spec['family']} but the model is {config.model_type!r}")
    for key in ("num_frames", "image_size"):
        found = getattr(config, key, None)
        if found is not None and found != spec[key]:
            problems.append(f"model.{key}={spec[key]} but the model's config says {found}")
    leaves = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    missing = [t for t in spec.get("lora_targets", []) if t not in leaves]
    if missing:
        candidates = sorted(
            leaves & {"query", "key", "value", "q_proj", "k_proj", "v_proj", "dense", "qkv"}
        )
        problems.append(
            f"model.lora_targets {missing} are not modules of this model (it has {candidates})"
        )
    if problems:
        raise ModelError(
            f"model at {path}: " + "; ".join(problems) + ". Fix conf/model/ to match the model."
        )
    return {
        "model_type": config.model_type,
        "architectures": list(config.architectures or []),
        "num_parameters": int(sum(p.numel() for p in model.parameters())),
        "hidden_size": getattr(config, "hidden_size", None),
        "num_hidden_layers": getattr(config, "num_hidden_layers", None),
    }


def model_files(path: Path) -> list[Path]:
    return sorted(
        p
        for p in path.rglob("*")
        if p.is_file() and not any(part in MODEL_FILES_SKIP for part in p.parts)
    )
