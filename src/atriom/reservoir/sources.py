"""Dataset sources: plug-ins chosen by ``reservoir.dataset._target_``.

A source is any object with ``collect(directory, *, seed, root) -> list[CollectedClip]``; it
may write files under ``directory`` (the stage's staging output) or point at files elsewhere
in the project (``root``; relative paths in its config are relative to it). Built in:

* :class:`atriom.reservoir.synthetic.SyntheticVideos` -- the embedded default;
* :class:`FolderVideos` -- ``root/<class>/<video>`` (one subfolder per class);
* :class:`AnnotatedVideos` -- a CSV or JSON-lines file of ``path, label[, start, end]``.

A source does not judge files: validation (:mod:`atriom.reservoir.validate`) opens every
clip and quarantines bad ones with a reason. A source reports what it cannot even turn into
a clip (a malformed annotation line) as a clip with a ``problem``.

A generated project adds its own sources in its own package and names them in
``conf/reservoir/dataset/``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from atriom.errors import ConfigError, DataError

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg")


@dataclass
class CollectedClip:
    path: Path
    label: str
    #: Source-specific facts (e.g. the synthetic difficulty knobs), kept in the manifest.
    meta: dict[str, Any] = field(default_factory=dict)
    #: Segment of the video this clip covers, in seconds (None: the whole video).
    start: float | None = None
    end: float | None = None
    #: Why this entry cannot be used, when the source already knows.
    problem: str | None = None


class DatasetSource(Protocol):
    def collect(self, directory: Path, *, seed: int, root: Path) -> list[CollectedClip]: ...


def _resolve(path: str, base: Path) -> Path:
    candidate = Path(path).expanduser()
    return candidate if candidate.is_absolute() else base / candidate


@dataclass
class FolderVideos:
    """Videos in ``root/<class>/``; the subfolder name is the label.

    ``classes`` (optional) fixes the label set and its order; subfolders outside it are
    reported, not silently dropped. Files with other extensions are ignored.
    """

    root: str
    classes: Sequence[str] | None = None
    extensions: Sequence[str] = VIDEO_EXTENSIONS
    #: The data's licence, carried into manifests and model cards.
    licence: str | None = None

    def collect(self, directory: Path, *, seed: int, root: Path) -> list[CollectedClip]:
        base = _resolve(self.root, root)
        if not base.is_dir():
            raise DataError(
                f"reservoir.dataset.root: {base} is not a directory of class subfolders."
            )
        extensions = {e.lower() for e in self.extensions}
        clips = []
        for folder in sorted(
            p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")
        ):
            for path in sorted(folder.rglob("*")):
                if path.suffix.lower() in extensions and not path.name.startswith("."):
                    clips.append(CollectedClip(path=path, label=folder.name))
        if not clips:
            raise DataError(
                f"reservoir.dataset.root: no videos ({', '.join(sorted(extensions))}) in the class "
                f"subfolders of {base}."
            )
        return clips


@dataclass
class AnnotatedVideos:
    """Clips listed in a CSV (header ``path,label[,start,end]``) or JSON-lines file.

    ``path`` is relative to ``root`` (default: the annotations file's directory); ``start``
    and ``end`` are seconds (optional: the whole video).
    """

    file: str
    root: str | None = None
    classes: Sequence[str] | None = None
    #: The data's licence, carried into manifests and model cards.
    licence: str | None = None

    def collect(self, directory: Path, *, seed: int, root: Path) -> list[CollectedClip]:
        file = _resolve(self.file, root)
        if not file.is_file():
            raise DataError(f"reservoir.dataset.file: {file} does not exist.")
        base = _resolve(self.root, root) if self.root else file.parent
        rows = list(self._rows(file))
        if not rows:
            raise DataError(f"reservoir.dataset.file: {file} lists no clips.")
        return [self._clip(number, row, base, file) for number, row in rows]

    @staticmethod
    def _rows(file: Path):
        if file.suffix.lower() in (".jsonl", ".ndjson", ".json"):
            with open(file, encoding="utf-8") as fh:
                for number, line in enumerate(fh, start=1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except ValueError as exc:
                        yield number, {"__error__": f"not JSON ({exc.msg})"}
                        continue
                    yield (
                        number,
                        row if isinstance(row, dict) else {"__error__": "not a JSON object"},
                    )
        elif file.suffix.lower() in (".csv", ".tsv"):
            with open(file, encoding="utf-8", newline="") as fh:
                reader = csv.DictReader(
                    fh, delimiter="\t" if file.suffix.lower() == ".tsv" else ","
                )
                missing = {"path", "label"} - set(reader.fieldnames or ())
                if missing:
                    raise DataError(
                        f"{file}: header lacks column(s) {sorted(missing)}; expected path,label[,start,end]."
                    )
                for number, row in enumerate(reader, start=2):
                    yield number, row
        else:
            raise ConfigError(f"reservoir.dataset.file: {file} must be .csv, .tsv or .jsonl.")

    @staticmethod
    def _clip(number: int, row: dict[str, Any], base: Path, file: Path) -> CollectedClip:
        where = f"{file.name} line {number}"
        path = str(row.get("path") or "").strip()
        label = str(row.get("label") or "").strip()
        target = _resolve(path, base) if path else file
        if "__error__" in row:
            return CollectedClip(path=target, label=label, problem=f"{where}: {row['__error__']}")
        if not path or not label:
            return CollectedClip(
                path=target, label=label, problem=f"{where}: needs both path and label"
            )
        try:
            start = float(row["start"]) if row.get("start") not in (None, "") else None
            end = float(row["end"]) if row.get("end") not in (None, "") else None
        except (TypeError, ValueError):
            return CollectedClip(
                path=target, label=label, problem=f"{where}: start/end must be seconds"
            )
        if (start is not None and start < 0) or (
            start is not None and end is not None and end <= start
        ):
            return CollectedClip(
                path=target,
                label=label,
                problem=f"{where}: need 0 <= start < end (got {start}, {end})",
            )
        return CollectedClip(
            path=target, label=label, start=start, end=end, meta={"annotation": where}
        )


def instantiate_source(spec: dict[str, Any], key: str = "reservoir.dataset") -> DatasetSource:
    """Build the plug-in named by ``spec['_target_']``; bad arguments name the config key."""
    return instantiate_plugin(spec, key, "collect")


def instantiate_plugin(spec: dict[str, Any], key: str, method: str):
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        plugin = instantiate(spec, _convert_="all")
    except InstantiationException as exc:
        cause = exc.__cause__ or exc
        if isinstance(cause, ConfigError):
            raise cause from exc
        raise ConfigError(f"{key}: cannot build {spec.get('_target_')!r}: {cause}") from exc
    if not callable(getattr(plugin, method, None)):
        raise ConfigError(f"{key}: {spec.get('_target_')!r} has no {method}() method.")
    return plugin
