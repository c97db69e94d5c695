"""Resource discovery: CPU, RAM, disk and accelerators."""

from __future__ import annotations

import os
import platform
import shutil
from pathlib import Path
from typing import Any


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _gpus() -> list[dict[str, Any]]:
    import torch

    gpus = []
    if torch.cuda.is_available():
        for index in range(torch.cuda.device_count()):
            props = torch.cuda.get_device_properties(index)
            gpus.append(
                {
                    "index": index,
                    "name": props.name,
                    "memory_bytes": int(props.total_memory),
                    "compute_capability": f"{props.major}.{props.minor}",
                    "bf16": bool(props.major >= 8),
                }
            )
    return gpus


def resource_report(paths: dict[str, Path]) -> dict[str, Any]:
    """One JSON-able report; ``paths`` names the directories whose free disk matters."""
    import psutil
    import torch

    memory = psutil.virtual_memory()
    disks = {}
    for name, path in paths.items():
        probe = path
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        usage = shutil.disk_usage(probe)
        disks[name] = {"path": str(path), "free_bytes": usage.free, "total_bytes": usage.total}
    mps = getattr(torch.backends, "mps", None)
    return {
        "cpu": {
            "model": _cpu_model(),
            "logical_cores": os.cpu_count(),
            "physical_cores": psutil.cpu_count(logical=False),
            "usable_cores": len(os.sched_getaffinity(0))
            if hasattr(os, "sched_getaffinity")
            else os.cpu_count(),
            "architecture": platform.machine(),
        },
        "memory": {"total_bytes": memory.total, "available_bytes": memory.available},
        "disk": disks,
        "cuda": {
            "available": torch.cuda.is_available(),
            "version": torch.version.cuda,
            "gpus": _gpus(),
        },
        "mps": {"available": bool(mps and mps.is_available())},
    }
