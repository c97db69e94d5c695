"""Previews: contact sheets (a few clips per class, frames in a row, labelled)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from atriom.conduit.sampling import uniform
from atriom.io import atomic_write_bytes
from atriom.reader import read_frames

_LABEL_WIDTH = 110
_PAD = 2


def contact_sheet(
    root: Path,
    clips: Sequence[Mapping[str, Any]],
    path: Path,
    *,
    clips_per_class: int,
    frames: int,
    thumb: int,
    title: str = "",
) -> Path:
    """Write a PNG: one row per clip (``clips_per_class`` per class), ``frames`` thumbnails each."""
    import io

    from PIL import Image, ImageDraw

    by_class: dict[str, list[Mapping[str, Any]]] = {}
    for clip in clips:
        by_class.setdefault(clip["label"], []).append(clip)
    rows = [
        (label, clip) for label in sorted(by_class) for clip in by_class[label][:clips_per_class]
    ]
    header = 18 if title else 0
    width = _LABEL_WIDTH + frames * (thumb + _PAD)
    sheet = Image.new("RGB", (width, header + len(rows) * (thumb + _PAD)), "white")
    draw = ImageDraw.Draw(sheet)
    if title:
        draw.text((4, 3), title, fill="black")
    for row, (label, clip) in enumerate(rows):
        top = header + row * (thumb + _PAD)
        draw.text((4, top + thumb // 2 - 10), label, fill="black")
        draw.text((4, top + thumb // 2 + 2), Path(clip["path"]).name[:18], fill="gray")
        first = int(clip.get("first_frame", 0))
        indices = [
            first + i for i in uniform(int(clip.get("end_frame", clip["frames"])) - first, frames)
        ]
        for col, image in enumerate(read_frames(root / clip["path"], indices)):
            tile = Image.fromarray(image).resize((thumb, thumb), Image.Resampling.NEAREST)
            sheet.paste(tile, (_LABEL_WIDTH + col * (thumb + _PAD), top))
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    return atomic_write_bytes(path, buffer.getvalue())


def class_balance_chart(
    counts: Mapping[str, Mapping[str, int]], classes: Sequence[str], path: Path
) -> Path:
    """A grouped bar chart PNG: clips per class in each split."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    splits = list(counts)
    width = 0.8 / max(len(splits), 1)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.1 * len(classes) + 1.5), 3.2), dpi=100)
    for i, split in enumerate(splits):
        xs = [c + (i - (len(splits) - 1) / 2) * width for c in range(len(classes))]
        bars = ax.bar(xs, [counts[split].get(c, 0) for c in classes], width, label=split)
        ax.bar_label(bars, fontsize=7)
    ax.set_xticks(range(len(classes)), classes, rotation=20, ha="right")
    ax.set_ylabel("clips")
    ax.set_title("Clips per class and split")
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())
