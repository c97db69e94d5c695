"""Video files: probing, exact frame reading and encoding, through PyAV (FFmpeg).

Errors from inside the decoder never escape as tracebacks: every failure becomes a
:class:`~atriom.errors.VideoError` naming the file and what to do.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

from atriom.errors import VideoError

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np


@dataclass(frozen=True)
class VideoInfo:
    codec: str
    fps: float
    #: Frames counted by decoding the stream (exact, whatever the header says).
    frames: int
    #: Frame count the container header claims (0 when it has none).
    header_frames: int
    duration: float
    width: int
    height: int

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def _open(path: Path):
    import av

    if not path.is_file():
        raise VideoError(f"{path}: no such file.", path=path, reason="missing file")
    if path.stat().st_size == 0:
        raise VideoError(
            f"{path}: file is empty (0 bytes); re-copy or remove it.",
            path=path,
            reason="empty file (0 bytes)",
        )
    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise VideoError(
            f"{path}: not a readable video ({exc}); re-encode, re-copy or remove it.",
            path=path,
            reason=f"not a readable video ({_short(exc)})",
        ) from exc
    if not container.streams.video:
        container.close()
        raise VideoError(f"{path}: holds no video stream.", path=path, reason="no video stream")
    return container


def _short(exc: BaseException) -> str:
    """FFmpeg's own words without the file name it repeats."""
    text = str(exc)
    return text.split(": '", 1)[0] if ": '" in text else text


def _rate(stream) -> float:
    rate = stream.average_rate or stream.base_rate or stream.guessed_rate
    return float(rate) if rate else 0.0


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """Codec, fps, exact frame count (by decoding), duration and size of ``path``."""
    import av

    path = Path(path)
    container = _open(path)
    try:
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        frames = 0
        last_time = 0.0
        try:
            for frame in container.decode(stream):
                frames += 1
                if frame.time is not None:
                    last_time = float(frame.time)
        except (av.FFmpegError, ValueError) as exc:
            raise VideoError(
                f"{path}: decoding failed after {frames} frame(s) ({_short(exc)}); "
                "the file is damaged or truncated.",
                path=path,
                reason=f"damaged or truncated: decoding failed after {frames} frame(s)",
            ) from exc
        if frames == 0:
            raise VideoError(
                f"{path}: no decodable frames; the file is damaged or truncated.",
                path=path,
                reason="damaged or truncated: no decodable frame",
            )
        fps = _rate(stream)
        duration = frames / fps if fps else last_time
        return VideoInfo(
            codec=stream.codec_context.name,
            fps=round(fps, 6),
            frames=frames,
            header_frames=int(stream.frames or 0),
            duration=round(duration, 6),
            width=int(width),
            height=int(height),
        )
    finally:
        container.close()


def read_frames(path: str | os.PathLike[str], indices: Sequence[int]) -> np.ndarray:
    """Exactly the frames ``indices`` (decode order = display index), RGB ``uint8 (N, H, W, 3)``.

    Order is as asked and duplicates are allowed. Decodes forward once, up to the largest
    index, keeping only what was asked for.
    """
    import av
    import numpy as np

    path = Path(path)
    wanted = [int(i) for i in indices]
    if not wanted:
        raise VideoError(f"{path}: no frame indices requested.")
    if min(wanted) < 0:
        raise VideoError(f"{path}: negative frame index {min(wanted)}; indices start at 0.")
    needed = set(wanted)
    last = max(wanted)
    found: dict[int, np.ndarray] = {}
    decoded = 0
    container = _open(path)
    try:
        stream = container.streams.video[0]
        try:
            for index, frame in enumerate(container.decode(stream)):
                decoded = index + 1
                if index in needed:
                    found[index] = frame.to_ndarray(format="rgb24")
                if index >= last:
                    break
        except (av.FFmpegError, ValueError) as exc:
            raise VideoError(f"{path}: decoding failed ({exc}); the file is damaged.") from exc
    finally:
        container.close()
    if last not in found:
        raise VideoError(
            f"{path}: frame index {last} is out of range: the video has {decoded} frames (0..{decoded - 1})."
        )
    return np.stack([found[i] for i in wanted])


def write_video(
    path: str | os.PathLike[str],
    frames: Iterable[np.ndarray],
    fps: int,
    codec: str = "libx264",
    crf: int = 18,
) -> Path:
    """Encode RGB ``uint8`` frames to ``path`` with a real codec (deterministic output)."""
    import av

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    iterator = iter(frames)
    first = next(iterator)
    height, width = first.shape[:2]
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps))
        stream.width, stream.height = width, height
        stream.pix_fmt = "yuv420p"
        # Bit-identical files for identical frames: one thread, and x264's macroblock
        # tree off (with it on, 32x32 clips encoded twice came out different here).
        stream.codec_context.thread_count = 1
        if codec == "libx264":
            stream.options = {
                "crf": str(crf),
                "preset": "medium",
                "threads": "1",
                "x264-params": "mbtree=0",
            }
        for array in (first, *iterator):
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path
