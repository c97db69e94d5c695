"""What the benchmark scripts share: writing their section of docs/benchmarks.md."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_MD = ROOT / "docs" / "benchmarks.md"


def write_section(path: Path, heading: str, body: str, append: bool = False) -> None:
    """Replace the section that starts with ``heading`` (up to the next ``## ``) by ``body``,
    or add ``body`` to its end with ``append``; other sections stay as they are. ``body``
    starts with the heading itself unless appending."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    start = text.find(heading + "\n")
    if start < 0:
        new = body if not append else f"{heading}\n\n{body}"
        text = text.rstrip("\n") + "\n\n" + new.rstrip("\n") + "\n"
    else:
        end = text.find("\n## ", start + len(heading))
        rest = text[end + 1 :] if end >= 0 else ""
        ours = text[start : end + 1] if end >= 0 else text[start:]
        new = ours.rstrip("\n") + "\n\n" + body if append else body
        text = text[:start] + new.rstrip("\n") + "\n" + ("\n" + rest if rest else "")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
