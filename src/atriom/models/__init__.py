"""Built-in base models shipped inside the package.

LoRA adapts a *pretrained* base: over a randomly initialised transformer the low-rank updates
have nothing to steer and the default task stays at chance. No model hub is reachable in the
embedded default, so the base it adapts ships here, next to the script that made it
(:mod:`atriom.models.pretrain`), with its provenance (``provenance.json``) and model card
(``README.md``) beside the weights.

Import-light on purpose: nothing here loads torch or transformers.
"""

from __future__ import annotations

from pathlib import Path

#: The built-in bases, by name: each is a directory next to this file.
BUILTIN_MODELS = ("tiny_videomae",)


def builtin_model_path(name: str = "tiny_videomae") -> Path:
    """The directory of built-in base ``name``, ready for ``from_pretrained``.

    A plain path next to this module (the package is installed unzipped, editable or as a
    wheel), so it can be recorded in manifests and passed to any loader.
    """
    if name not in BUILTIN_MODELS:
        raise ValueError(f"unknown built-in model {name!r}; choose from {list(BUILTIN_MODELS)}")
    path = Path(__file__).resolve().parent / name
    if not (path / "config.json").is_file():
        raise FileNotFoundError(
            f"{path} holds no config.json: rebuild it with "
            f"`python -m atriom.models.pretrain --out {path}`"
        )
    return path


__all__ = ["BUILTIN_MODELS", "builtin_model_path"]
