"""Files: atomic writes, hashing, staged output directories and manifests.

Every artifact is written to a temporary path and moved into place with ``os.replace``;
a stage builds its whole output directory in a staging directory that replaces the old
one only when the stage succeeds, so a failure never leaves a half-written output behind
and never touches the previous one. Manifests are written last.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from atriom.errors import UpstreamError

MANIFEST_NAME = "manifest.json"
MANIFEST_SCHEMA = "atriom.manifest/1"
_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def canonical_json(data: Any) -> str:
    """JSON with sorted keys and no whitespace: the input of every digest."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def sha256_json(data: Any) -> str:
    return hashlib.sha256(canonical_json(data).encode("utf-8")).hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to a temp file beside ``path``, fsync it, then ``os.replace`` it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        # mkstemp makes the file private (0600); give it the mode a plain open() would.
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], data: Any) -> Path:
    """Atomically write pretty, key-sorted JSON (stable for diffs and digests)."""
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, default=str) + "\n"
    return atomic_write_text(path, text)


def read_json(path: str | os.PathLike[str]) -> Any:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@contextlib.contextmanager
def staged_dir(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Build a directory's contents in a sibling staging directory; commit them on success.

    On an exception (or SIGTERM turned into one) the staging directory is removed and
    ``target`` keeps its previous contents.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.staging-", dir=target.parent))
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    commit_dir(staging, target)


def commit_dir(staging: Path, target: Path) -> None:
    """Move every entry of ``staging`` into ``target``, replacing same-named entries.

    Entries of ``target`` the stage did not produce (a committed ``.gitignore``, say) stay.
    The old manifest goes first and the new one comes last, so a crash part-way leaves a
    directory without a manifest (which downstream stages refuse), never a mixed one.
    """
    target.mkdir(parents=True, exist_ok=True)
    (target / MANIFEST_NAME).unlink(missing_ok=True)
    entries = sorted(staging.iterdir(), key=lambda p: p.name == MANIFEST_NAME)
    for entry in entries:
        destination = target / entry.name
        if destination.is_dir() and not destination.is_symlink():
            old = target / f".{entry.name}.old-{os.getpid()}"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(destination, old)
            os.replace(entry, destination)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(entry, destination)
    staging.rmdir()


@dataclass
class FileEntry:
    """One file of an output directory: path relative to that directory, hash, size."""

    path: str
    sha256: str
    bytes: int

    @classmethod
    def of(cls, path: Path, root: Path) -> FileEntry:
        return cls(
            path=path.relative_to(root).as_posix(),
            sha256=sha256_file(path),
            bytes=path.stat().st_size,
        )


@dataclass
class Manifest:
    """What a stage produced and from what: the lineage record of an output directory.

    ``inputs`` maps an upstream phase to ``{"manifest_sha256", "mlflow_run_id"}``;
    ``files`` lists every file of the directory (except the manifest itself);
    ``digest`` hashes ``files``, so equal contents give equal digests whatever the run.
    """

    phase: str
    mlflow_run_id: str | None
    params_digest: str
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: list[FileEntry] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=utc_now)
    atriom_version: str = ""
    schema: str = MANIFEST_SCHEMA

    @property
    def digest(self) -> str:
        return sha256_json([vars(f) for f in self.files])

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": self.schema,
            "phase": self.phase,
            "created": self.created,
            "atriom_version": self.atriom_version,
            "mlflow_run_id": self.mlflow_run_id,
            "params_digest": self.params_digest,
            "inputs": self.inputs,
            "files": [vars(f) for f in self.files],
            "digest": self.digest,
            **({"extra": self.extra} if self.extra else {}),
        }


def scan_files(root: Path, exclude: tuple[str, ...] = (MANIFEST_NAME,)) -> list[FileEntry]:
    """Every regular file under ``root`` (sorted, relative POSIX paths)."""
    entries = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root).as_posix()
        if rel in exclude:
            continue
        entries.append(FileEntry.of(path, root))
    return entries


def write_manifest(directory: Path, manifest: Manifest) -> Path:
    """Hash every file in ``directory`` and write ``manifest.json`` (last, atomically)."""
    from atriom import __version__

    manifest.files = scan_files(directory)
    manifest.atriom_version = __version__
    return write_json(directory / MANIFEST_NAME, manifest.to_dict())


def read_manifest(directory: str | os.PathLike[str], phase: str | None = None) -> dict[str, Any]:
    """Load an upstream output directory's manifest, or say which stage to run first."""
    path = Path(directory) / MANIFEST_NAME
    if not path.is_file():
        hint = f"`atriom run {phase}` (or `dvc repro {phase}`)" if phase else "the upstream stage"
        raise UpstreamError(f"{path} is missing: run {hint} first.")
    try:
        data = read_json(path)
    except (OSError, ValueError) as exc:
        raise UpstreamError(
            f"{path} is not a readable manifest ({exc}); re-run its stage."
        ) from exc
    if data.get("schema") != MANIFEST_SCHEMA:
        raise UpstreamError(
            f"{path} has schema {data.get('schema')!r}, expected {MANIFEST_SCHEMA!r}; re-run its stage."
        )
    return data
