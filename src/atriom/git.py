"""Git facts for tags and reports (commit, dirty flag, branch, remote), credentials stripped."""

from __future__ import annotations

import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path

#: Files DVC itself rewrites while a pipeline runs; they don't make a checkout dirty.
_PIPELINE_BOOKKEEPING = ("dvc.lock",)
_CREDENTIALS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]+@")


def strip_credentials(url: str) -> str:
    """``https://user:token@host/x`` -> ``https://host/x``."""
    return _CREDENTIALS.sub(r"\g<scheme>", url)


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=root, capture_output=True, text=True, timeout=20, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


@dataclass(frozen=True)
class GitInfo:
    commit: str | None
    dirty: bool | None
    branch: str | None
    remote: str | None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def git_info(root: Path) -> GitInfo:
    """Facts about the checkout at ``root``; every field ``None`` outside a git repository.

    In a repository without commits yet, ``commit`` and ``dirty`` are ``None``.
    """
    if _git(root, "rev-parse", "--is-inside-work-tree") != "true":
        return GitInfo(None, None, None, None)
    commit = _git(root, "rev-parse", "--verify", "-q", "HEAD")
    dirty = None
    if commit:
        status = _git(root, "status", "--porcelain", "--untracked-files=no")
        changed = [line[3:] for line in (status or "").splitlines()]
        dirty = any(path not in _PIPELINE_BOOKKEEPING for path in changed)
    branch = _git(root, "symbolic-ref", "--short", "-q", "HEAD") or _git(
        root, "rev-parse", "--abbrev-ref", "HEAD"
    )
    remote = _git(root, "remote", "get-url", "origin")
    return GitInfo(
        commit=commit or None,
        dirty=dirty,
        branch=branch or None,
        remote=strip_credentials(remote) if remote else None,
    )
