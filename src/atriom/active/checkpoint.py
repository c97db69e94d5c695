"""Training checkpoints: written atomically, loaded without pickle.

A checkpoint is a directory ``checkpoints/step_<n>/`` inside the run directory holding

* ``state.safetensors`` -- every tensor: trainable weights, best weights, optimizer moments,
  torch RNG state;
* ``state.json`` -- everything else (optimizer hyper-parameters, scheduler, Python/NumPy RNG,
  data position, early-stopping state, history), with references into the tensor file;
* ``COMPLETE`` -- written last.

It is built in a temporary directory and renamed into place, then marked complete, so a
process killed at any instant leaves either no checkpoint or a complete one; readers only
trust directories with the marker. Nothing is loaded with pickle: tensors come from
safetensors, the rest from JSON.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from atriom.io import atomic_write_text, write_json

CHECKPOINTS = "checkpoints"
COMPLETE = "COMPLETE"


def _encode(value: Any, tensors: dict[str, torch.Tensor], path: str) -> Any:
    """JSON skeleton of ``value``; tensors and arrays go into ``tensors`` by a path key."""
    if isinstance(value, torch.Tensor):
        tensors[path] = value.detach().cpu().contiguous()
        return {"__tensor__": path}
    if isinstance(value, np.ndarray):
        tensors[path] = torch.from_numpy(np.ascontiguousarray(value))
        return {"__ndarray__": path}
    if isinstance(value, Mapping):
        return {
            "__dict__": [
                [_encode(k, tensors, f"{path}.k{i}"), _encode(v, tensors, f"{path}.{i}")]
                for i, (k, v) in enumerate(value.items())
            ]
        }
    if isinstance(value, tuple):
        return {"__tuple__": [_encode(v, tensors, f"{path}.{i}") for i, v in enumerate(value)]}
    if isinstance(value, list):
        return [_encode(v, tensors, f"{path}.{i}") for i, v in enumerate(value)]
    if isinstance(value, np.generic):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot checkpoint a {type(value).__name__} at {path}")


def _decode(value: Any, tensors: Mapping[str, torch.Tensor]) -> Any:
    if isinstance(value, list):
        return [_decode(v, tensors) for v in value]
    if isinstance(value, dict):
        if "__tensor__" in value:
            return tensors[value["__tensor__"]]
        if "__ndarray__" in value:
            return tensors[value["__ndarray__"]].numpy()
        if "__tuple__" in value:
            return tuple(_decode(v, tensors) for v in value["__tuple__"])
        if "__dict__" in value:
            return {_decode(k, tensors): _decode(v, tensors) for k, v in value["__dict__"]}
    return value


def rng_state() -> dict[str, Any]:
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }


def set_rng_state(state: Mapping[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save_checkpoint(run_dir: Path, name: str, state: Mapping[str, Any]) -> Path:
    """Write ``state`` (nested dicts/lists of tensors, arrays and JSON values) as checkpoint ``name``."""
    root = run_dir / CHECKPOINTS
    final = root / name
    tmp = root / f".{name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    tensors: dict[str, torch.Tensor] = {}
    skeleton = _encode(dict(state), tensors, "s")
    save_file(tensors, str(tmp / "state.safetensors"))
    write_json(tmp / "state.json", skeleton)
    for path in tmp.iterdir():
        with open(path, "rb") as fh:
            os.fsync(fh.fileno())
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    atomic_write_text(final / COMPLETE, name + "\n")
    return final


def load_checkpoint(path: Path) -> dict[str, Any]:
    if not (path / COMPLETE).is_file():
        raise FileNotFoundError(f"{path} is not a complete checkpoint")
    tensors = load_file(str(path / "state.safetensors"))
    skeleton = json.loads((path / "state.json").read_text(encoding="utf-8"))
    return _decode(skeleton, tensors)


def complete_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (by the step number in their name)."""
    root = run_dir / CHECKPOINTS
    if not root.is_dir():
        return []
    done = [
        p
        for p in root.iterdir()
        if p.is_dir() and not p.name.startswith(".") and (p / COMPLETE).is_file()
    ]
    return sorted(done, key=lambda p: int(p.name.rsplit("_", 1)[-1]))


def prune(run_dir: Path, keep: int) -> None:
    """Keep the newest ``keep`` complete checkpoints; drop leftovers of interrupted writes."""
    root = run_dir / CHECKPOINTS
    for leftover in root.glob(".*.tmp-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    for old in complete_checkpoints(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
