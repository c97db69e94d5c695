"""Dataset sources: plug-ins chosen by ``reservoir.dataset._target_``.

A source is any object with ``collect(directory, seed) -> list[CollectedClip]``; it may
write files under ``directory`` (the stage's output) or point at files elsewhere in the
project. A generated project adds its own sources in its own package and names them in
``conf/reservoir/dataset/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from atriom.errors import ConfigError


@dataclass
class CollectedClip:
    path: Path
    label: str
    #: Source-specific facts (e.g. the synthetic difficulty knobs), kept in the manifest.
    meta: dict[str, Any] = field(default_factory=dict)


class DatasetSource(Protocol):
    def collect(self, directory: Path, seed: int) -> list[CollectedClip]: ...


def instantiate_source(spec: dict[str, Any], key: str = "reservoir.dataset") -> DatasetSource:
    """Build the plug-in named by ``spec['_target_']``; bad arguments name the config key."""
    from hydra.errors import InstantiationException
    from hydra.utils import instantiate

    try:
        source = instantiate(spec, _convert_="all")
    except InstantiationException as exc:
        cause = exc.__cause__ or exc
        if isinstance(cause, ConfigError):
            raise cause from exc
        raise ConfigError(f"{key}: cannot build {spec.get('_target_')!r}: {cause}") from exc
    if not callable(getattr(source, "collect", None)):
        raise ConfigError(
            f"{key}: {spec.get('_target_')!r} has no collect(directory, seed) method."
        )
    return source
