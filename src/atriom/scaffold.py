"""``atriom new`` and ``atriom update``: projects from the template shipped in the package.

The template (``atriom/template``, a copier template) is the reference project at the root
of the ATRIOM repository -- most of its files are links to the root's files, the rest are
``.jinja`` templates a test renders with the default answers and compares with the root.

``atriom new`` renders it, then composes ``params.yaml``, records ``requirements.lock``,
runs ``git init`` and ``dvc init`` (analytics off, Hydra composition on) and makes the first
commit.

Updates: copier updates a project by replaying the template's change between two *git*
versions. The packaged template is therefore materialised (links resolved) into a small
git repository in the user cache (``~/.cache/atriom/template``, or
``$ATRIOM_TEMPLATE_CACHE``), one tagged commit per template version; projects record that
repository as their source, and ``atriom update`` materialises the installed template as a
new version and updates to it. A project rendered from another git source
(``--template <repo>``) updates from that source.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from atriom import __version__
from atriom.errors import AtriomError, ConfigError

TEMPLATE_DIR = Path(__file__).resolve().parent / "template"


class ScaffoldError(AtriomError):
    """The project cannot be created or updated as asked."""


def parse_data(pairs: list[str]) -> dict[str, Any]:
    """``["key=value", ...]`` -> answers (``true``/``false`` become booleans)."""
    data: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--data {pair!r}: expected key=value.")
        lowered = value.strip().lower()
        data[key.strip()] = {"true": True, "false": False}.get(lowered, value.strip())
    return data


def _run(cmd: list[str], cwd: Path, env: Mapping[str, str] | None = None) -> None:
    try:
        subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True, env=env)
    except FileNotFoundError as exc:
        raise ScaffoldError(f"`{cmd[0]}` is not installed: {exc}") from exc
    except subprocess.CalledProcessError as exc:
        raise ScaffoldError(
            f"`{' '.join(cmd)}` failed in {cwd}:\n{exc.stderr.strip() or exc.stdout.strip()}"
        ) from exc


def _git_env() -> dict[str, str]:
    """The first commit needs an identity; fall back to a neutral one when git has none."""
    env = dict(os.environ)
    for key, fallback in (("GIT_AUTHOR_NAME", "atriom"), ("GIT_AUTHOR_EMAIL", "atriom@localhost")):
        configured = subprocess.run(
            ["git", "config", "--get", "user.name" if "NAME" in key else "user.email"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        if not configured and key not in env:
            env[key] = fallback
            env[key.replace("AUTHOR", "COMMITTER")] = fallback
    return env


def template_cache() -> Path:
    if os.environ.get("ATRIOM_TEMPLATE_CACHE"):
        return Path(os.environ["ATRIOM_TEMPLATE_CACHE"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser()
    return base / "atriom" / "template"


def materialise_template() -> tuple[str, str]:
    """The packaged template as a tagged commit of the cache repository: ``(path, tag)``."""
    import shutil

    repo = template_cache()
    repo.mkdir(parents=True, exist_ok=True)
    git = [
        "git",
        "-c",
        "user.name=atriom",
        "-c",
        "user.email=atriom@localhost",
        "-c",
        "commit.gpgsign=false",
    ]
    if not (repo / ".git").exists():
        _run([*git, "init", "-q"], repo)
    for entry in repo.iterdir():
        if entry.name != ".git":
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()
    shutil.copytree(
        TEMPLATE_DIR,
        repo,
        dirs_exist_ok=True,
        symlinks=False,
        ignore=shutil.ignore_patterns("__pycache__", "*.py[co]"),
    )
    _run([*git, "add", "-A"], repo)
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True
    ).stdout
    tags = subprocess.run(
        ["git", "tag", "--points-at", "HEAD"], cwd=repo, capture_output=True, text=True
    ).stdout.split()
    if not status.strip() and tags:
        return str(repo), tags[-1]
    if status.strip():
        _run([*git, "commit", "-q", "-m", f"atriom {__version__} template"], repo)
    existing = set(
        subprocess.run(["git", "tag"], cwd=repo, capture_output=True, text=True).stdout.split()
    )
    tag, n = f"v{__version__}", 0
    while tag in existing:
        n += 1
        tag = f"v{__version__}.post{n}"
    _run([*git, "tag", tag], repo)
    return str(repo), tag


def _copier_errors():
    from copier.errors import CopierError

    return (CopierError, ValueError)


def new_project(
    path: Path,
    *,
    data: Mapping[str, Any] | None = None,
    answers_file: Path | None = None,
    defaults: bool = False,
    template: str | None = None,
    vcs_ref: str | None = None,
    force: bool = False,
    git: bool = True,
) -> Path:
    """Render the template into ``path`` and make it a working project; return the path."""
    import copier
    import yaml

    path = Path(path).resolve()
    if path.exists() and any(path.iterdir()) and not force:
        raise ScaffoldError(
            f"{path} is not empty: choose a new directory, or pass --force to render into it."
        )
    answers = {}
    if answers_file is not None:
        try:
            answers = yaml.safe_load(Path(answers_file).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"--answers {answers_file}: {exc}") from exc
        if not isinstance(answers, dict):
            raise ConfigError(f"--answers {answers_file}: expected a mapping of question: answer.")
    answers.update(data or {})
    answers.setdefault("atriom_version", __version__)
    answers.setdefault("year", time.strftime("%Y"))
    if template is None:
        template, vcs_ref = materialise_template()
    try:
        copier.run_copy(
            str(template),
            path,
            data=answers,
            defaults=defaults,
            vcs_ref=vcs_ref,
            overwrite=force,
            quiet=True,
            unsafe=False,
        )
    except _copier_errors() as exc:
        raise ScaffoldError(f"cannot render the template: {exc}") from exc
    finish_project(path, git=git)
    return path


def finish_project(path: Path, *, git: bool = True) -> None:
    """params.yaml, requirements.lock, and (optionally) git + DVC with a first commit."""
    from atriom.config import compose, write_params
    from atriom.io import atomic_write_text
    from atriom.reservoir.drift import render_lock
    from atriom.reservoir.environment import installed_packages

    write_params(path, compose(path))
    atomic_write_text(path / "requirements.lock", render_lock(installed_packages()))
    if not git:
        return
    if not (path / ".git").exists():
        _run(["git", "init", "-q"], path)
    dvc = [sys.executable, "-m", "dvc"]
    if not (path / ".dvc").exists():
        _run([*dvc, "init", "-q"], path)
    _run([*dvc, "config", "core.analytics", "false"], path)
    _run([*dvc, "config", "hydra.enabled", "true"], path)
    _run(["git", "add", "-A"], path)
    _run(["git", "commit", "-q", "-m", "New ATRIOM project"], path, env=_git_env())


def update_project(
    path: Path, *, data: Mapping[str, Any] | None = None, vcs_ref: str | None = None
) -> None:
    """Bring the template's later changes into the project (copier update), re-compose params."""
    import copier
    import yaml

    path = Path(path).resolve()
    answers_file = path / ".copier-answers.yml"
    if not answers_file.is_file():
        raise ScaffoldError(
            f"{path} has no .copier-answers.yml: it was not made with `atriom new`."
        )
    source = (yaml.safe_load(answers_file.read_text(encoding="utf-8")) or {}).get("_src_path")
    if source and Path(str(source)).resolve() == template_cache().resolve() and vcs_ref is None:
        _, vcs_ref = materialise_template()  # the installed template, as the newest version
    try:
        copier.run_update(
            path,
            data=dict(data or {}),
            defaults=True,
            overwrite=True,
            vcs_ref=vcs_ref,
            quiet=True,
            unsafe=False,
            conflict="rej",
        )
    except _copier_errors() as exc:
        raise ScaffoldError(
            f"cannot update {path}: {exc}. Updates need the project to come from a git template source "
            "(`atriom new --template <git repo>`) and a clean git work tree."
        ) from exc
    from atriom.config import compose, write_params

    write_params(path, compose(path))


def next_steps(path: Path) -> str:
    here = Path.cwd()
    shown = os.path.relpath(path, here) if path.is_relative_to(here) else str(path)
    return (
        f"Created {path}\n\nNext steps:\n  cd {shown}\n  make repro     # install and run the pipeline\n"
        "  make test      # install and run the tests\n"
    )
