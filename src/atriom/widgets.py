"""Interactive tuning: ipywidgets built from the config schema, turned into DVC experiments.

:class:`TuningPanel` reads the schema (``atriom.config.schema``) for each tunable key's type,
``conf/`` (composed) for its current value and the options of config groups, and
builds a slider, dropdown or checkbox per key. :meth:`TuningPanel.overrides` gives the Hydra
overrides for what was changed (``active.lr=0.0003``, ``active/peft=dora``), which
:meth:`TuningPanel.launch` runs as ``dvc exp run -S ...``. Everything but ``widget()`` and
``launch()`` works without a browser or a kernel (and is tested that way).
"""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from atriom.config import compose
from atriom.config.schema import AtriomConfig
from atriom.errors import ConfigError


@dataclass(frozen=True)
class Tunable:
    #: A dotted key (``active.lr``) or a config group (``active/peft``).
    key: str
    #: For numbers: (min, max); ``log`` for a log-scale slider.
    bounds: tuple[float, float] | None = None
    log: bool = False
    step: float | None = None


#: What the panel offers by default: the knobs a tuning afternoon turns.
DEFAULT_TUNABLES: tuple[Tunable, ...] = (
    Tunable("active/peft"),
    Tunable("active.peft.r", (1, 64)),
    Tunable("active.lr", (1e-5, 1e-1), log=True),
    Tunable("active.epochs", (1, 100)),
    Tunable("active.effective_batch_size", (1, 128)),
    Tunable("active.warmup_ratio", (0.0, 0.5), step=0.01),
    Tunable("active.weight_decay", (0.0, 0.2), step=0.005),
    Tunable("active/curriculum"),
    Tunable("active.early_stopping.patience", (1, 30)),
    Tunable("seed", (0, 10_000)),
)


def schema_type(key: str) -> type:
    """The Python type the schema declares for dotted ``key`` (``active.lr`` -> float)."""
    cls: Any = AtriomConfig
    parts = key.split(".")
    for index, part in enumerate(parts):
        hints = typing.get_type_hints(cls)
        if part not in hints:
            raise ConfigError(
                f"{key}: not a key of the config schema ({'.'.join(parts[:index]) or 'top level'})."
            )
        hint = hints[part]
        if index == len(parts) - 1:
            args = [a for a in typing.get_args(hint) if a is not type(None)]
            return (
                args[0]
                if args and typing.get_origin(hint) is not list
                else (typing.get_origin(hint) or hint)
            )
        if not dataclasses.is_dataclass(hint):
            raise ConfigError(f"{key}: {'.'.join(parts[: index + 1])} is not a section.")
        cls = hint


def group_options(root: Path, group: str) -> list[str]:
    """The options of a config group: the YAML files of ``conf/<group>/``."""
    directory = root / "conf" / group
    options = sorted(p.stem for p in directory.glob("*.yaml") if not p.name.startswith("_"))
    if not options:
        raise ConfigError(f"{group}: no config group at {directory}.")
    return options


