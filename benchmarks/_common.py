"""What the benchmark scripts share: a prepared project, and their section of docs/benchmarks.md."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_MD = ROOT / "docs" / "benchmarks.md"


def write_section(path: Path, heading: str, body: str, append: bool = False) -> None:
    """Replace the section that starts with ``heading`` (up to the next ``## ``) by ``body``,
    or add ``body`` to its end with ``append``; other sections stay as they are. ``body``
    starts with the heading itself unless appending."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    start = text.find(heading + "\n")
    if start < 0:
        new = body if not append else f"{heading}\n\n{body}"
        text = text.rstrip("\n") + "\n\n" + new.rstrip("\n") + "\n"
    else:
        end = text.find("\n## ", start + len(heading))
        rest = text[end + 1 :] if end >= 0 else ""
        ours = text[start : end + 1] if end >= 0 else text[start:]
        new = ours.rstrip("\n") + "\n\n" + body if append else body
        text = text[:start] + new.rstrip("\n") + "\n" + ("\n" + rest if rest else "")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def atriom_env() -> dict[str, str]:
    """The environment for ``atriom`` subprocesses: this interpreter's tools, no MLflow URI
    inherited (each prepared project keeps its own ``mlflow.db``)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    return env


def prepare_project(workdir: Path, clips_per_class: int | None = None) -> Path:
    """A copy of this project's configuration in ``workdir/project`` with Reservoir and
    Conduit run by the real ``atriom run`` commands (optionally on a resized dataset)."""
    project = workdir / "project"
    project.mkdir(parents=True)
    for name in ("conf", "dvc.yaml", "requirements.lock"):
        source = ROOT / name
        (shutil.copytree if source.is_dir() else shutil.copy2)(source, project / name)
    env = atriom_env()

    def run(*args: str) -> None:
        subprocess.run(["atriom", *args], cwd=project, env=env, check=True, capture_output=True)

    resize = (
        [] if clips_per_class is None else [f"reservoir.dataset.clips_per_class={clips_per_class}"]
    )
    run("compose", *resize)
    run("run", "reservoir")
    run("run", "conduit")
    return project
