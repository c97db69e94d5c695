"""The ``atriom`` command line.

Kept import-light: torch, transformers, peft, mlflow and cv2 load only inside the commands
that use them, so ``atriom --help`` answers at once. User errors (:class:`AtriomError`) are
printed in one line without a traceback and exit with code 2.
"""

from __future__ import annotations

import sys
from enum import Enum
from typing import Annotated

import typer

from atriom import __version__
from atriom.errors import AtriomError

app = typer.Typer(
    name="atriom",
    help="ATRIOM: a reproducible, tracked video-learning pipeline (Reservoir -> Conduit -> Active).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


class Phase(str, Enum):
    reservoir = "reservoir"
    conduit = "conduit"
    active = "active"


def _version(value: bool) -> None:
    if value:
        typer.echo(f"atriom {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """ATRIOM: a reproducible, tracked video-learning pipeline."""


@app.command()
def run(
    phase: Annotated[Phase, typer.Argument(help="The phase (DVC stage) to run.")],
    overrides: Annotated[
        list[str] | None,
        typer.Argument(
            help="Overrides on top of params.yaml, in Hydra syntax: key=value, +key=value, ~key."
        ),
    ] = None,
) -> None:
    """Run one phase on params.yaml (what `dvc repro` calls for each stage)."""
    from atriom.stage import run_stage

    out = run_stage(phase.value, overrides or [])
    typer.echo(f"{phase.value}: outputs in {out}")


@app.command()
def pipeline() -> None:
    """Record this repro/experiment as one MLflow "pipeline" run over the stage runs (the last DVC stage)."""
    from atriom.logs import setup_console
    from atriom.pipeline import record_pipeline

    setup_console()
    typer.echo(f"pipeline run {record_pipeline()}")


@app.command()
def sweep(
    overrides: Annotated[
        list[str],
        typer.Argument(
            help="Hydra sweep overrides: k=a,b  k=range(1,5)  k=tag(log,interval(1e-5,1e-2))."
        ),
    ],
    samples: Annotated[
        int | None, typer.Option("--samples", help="Random search: this many trials.")
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the random search.")] = 0,
    name: Annotated[
        str | None, typer.Option("--name", help="Trial name prefix (default sweep-<time>).")
    ] = None,
    run_now: Annotated[
        bool, typer.Option("--run/--queue-only", help="Run the queued trials now.")
    ] = True,
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Trials to run at once.")] = 1,
) -> None:
    """Queue one DVC experiment per trial (grid or random search) and run them."""
    from atriom.config import find_project_root
    from atriom.sweep import queue_sweep, run_queued, trials

    root = find_project_root()
    planned = trials(overrides, samples=samples, seed=seed)
    names = queue_sweep(root, planned, name)
    for exp, trial in zip(names, planned, strict=True):
        typer.echo(f"queued {exp}: {' '.join(trial)}")
    if run_now:
        run_queued(root, jobs)
        typer.echo(
            "done: `dvc exp show` and `atriom compare` (or the MLflow UI) compare the trials."
        )
    else:
        typer.echo("run them with `dvc exp run --run-all` (or `dvc queue start`).")


@app.command()
def compare(
    last: Annotated[int, typer.Option("--last", "-n", help="How many recent runs.")] = 5,
    phase: Annotated[
        str, typer.Option("--phase", help="Which runs: active (training), pipeline, ...")
    ] = "active",
) -> None:
    """A table of recent runs: the params that differ, key metrics, lineage."""
    import time

    from rich.console import Console
    from rich.table import Table

    from atriom.config import find_project_root
    from atriom.pipeline import comparison, recent_runs

    runs = recent_runs(find_project_root(), last=last, phase=phase)
    if not runs:
        typer.echo(f"no finished {phase} runs yet: run `dvc repro` (or `dvc exp run`).")
        raise typer.Exit(1)
    data = comparison(runs)
    table = Table(title=f"{len(runs)} most recent {phase} runs", show_lines=False)
    columns = [
        "run",
        "started",
        "experiment",
        *data["differing"],
        *data["metrics"],
        "reservoir",
        "conduit",
        "pipeline",
    ]
    for name in columns:
        table.add_column(
            name, overflow="fold", justify="right" if name in data["metrics"] else "left"
        )
    for row in data["rows"]:
        cells = []
        for name in columns:
            value = row[name]
            if name == "started":
                value = time.strftime("%m-%d %H:%M", time.localtime(value / 1000))
            elif isinstance(value, float):
                value = f"{value:.4g}"
            cells.append("" if value is None else str(value))
        table.add_row(*cells)
    Console(width=max(120, 14 * len(columns))).print(table)
    if not data["differing"]:
        typer.echo("(the runs share every param)")


@app.command()
def compose(
    overrides: Annotated[
        list[str] | None,
        typer.Argument(
            help="Hydra overrides applied while composing (the result then differs from conf/)."
        ),
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="Write nothing; exit 1 with a diff when params.yaml is stale."
        ),
    ] = False,
) -> None:
    """Compose conf/ into params.yaml (as `dvc exp run` does), validated against the schema."""
    from atriom.config import check_params, find_project_root, write_params
    from atriom.config import compose as compose_conf

    root = find_project_root()
    if check:
        if overrides:
            raise typer.BadParameter(
                "--check compares params.yaml with conf/ as it is: no overrides."
            )
        diff = check_params(root)
        if diff is None:
            typer.echo("params.yaml is up to date with conf/.")
            return
        typer.echo(diff, nl=False)
        typer.echo("params.yaml is stale: run `atriom compose` and commit the result.", err=True)
        raise typer.Exit(1)
    path = write_params(root, compose_conf(root, overrides or []))
    typer.echo(f"wrote {path}")


@app.command()
def new(
    path: Annotated[
        str, typer.Argument(help="Directory of the new project (must be empty or missing).")
    ],
    defaults: Annotated[
        bool,
        typer.Option("--defaults", help="Take the default answer for every question not given."),
    ] = False,
    data: Annotated[
        list[str] | None,
        typer.Option(
            "--data", "-d", help="An answer, key=value (repeatable): project_name=vision."
        ),
    ] = None,
    answers: Annotated[
        str | None, typer.Option("--answers", help="A YAML file of answers.")
    ] = None,
    template: Annotated[
        str | None,
        typer.Option(
            "--template", help="Another template source (a path or git URL); updatable when git."
        ),
    ] = None,
    vcs_ref: Annotated[
        str | None, typer.Option("--vcs-ref", help="Template git tag/commit to render.")
    ] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Render into a non-empty directory.")
    ] = False,
    no_git: Annotated[
        bool, typer.Option("--no-git", help="Skip git init, dvc init and the first commit.")
    ] = False,
) -> None:
    """Start a new project of the same shape (copier template; questions validated)."""
    from pathlib import Path

    from atriom.scaffold import new_project, next_steps, parse_data

    created = new_project(
        Path(path),
        data=parse_data(data or []),
        answers_file=Path(answers) if answers else None,
        defaults=defaults,
        template=template,
        vcs_ref=vcs_ref,
        force=force,
        git=not no_git,
    )
    typer.echo(next_steps(created))


@app.command()
def update(
    path: Annotated[str, typer.Argument(help="The project to update.")] = ".",
    data: Annotated[
        list[str] | None, typer.Option("--data", "-d", help="Change an answer, key=value.")
    ] = None,
    vcs_ref: Annotated[
        str | None, typer.Option("--vcs-ref", help="Template git tag/commit to update to.")
    ] = None,
) -> None:
    """Bring later template changes into a project made with `atriom new` (copier update)."""
    from pathlib import Path

    from atriom.scaffold import parse_data, update_project

    update_project(Path(path), data=parse_data(data or []), vcs_ref=vcs_ref)
    typer.echo(
        f"updated {Path(path).resolve()}: review with `git diff`, resolve any *.rej files, then commit."
    )


@app.command()
def predict(
    videos: Annotated[list[str], typer.Argument(help="Video files to classify.")],
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="A merged_model directory or an MLflow model URI (models:/NAME@candidate). "
            "Default: the newest finished run in the project.",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print JSON lines with every probability.")
    ] = False,
) -> None:
    """Print the predicted label and its probability for each video."""
    import json

    from atriom.active.predict import predict_videos

    for path, label, probability, probabilities in predict_videos(videos, model):
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "video": path,
                        "label": label,
                        "probability": probability,
                        "probabilities": probabilities,
                    }
                )
            )
        else:
            typer.echo(f"{path}\t{label}\t{probability:.4f}")


@app.command()
def lock(
    output: Annotated[
        str, typer.Option("--output", "-o", help="Where to write, relative to the project.")
    ] = "requirements.lock",
) -> None:
    """Record the installed packages (editable installs left out) as the lock Reservoir checks drift against."""
    from atriom.config import find_project_root
    from atriom.io import atomic_write_text
    from atriom.reservoir.drift import render_lock
    from atriom.reservoir.environment import installed_packages

    path = atomic_write_text(find_project_root() / output, render_lock(installed_packages()))
    typer.echo(f"wrote {path}")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    from atriom.tracking import StageTerminated

    try:
        app(args=argv, prog_name="atriom")
    except AtriomError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except StageTerminated as exc:
        typer.echo(
            f"stopped: {exc}; the stage's MLflow run is marked KILLED, outputs untouched.", err=True
        )
        sys.exit(128 + 15)
