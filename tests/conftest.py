"""Shared fixtures: temporary copies of the reference project and a tiny pipeline run."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
#: What a project needs besides the installed library.
PROJECT_FILES = (
    "conf",
    "params.yaml",
    "dvc.yaml",
    "requirements.lock",
    ".dvcignore",
    ".gitignore",
    "data/.gitignore",
    "data/active/.gitignore",
)
GIT_ENV = {
    "GIT_AUTHOR_NAME": "atriom-tests",
    "GIT_AUTHOR_EMAIL": "tests@atriom.invalid",
    "GIT_COMMITTER_NAME": "atriom-tests",
    "GIT_COMMITTER_EMAIL": "tests@atriom.invalid",
}


def copy_project(dest: Path, *, with_src: bool = False) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    names = (*PROJECT_FILES, "src") if with_src else PROJECT_FILES
    for name in names:
        source = ROOT / name
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            # Links stay links: the template's links then point at the copy's own files.
            shutil.copytree(
                source,
                target,
                symlinks=True,
                ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"),
            )
        else:
            shutil.copy2(source, target)
    return dest


def compose_tiny(root: Path, *overrides: str) -> None:
    from atriom.config import compose, write_params

    write_params(root, compose(root, ["experiment=tiny", *overrides]))


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for subprocesses: the venv first on PATH, no inherited MLflow/DVC state."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env.update(GIT_ENV)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def run(
    cmd: list[str], cwd: Path, check: bool = True, timeout: float = 900, **env: str
) -> subprocess.CompletedProcess:
    result = subprocess.run(
        cmd, cwd=cwd, env=clean_env(**env), capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{cmd} exited {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
    return result


def mlflow_runs(root: Path) -> list:
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")
    experiments = client.search_experiments()
    return client.search_runs(
        [e.experiment_id for e in experiments], order_by=["attributes.start_time ASC"]
    )


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch):
    for key in list(os.environ):
        if key.startswith(("MLFLOW_", "DVC_")):
            monkeypatch.delenv(key)
    for key, value in GIT_ENV.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """A tiny-profile copy of the reference project, as the working directory."""
    root = copy_project(tmp_path / "project")
    compose_tiny(root)
    monkeypatch.chdir(root)
    return root


@pytest.fixture(scope="session")
def pipeline(tmp_path_factory) -> Path:
    """All three stages run once, in process, on the tiny profile."""
    from atriom.stage import run_stage

    root = copy_project(tmp_path_factory.mktemp("pipeline") / "project")
    compose_tiny(root)

    def pop_tracking_env() -> dict[str, str]:
        # mlflow.set_tracking_uri() exports MLFLOW_TRACKING_URI: don't let it leak.
        return {k: os.environ.pop(k) for k in list(os.environ) if k.startswith(("MLFLOW_", "DVC_"))}

    saved = pop_tracking_env()
    try:
        for phase in ("reservoir", "conduit", "active"):
            run_stage(phase, root=root)
    finally:
        pop_tracking_env()
        os.environ.update(saved)
    return root
