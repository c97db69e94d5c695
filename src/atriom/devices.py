"""Compatibility checks and the device plan: pure functions of (resource facts, config).

Reservoir discovers the machine (:mod:`atriom.reservoir.resources`), checks the configured
requirements and writes the plan; Conduit and Active consume it. Nothing here touches the
hardware, so every branch is testable with fabricated facts (CPU, CUDA with and without
bf16, several GPUs, Apple MPS).

Planning rules:

* device: ``cuda`` when a GPU is present (or ``mps`` on Apple silicon), else ``cpu``; a
  ``prefer`` other than ``auto`` must be available.
* dtype: ``fp32`` on CPU and MPS; on CUDA ``bf16`` when every GPU supports it, else ``fp16``;
  an explicit ``precision`` is honoured when the device can do it.
* quantisation (4/8-bit, bitsandbytes) only on CUDA and only when asked; asked elsewhere it is
  turned off with a note.
* DataLoader workers: ``auto`` = usable cores minus one per process (at least 0, at most 8).
* batches: the configured per-device micro-batch; gradient accumulation then reaches the
  configured effective batch across all processes (:func:`batch_plan`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from atriom.errors import AtriomError

GIB = 2**30
DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
QUANTIZATIONS = ("none", "8bit", "4bit")
GPU_POLICIES = ("optional", "required", "none")


class RequirementError(AtriomError):
    """A hard requirement of the config is not met by this machine."""


@dataclass(frozen=True)
class DevicePlan:
    device: str
    dtype: str
    quantization: str
    num_processes: int
    num_workers: int
    per_device_batch_size: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DevicePlan:
        return cls(**{k: data[k] for k in cls.__dataclass_fields__ if k in data})


@dataclass(frozen=True)
class BatchPlan:
    per_device_batch_size: int
    num_processes: int
    gradient_accumulation_steps: int
    #: What the optimizer actually sees per step (>= the configured effective batch).
    effective_batch_size: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _gib(value: float) -> str:
    return f"{value / GIB:.1f} GiB"


def check_requirements(facts: Mapping[str, Any], requirements: Mapping[str, Any]) -> list[str]:
    """Every unmet hard requirement, as one line: requirement, what was found, how to relax it."""
    problems = []
    ram = facts["memory"]["total_bytes"]
    if ram < requirements["min_ram_gb"] * GIB:
        problems.append(
            f"RAM: need >= {requirements['min_ram_gb']} GiB, found {_gib(ram)} total "
            "(relax with reservoir.requirements.min_ram_gb=<GiB>)"
        )
    for name, disk in facts.get("disk", {}).items():
        if disk["free_bytes"] < requirements["min_disk_gb"] * GIB:
            problems.append(
                f"disk for {name} ({disk['path']}): need >= {requirements['min_disk_gb']} GiB free, "
                f"found {_gib(disk['free_bytes'])} (free space or relax reservoir.requirements.min_disk_gb)"
            )
    gpus = facts.get("cuda", {}).get("gpus", [])
    policy = requirements["gpu"]
    if policy not in GPU_POLICIES:
        problems.append(
            f"reservoir.requirements.gpu must be one of {list(GPU_POLICIES)}, got {policy!r}"
        )
    elif policy == "required" and not gpus:
        problems.append(
            "GPU: required, found none (CUDA unavailable; set reservoir.requirements.gpu=optional to run on CPU)"
        )
    min_gpu = requirements["min_gpu_memory_gb"]
    if gpus and min_gpu:
        small = [g for g in gpus if g["memory_bytes"] < min_gpu * GIB]
        if small:
            found = ", ".join(f"{g['name']} {_gib(g['memory_bytes'])}" for g in small)
            problems.append(
                f"GPU memory: need >= {min_gpu} GiB per GPU, found {found} "
                "(relax with reservoir.requirements.min_gpu_memory_gb=<GiB>)"
            )
    return problems


def plan_devices(facts: Mapping[str, Any], device_cfg: Mapping[str, Any]) -> DevicePlan:
    """The device plan for these facts and this ``reservoir.device`` config (pure)."""
    notes: list[str] = []
    gpus = facts.get("cuda", {}).get("gpus", [])
    has_mps = bool(facts.get("mps", {}).get("available"))
    prefer = device_cfg["prefer"]
    if prefer not in DEVICES:
        raise RequirementError(
            f"reservoir.device.prefer must be one of {list(DEVICES)}, got {prefer!r}"
        )
    if prefer == "auto":
        device = "cuda" if gpus else ("mps" if has_mps else "cpu")
    elif prefer == "cuda" and not gpus:
        raise RequirementError(
            "reservoir.device.prefer=cuda: no CUDA GPU found (set reservoir.device.prefer=auto or cpu)"
        )
    elif prefer == "mps" and not has_mps:
        raise RequirementError(
            "reservoir.device.prefer=mps: Apple MPS is not available (set reservoir.device.prefer=auto or cpu)"
        )
    else:
        device = prefer

    num_processes = len(gpus) if device == "cuda" else 1
    precision = device_cfg["precision"]
    if precision not in PRECISIONS:
        raise RequirementError(
            f"reservoir.device.precision must be one of {list(PRECISIONS)}, got {precision!r}"
        )
    bf16 = device == "cuda" and all(g.get("bf16") for g in gpus)
    if precision == "auto":
        dtype = ("bf16" if bf16 else "fp16") if device == "cuda" else "fp32"
    elif precision == "bf16" and device == "cuda" and not bf16:
        raise RequirementError(
            "reservoir.device.precision=bf16: these GPUs lack bf16 (compute capability < 8.0); "
            "use precision=auto or fp16"
        )
    elif precision in ("bf16", "fp16") and device != "cuda":
        notes.append(f"precision {precision} asked on {device}: using fp32")
        dtype = "fp32"
    else:
        dtype = precision

    quantization = device_cfg["quantization"]
    if quantization not in QUANTIZATIONS:
        raise RequirementError(
            f"reservoir.device.quantization must be one of {list(QUANTIZATIONS)}, got {quantization!r}"
        )
    if quantization != "none" and device != "cuda":
        notes.append(f"quantization {quantization} needs CUDA (bitsandbytes); disabled on {device}")
        quantization = "none"

    workers = device_cfg["num_workers"]
    if workers == "auto":
        cores = facts["cpu"].get("usable_cores") or facts["cpu"].get("logical_cores") or 1
        workers = max(0, min(8, cores // num_processes - 1))
    elif not isinstance(workers, int) or workers < 0:
        raise RequirementError(
            f"reservoir.device.num_workers must be 'auto' or an int >= 0, got {workers!r}"
        )

    per_device = int(device_cfg["per_device_batch_size"])
    if per_device < 1:
        raise RequirementError(
            f"reservoir.device.per_device_batch_size must be >= 1, got {per_device}"
        )
    return DevicePlan(device, dtype, quantization, num_processes, workers, per_device, notes)


def batch_plan(plan: DevicePlan | Mapping[str, Any], effective_batch_size: int) -> BatchPlan:
    """Gradient-accumulation steps so that ``per-device x processes x steps >= effective``.

    The micro-batch shrinks when it alone exceeds the effective batch (one process, small
    effective batch), so small configs don't silently train on bigger batches.
    """
    if isinstance(plan, Mapping):
        plan = DevicePlan.from_dict(plan)
    if effective_batch_size < 1:
        raise RequirementError(
            f"active.effective_batch_size must be >= 1, got {effective_batch_size}"
        )
    processes = plan.num_processes
    per_device = min(plan.per_device_batch_size, max(1, effective_batch_size // processes))
    steps = max(1, math.ceil(effective_batch_size / (per_device * processes)))
    return BatchPlan(per_device, processes, steps, per_device * processes * steps)
