"""Video files: probing and encoding, through PyAV (FFmpeg). Frames are read with
:mod:`atriom.reader` (exact and fast, any list of indices).

Errors from inside the decoder never escape as tracebacks: every failure becomes a
:class:`~atriom.errors.VideoError` naming the file and what to do.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

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


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """Codec, fps, exact frame count, duration and size of ``path``; its first and last frames
    are decoded, so a file that opens but cannot be decoded to its end fails here.

    The count comes from :class:`~atriom.reader.FrameReader` (the stream's packets, checked by
    decoding the last GOP), never from the header, which may be wrong or missing.
    """
    from atriom.reader import FrameReader

    with FrameReader(path) as reader:
        frames = reader.num_frames
        reader.read([0, frames - 1])
        fps = reader.fps
        return VideoInfo(
            codec=reader.codec,
            fps=round(fps, 6),
            frames=frames,
            header_frames=reader.header_frames,
            duration=round(frames / fps, 6) if fps else 0.0,
            width=reader.width,
            height=reader.height,
        )


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