class TuningPanel:
    """Tunable values, their widgets, and the overrides they add up to."""

    def __init__(self, root: Path, tunables: Sequence[Tunable] = DEFAULT_TUNABLES):
        self.root = Path(root)
        # The baseline is conf/ as DVC will compose it for `dvc exp run` (not the workspace's
        # params.yaml, which may hold an earlier experiment's values).
        self.cfg = compose(self.root)
        self.tunables = list(tunables)
        self.specs: dict[str, dict[str, Any]] = {t.key: self._spec(t) for t in self.tunables}
        self.values: dict[str, Any] = {key: spec["value"] for key, spec in self.specs.items()}
        self._widgets: dict[str, Any] = {}

    def _current_group_choice(self, group: str, options: list[str]) -> str:
        """Which option of ``group`` params.yaml was composed with (by content)."""
        section = OmegaConf.to_container(
            OmegaConf.select(self.cfg, group.replace("/", ".")), resolve=True
        )
        for option in options:
            candidate = OmegaConf.load(self.root / "conf" / group / f"{option}.yaml")
            candidate = {
                k: v for k, v in OmegaConf.to_container(candidate).items() if k != "defaults"
            }
            if all(
                section.get(k) == v
                for k, v in candidate.items()
                if not isinstance(v, str) or "${" not in v
            ):
                return option
        return options[0]

    def _spec(self, tunable: Tunable) -> dict[str, Any]:
        if "/" in tunable.key:
            options = group_options(self.root, tunable.key)
            return {
                "kind": "choice",
                "options": options,
                "value": self._current_group_choice(tunable.key, options),
            }
        kind = schema_type(tunable.key)
        value = OmegaConf.select(self.cfg, tunable.key)
        if kind is bool:
            return {"kind": "bool", "value": bool(value)}
        if kind in (int, float):
            low, high = tunable.bounds or (min(0, value), max(1, value * 4))
            return {
                "kind": kind.__name__,
                "min": low,
                "max": high,
                "log": tunable.log,
                "step": tunable.step,
                "value": value,
            }
        return {"kind": "text", "value": str(value)}

    # -- values and overrides (no widgets needed) -----------------------------------------------

    def set(self, key: str, value: Any) -> None:
        """Change a value as a widget would (checked against the spec)."""
        spec = self.specs.get(key)
        if spec is None:
            raise ConfigError(f"{key}: not one of the panel's keys {list(self.specs)}.")
        if spec["kind"] == "choice" and value not in spec["options"]:
            raise ConfigError(f"{key}: {value!r} is not one of {spec['options']}.")
        if spec["kind"] in ("int", "float"):
            value = int(value) if spec["kind"] == "int" else float(value)
            if not spec["min"] <= value <= spec["max"]:
                raise ConfigError(f"{key}: {value} is outside [{spec['min']}, {spec['max']}].")
        self.values[key] = value
        if key in self._widgets:
            self._widgets[key].value = value

    def overrides(self) -> list[str]:
        """Hydra overrides for every value that differs from conf/, groups first."""
        changed = [(k, v) for k, v in self.values.items() if v != self.specs[k]["value"]]
        changed.sort(key=lambda kv: "/" not in kv[0])
        return [f"{k}={_format(v)}" for k, v in changed]

    def command(self, extra: Sequence[str] = ()) -> list[str]:
        args = [sys.executable, "-m", "dvc", "exp", "run"]
        for override in [*extra, *self.overrides()]:
            args += ["-S", override]
        return args

    def launch(self, extra: Sequence[str] = (), echo: Callable[[str], None] = print) -> int:
        """Run the chosen variant as a DVC experiment, streaming its output; return the exit code."""
        process = subprocess.Popen(
            self.command(extra),
            cwd=self.root,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert process.stdout is not None
        for line in process.stdout:
            echo(line.rstrip("\n"))
        return process.wait()

    # -- ipywidgets --------------------------------------------------------------------------------

    def widget(self):
        """A VBox of one control per tunable plus a Run button and an output area."""
        import ipywidgets as w

        controls = []
        for key, spec in self.specs.items():
            style = {"description_width": "220px"}
            layout = w.Layout(width="520px")
            if spec["kind"] == "choice":
                control = w.Dropdown(
                    options=spec["options"],
                    value=spec["value"],
                    description=key,
                    style=style,
                    layout=layout,
                )
            elif spec["kind"] == "bool":
                control = w.Checkbox(value=spec["value"], description=key, style=style)
            elif spec["kind"] == "float" and spec["log"]:
                control = w.FloatLogSlider(
                    value=spec["value"],
                    base=10,
                    min=math.log10(spec["min"]),
                    max=math.log10(spec["max"]),
                    step=0.05,
                    description=key,
                    style=style,
                    layout=layout,
                    readout_format=".1e",
                )
            elif spec["kind"] == "float":
                control = w.FloatSlider(
                    value=spec["value"],
                    min=spec["min"],
                    max=spec["max"],
                    step=spec["step"] or (spec["max"] - spec["min"]) / 100,
                    description=key,
                    style=style,
                    layout=layout,
                )
            elif spec["kind"] == "int":
                control = w.IntSlider(
                    value=spec["value"],
                    min=spec["min"],
                    max=spec["max"],
                    description=key,
                    style=style,
                    layout=layout,
                )
            else:
                control = w.Text(value=spec["value"], description=key, style=style, layout=layout)
            control.observe(
                lambda change, key=key: self.values.__setitem__(key, change["new"]), names="value"
            )
            self._widgets[key] = control
            controls.append(control)
        preview = w.HTML()
        output = w.Output(layout=w.Layout(max_height="320px", overflow="auto"))
        button = w.Button(description="Run as DVC experiment", button_style="primary")

        def refresh(_=None):
            preview.value = (
                "<code>dvc exp run " + " ".join(f"-S {o}" for o in self.overrides()) + "</code>"
            )

        def run(_):
            button.disabled = True
            with output:
                code = self.launch()
                print(f"exit code {code}")
            button.disabled = False

        for control in controls:
            control.observe(refresh, names="value")
        button.on_click(run)
        refresh()
        return w.VBox([*controls, preview, button, output])


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
