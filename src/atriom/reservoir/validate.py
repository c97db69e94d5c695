"""Dataset validation: every clip opened and decoded; bad ones quarantined with a reason.

A clip is quarantined when its source already flagged it, its label is outside the
configured class set, its file is missing, empty, truncated, not a video or undecodable,
its annotated segment lies outside the video, or it duplicates (same bytes, same segment)
a clip seen before. ``on_bad_file`` decides: ``skip`` reports and continues with the good
clips, ``fail`` stops the stage with one line naming the files.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from atriom.errors import DataError, VideoError
from atriom.io import sha256_file
from atriom.reservoir.sources import CollectedClip
from atriom.video import VideoInfo, probe

POLICIES = ("skip", "fail")


@dataclass
class Validation:
    good: list[tuple[CollectedClip, VideoInfo, str]] = field(default_factory=list)
    #: ``{"path", "label", "reason"}`` per quarantined clip.
    quarantine: list[dict[str, Any]] = field(default_factory=list)

    def report(self) -> dict[str, Any]:
        return {
            "checked": len(self.good) + len(self.quarantine),
            "good": len(self.good),
            "quarantined": len(self.quarantine),
            "files": self.quarantine,
        }


def validate_clips(
    clips: Sequence[CollectedClip],
    *,
    classes: Sequence[str] | None,
    describe: Callable[[Path], str],
    probe_video: Callable[[Path], VideoInfo] = probe,
) -> Validation:
    """Open every clip; ``describe`` turns a path into how the report names it."""
    result = Validation()
    allowed = set(classes) if classes else None
    seen: dict[tuple[str, float | None, float | None], str] = {}
    for clip in clips:
        name = describe(clip.path)

        def bad(reason: str, clip: CollectedClip = clip, name: str = name) -> None:
            result.quarantine.append({"path": name, "label": clip.label, "reason": reason})

        if clip.problem:
            bad(clip.problem)
            continue
        if allowed is not None and clip.label not in allowed:
            bad(f"label {clip.label!r} is not one of the configured classes {sorted(allowed)}")
            continue
        try:
            info = probe_video(clip.path)
        except VideoError as exc:
            bad(exc.reason)
            continue
        if clip.start is not None and clip.start >= info.duration:
            bad(f"segment starts at {clip.start}s, after the video's end ({info.duration:.2f}s)")
            continue
        digest = sha256_file(clip.path)
        key = (digest, clip.start, clip.end)
        if key in seen:
            bad(
                f"duplicate of {seen[key]} (same content{' and segment' if clip.start is not None else ''})"
            )
            continue
        seen[key] = name
        result.good.append((clip, info, digest))
    return result


def enforce(validation: Validation, policy: str, log) -> None:
    """Apply ``reservoir.validation.on_bad_file`` to the quarantine list."""
    if policy not in POLICIES:
        raise DataError(
            f"reservoir.validation.on_bad_file must be one of {list(POLICIES)}, got {policy!r}."
        )
    bad = validation.quarantine
    if not bad:
        return
    listing = "; ".join(f"{q['path']} ({q['reason']})" for q in bad[:10])
    more = f"; and {len(bad) - 10} more" if len(bad) > 10 else ""
    if policy == "fail":
        raise DataError(
            f"{len(bad)} bad file(s): {listing}{more}. Fix or remove them, or set "
            "reservoir.validation.on_bad_file=skip to quarantine them and continue."
        )
    log.warning("quarantined %d bad file(s): %s%s", len(bad), listing, more)
    if not validation.good:
        raise DataError(
            "every clip was quarantined: nothing left to train on (see the quarantine report)."
        )
