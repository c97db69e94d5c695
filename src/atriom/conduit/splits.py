"""Stable, stratified-by-construction splits.

Each file lands in a split by a hash of ``(salt, its project-relative path)`` compared with
the cumulative split fractions, independently of every other file: adding or removing a file
never moves another one between splits. Applied per class, each split draws every class at
the configured rate; a split that ends up without some class is an error (too few clips).
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from atriom.errors import DataError

SPLITS = ("train", "val", "test")


def unit_hash(salt: str, identity: str) -> float:
    """A uniform number in [0, 1) determined by ``salt`` and ``identity`` alone."""
    digest = hashlib.sha256(f"{salt}:{identity}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign(salt: str, identity: str, fractions: Mapping[str, float]) -> str:
    u = unit_hash(salt, identity)
    cumulative = 0.0
    for name in SPLITS:
        cumulative += fractions[name]
        if u < cumulative:
            return name
    return SPLITS[-1]


def group_key(clip: Mapping[str, Any], group_by: str) -> str:
    """The value of ``group_by`` (a dotted field such as ``path`` or ``meta.source_video``)."""
    value: Any = clip
    for part in group_by.split("."):
        if not isinstance(value, Mapping) or part not in value:
            raise DataError(
                f"conduit.split.group_by={group_by!r}: clip {clip.get('id', clip.get('path'))} has no such field "
                "(use `path`, or a key every clip's meta has)."
            )
        value = value[part]
    return str(value)


def split_clips(
    clips: Sequence[Mapping[str, Any]],
    salt: str,
    fractions: Mapping[str, float],
    group_by: str = "path",
) -> dict[str, list[Mapping[str, Any]]]:
    """``{"train": [...], "val": [...], "test": [...]}``; every split holds every class.

    Clips sharing a ``group_by`` value (by default: segments of one video) land together.
    """
    result: dict[str, list[Mapping[str, Any]]] = {name: [] for name in SPLITS}
    for clip in clips:
        result[assign(salt, group_key(clip, group_by), fractions)].append(clip)
    classes = sorted({c["label"] for c in clips})
    empty = [
        f"{split}/{label}"
        for split in SPLITS
        for label in classes
        if not any(c["label"] == label for c in result[split])
    ]
    if empty:
        per_class = Counter(c["label"] for c in clips)
        raise DataError(
            f"split(s) with no clips of a class: {', '.join(empty)} "
            f"(clips per class: {dict(per_class)}). Add clips, widen the conduit.split fractions, or change conduit.split.salt."
        )
    return result


def class_counts(splits: Mapping[str, Sequence[Mapping[str, Any]]]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for split, clips in splits.items():
        counts[split] = dict(sorted(Counter(c["label"] for c in clips).items()))
    return dict(counts)
