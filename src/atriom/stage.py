"""The stage runner every phase shares.

``run_stage(phase)`` loads ``params.yaml`` (plus overrides), reads the upstream manifests,
opens the stage's MLflow run, lets the phase's ``stage.run(ctx)`` write into a staging
directory, then writes the effective config and the manifest (last) and swaps the staging
directory into ``paths.<phase>``. A failure leaves the previous outputs untouched.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from atriom.config import STAGE_UPSTREAM, find_project_root, load_params, stage_params
from atriom.io import (
    MANIFEST_NAME,
    Manifest,
    atomic_write_text,
    read_manifest,
    sha256_json,
    staged_dir,
    write_manifest,
)
from atriom.logs import get_logger, log_to_file, setup_console
from atriom.runtime import seed_everything
from atriom.tracking import NullRun, StageRun, StageTerminated, stage_run

CONFIG_NAME = "config.yaml"
_SMALL_ARTIFACT_BYTES = 5 * 1024 * 1024


@dataclass
class StageContext:
    """What a phase's ``run(ctx)`` gets: config, where to write, the MLflow run, upstream."""

    phase: str
    root: Path
    cfg: DictConfig
    out: Path
    run: StageRun
    upstream: dict[str, dict[str, Any]]
    #: Facts for the manifest's ``extra`` (small, JSON-serialisable).
    summary: dict[str, Any] = field(default_factory=dict)
    #: Paths relative to ``out`` to log to MLflow after the outputs are committed.
    artifacts: list[str] = field(default_factory=list)
    #: Files of the committed output directory to delete once the new outputs are in
    #: place (e.g. history beyond what is kept).
    remove_after_commit: list[Path] = field(default_factory=list)
    #: The environment variables as the stage process started (before MLflow or seeding
    #: exported any of their own).
    environ: dict[str, str] = field(default_factory=lambda: dict(os.environ))

    @property
    def log(self):
        return get_logger(self.phase)

    def phase_dir(self, phase: str) -> Path:
        """The committed output directory of ``phase`` (an upstream's, for reading)."""
        return self.root / self.cfg.paths[phase]

    def resolve(self, relative: str) -> Path:
        """A path recorded relative to the project root, made absolute."""
        return self.root / relative


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """Turn SIGTERM into :class:`StageTerminated` so runs end KILLED and staging is removed."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum, frame):
        raise StageTerminated(f"received signal {signum}")

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _rank() -> int:
    """This process's rank under torchrun / accelerate launch (0 when run alone)."""
    return int(os.environ.get("RANK", "0")) if int(os.environ.get("WORLD_SIZE", "1")) > 1 else 0


def run_stage(
    phase: str, overrides: list[str] | tuple[str, ...] = (), root: Path | None = None
) -> Path:
    """Run one phase end to end; return its committed output directory.

    Under several processes (``torchrun``), rank 0 does everything below; the other ranks
    run the phase with a no-op MLflow run and a throw-away output directory.
    """
    environ = dict(os.environ)
    setup_console()
    log = get_logger(phase)
    root = (root or find_project_root()).resolve()
    cfg = load_params(root, overrides)
    params = stage_params(cfg, phase)
    digest = sha256_json(params)
    upstream = {p: read_manifest(root / cfg.paths[p], p) for p in STAGE_UPSTREAM[phase]}
    module = importlib.import_module(f"atriom.{phase}.stage")
    seed_everything(cfg.seed)
    if _rank() != 0:
        with tempfile.TemporaryDirectory(prefix=f"atriom-{phase}-rank{_rank()}-") as scratch:
            ctx = StageContext(
                phase, root, cfg, Path(scratch), NullRun(), upstream, environ=environ
            )
            module.run(ctx)
        return root / cfg.paths[phase]
    out_dir = root / cfg.paths[phase]
    logs_dir = root / ".atriom" / "logs"
    log_file = logs_dir / f"{phase}_{time.strftime('%Y%m%d_%H%M%S')}.log"

    started = time.perf_counter()
    with (
        _sigterm_raises(),
        stage_run(
            root=root,
            experiment=cfg.project.experiment,
            phase=phase,
            params=params,
            params_digest=digest,
            upstream={p: m["mlflow_run_id"] for p, m in upstream.items() if m.get("mlflow_run_id")},
        ) as run,
    ):
        try:
            with log_to_file(log_file):
                log.info("stage %s: writing %s", phase, out_dir.relative_to(root))
                with staged_dir(out_dir) as staging:
                    ctx = StageContext(phase, root, cfg, staging, run, upstream, environ=environ)
                    module.run(ctx)
                    atomic_write_text(staging / CONFIG_NAME, OmegaConf.to_yaml(cfg))
                    log.info("stage %s done in %.1f s", phase, time.perf_counter() - started)
                    shutil.copyfile(log_file, staging / f"{phase}.log")
                    manifest = Manifest(
                        phase=phase,
                        mlflow_run_id=run.run_id,
                        params_digest=digest,
                        inputs={
                            p: {
                                "manifest_digest": m["digest"],
                                "mlflow_run_id": m.get("mlflow_run_id"),
                            }
                            for p, m in upstream.items()
                        },
                        extra=ctx.summary,
                    )
                    write_manifest(staging, manifest)
        finally:
            if log_file.exists():
                run.log_artifact(log_file, "logs")
        for path in ctx.remove_after_commit:
            path.unlink(missing_ok=True)
        _log_outputs(run, out_dir, ctx.artifacts)
    return out_dir


def _log_outputs(run: StageRun, out_dir: Path, extra: list[str]) -> None:
    """Effective config, manifest and the small outputs the phase named, to MLflow."""
    for name in (CONFIG_NAME, MANIFEST_NAME, *extra):
        path = out_dir / name
        if path.is_dir():
            run.log_artifacts(path, name)
        elif path.is_file() and path.stat().st_size <= _SMALL_ARTIFACT_BYTES:
            parent = str(Path(name).parent)
            run.log_artifact(path, None if parent == "." else parent)
