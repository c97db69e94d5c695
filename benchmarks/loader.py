"""Data loading: clips per second with 0, 1 and 2 DataLoader workers, and peak memory of one
epoch over 100 vs 10,000 clips (flat memory: nothing is preloaded).

    python benchmarks/loader.py                 # writes its section of docs/benchmarks.md
    python benchmarks/loader.py --quick --out - # smoke run, print only

Videos: distinct synthetic clips (64x64, 16 frames, H.264) generated once into --work (reused
by later runs). Each measurement runs in a fresh process, so peak RSS is that epoch's own:
``ru_maxrss`` of the process (workers=0) and, with workers, the largest worker's too.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from _common import BENCHMARKS_MD, write_section

SECTION = "## Data loading"
CLASSES = ["linear", "circular", "oscillate", "zigzag", "jitter"]


def _generate(args: tuple[str, int, int]) -> list[dict]:
    """Encode clips ``first .. first + count - 1`` (each from its own seeded generator)."""
    import numpy as np

    from atriom.reservoir.synthetic import PATTERNS, SyntheticVideos, render_clip
    from atriom.video import probe, write_video

    directory, first, count = args
    knobs_of = SyntheticVideos(
        classes=CLASSES, clips_per_class=1, num_frames=16, size=64, fps=8
    ).knobs
    rows = []
    for n in range(first, first + count):
        label = CLASSES[n % len(CLASSES)]
        rng = np.random.default_rng([7, n])
        knobs = knobs_of(rng)
        frames = render_clip(
            rng,
            PATTERNS[label],
            frames=16,
            size=64,
            **{k: knobs[k] for k in ("speed", "radius", "noise", "distractors")},
        )
        path = write_video(
            Path(directory) / f"{n // 1000:02d}" / f"clip_{n:05d}.mp4", frames, fps=8
        )
        rows.append(
            {
                "path": str(path),
                "label_id": CLASSES.index(label),
                "video_frames": probe(path).frames,
            }
        )
    return rows


def ensure_clips(work: Path, count: int) -> list[dict]:
    """``count`` distinct clips under ``work`` (generated once, in 2 processes)."""
    index = work / f"index_{count}.json"
    if index.is_file():
        return json.loads(index.read_text())
    work.mkdir(parents=True, exist_ok=True)
    chunk = 250
    jobs = [
        (str(work / "videos"), first, min(chunk, count - first)) for first in range(0, count, chunk)
    ]
    with ProcessPoolExecutor(max_workers=2) as pool:
        rows = [row for part in pool.map(_generate, jobs) for row in part]
    index.write_text(json.dumps(rows))
    return rows


def measure(index_file: str, clips: int, workers: int, batch: int) -> dict:
    """One epoch over the first ``clips`` clips; runs in its own process (see main)."""
    import resource

    import torch

    from atriom.conduit.dataset import ClipDataset

    torch.set_num_threads(1)
    rows = json.loads(Path(index_file).read_text())[:clips]
    samples = [
        {
            **r,
            "id": i,
            "split": "train",
            "sha256": "0" * 64,
            "first_frame": 0,
            "end_frame": r["video_frames"],
            "views": [[0]],
        }
        for i, r in enumerate(rows)
    ]
    dataset = ClipDataset(
        samples,
        Path("/"),
        sampler={
            "num_frames": 8,
            "stride": 2,
            "train": "random_segment",
            "eval": "centred",
            "eval_clips": 1,
        },
        image_size=64,
        mean=[0.5] * 3,
        std=[0.5] * 3,
        train=True,
        augment={"hflip": 0.5, "brightness": 0.1},
        seed=0,
    )
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=batch, shuffle=True, num_workers=workers
    )
    started = time.perf_counter()
    seen = 0
    for batch_ in loader:
        seen += len(batch_["labels"])
    seconds = time.perf_counter() - started
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return {"clips": seen, "seconds": seconds, "rss_kib": own, "worker_rss_kib": children}


def run_child(index_file: Path, clips: int, workers: int, batch: int) -> dict:
    out = subprocess.run(
        [sys.executable, __file__, "--child", json.dumps([str(index_file), clips, workers, batch])],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="1,000 clips instead of 10,000; 1 repetition"
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/atriom-loader-bench"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(BENCHMARKS_MD), help="markdown file, or - to print")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(measure(*json.loads(args.child))))
        return

    big = 1_000 if args.quick else 10_000
    repeats = 1 if args.quick else args.repeats
    ensure_clips(args.work, big)
    index_file = args.work / f"index_{big}.json"
    batch = 8

    throughput = {}
    for workers in (0, 1, 2):
        runs = [run_child(index_file, 1000, workers, batch) for _ in range(repeats)]
        throughput[workers] = statistics.median(r["clips"] / r["seconds"] for r in runs)
    memory = {}
    for clips in (100, big):
        runs = [run_child(index_file, clips, 0, batch) for _ in range(repeats)]
        memory[clips] = statistics.median(r["rss_kib"] for r in runs) / 1024
    ratio = memory[big] / memory[100]
    import torch

    command = "python benchmarks/loader.py" + (" --quick" if args.quick else "")
    table = (
        f"{SECTION}\n\n"
        f"Command: `{command}` ({time.strftime('%Y-%m-%d')}; {platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}). One epoch of `ClipDataset` (training: random 8-frame segment, stride 2, "
        f"flip + brightness) through a DataLoader, batch {batch}, over distinct 64x64 H.264 clips; medians of "
        f"{repeats} run(s), each in a fresh process.\n\n"
        "| DataLoader workers | clips/s (1,000 clips) |\n|---|---|\n"
        + "".join(f"| {w} | {throughput[w]:.0f} |\n" for w in (0, 1, 2))
        + "\n| clips in the epoch | peak RSS (workers=0) |\n|---|---|\n"
        + "".join(f"| {c:,} | {memory[c]:.0f} MiB |\n" for c in (100, big))
        + f"\n**Peak RSS with {big:,} clips / with 100: {ratio:.3f}** (target <= 1.10: memory stays flat).\n"
    )
    print(table)
    if args.out != "-":
        write_section(Path(args.out), SECTION, table)


if __name__ == "__main__":
    main()
