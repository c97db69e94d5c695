"""``atriom sweep``: a search over Hydra sweep overrides, each trial a queued DVC experiment.

Design: DVC stays the source of truth for *what* was run (every trial is a DVC experiment:
``dvc exp show`` compares them, ``dvc exp apply`` restores one) and MLflow for *how it went*
(every trial runs the whole pipeline, so it gets its own pipeline parent run, tagged with
the DVC experiment name). Trials are named ``<sweep>-<n>``, so both tools group them.

Overrides use Hydra's sweep syntax:

* ``active.lr=1e-4,3e-4,1e-3`` or ``active/peft=choice(lora,dora)`` -- every value;
* ``active.peft.r=range(4,17,4)`` -- a range;
* ``active.lr=tag(log,interval(1e-5,1e-2))`` -- a continuous interval: needs ``--samples``,
  which turns the grid into a seeded random search.
"""

from __future__ import annotations

import itertools
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from atriom.errors import AtriomError, ConfigError


class SweepError(AtriomError):
    """The sweep could not be queued or run."""


def _format(value: Any) -> str:
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def trials(overrides: list[str], samples: int | None = None, seed: int = 0) -> list[list[str]]:
    """The override lists of every trial: the grid of discrete sweeps, or ``samples`` draws."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import IntervalSweep
    from hydra.errors import HydraException

    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except HydraException as exc:
        raise ConfigError(f"sweep: {exc}") from exc
    fixed: list[str] = []
    discrete: list[tuple[str, list[str]]] = []
    intervals: list[tuple[str, IntervalSweep]] = []
    for override in parsed:
        key = override.get_key_element()
        if not override.is_sweep_override():
            fixed.append(override.input_line)
        elif isinstance(override.value(), IntervalSweep):
            intervals.append((key, override.value()))
        else:
            discrete.append((key, list(override.sweep_string_iterator())))
    if intervals and not samples:
        names = ", ".join(k for k, _ in intervals)
        raise ConfigError(
            f"sweep: {names} is a continuous interval; give --samples N for a random search."
        )
    if not discrete and not intervals:
        raise ConfigError("sweep: no sweep override (use k=a,b or choice()/range()/interval()).")
    if samples:
        rng = np.random.default_rng(seed)
        result = []
        for _ in range(samples):
            trial = list(fixed)
            for key, values in discrete:
                trial.append(f"{key}={values[int(rng.integers(len(values)))]}")
            for key, interval in intervals:
                low, high = float(interval.start), float(interval.end)
                if "log" in interval.tags:
                    value = math.exp(rng.uniform(math.log(low), math.log(high)))
                else:
                    value = rng.uniform(low, high)
                trial.append(f"{key}={_format(value)}")
            result.append(trial)
        return result
    return [
        [
            *fixed,
            *(f"{key}={value}" for key, value in zip([k for k, _ in discrete], combo, strict=True)),
        ]
        for combo in itertools.product(*(values for _, values in discrete))
    ]


def _dvc(args: list[str], root: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "dvc", *args], cwd=root, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise SweepError(
            f"`dvc {' '.join(args)}` failed:\n{(result.stderr or result.stdout).strip()[-2000:]}"
        )
    return result


def queue_sweep(root: Path, all_trials: list[list[str]], name: str | None = None) -> list[str]:
    """Queue every trial as a DVC experiment named ``<name>-<n>``; return the names."""
    name = name or time.strftime("sweep-%Y%m%d-%H%M%S")
    names = []
    for number, trial in enumerate(all_trials, start=1):
        exp = f"{name}-{number}"
        args = ["exp", "run", "--queue", "--name", exp]
        for override in trial:
            args += ["-S", override]
        _dvc(args, root)
        names.append(exp)
    return names


def run_queued(root: Path, jobs: int = 1) -> None:
    """Run every queued experiment (``dvc exp run --run-all``) and wait for them."""
    result = subprocess.run(
        [sys.executable, "-m", "dvc", "exp", "run", "--run-all", "--jobs", str(jobs)], cwd=root
    )
    if result.returncode != 0:
        raise SweepError(
            "some queued experiments failed: see `dvc queue status` and `dvc queue logs <name>`."
        )
