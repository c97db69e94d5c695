"""Frame extraction benchmark: exact frames by index, seed loop vs peers vs FrameReader.

Run from the repository root::

    .venv/bin/python benchmarks/frames.py            # full run, ~15 min on 2 cores
    .venv/bin/python benchmarks/frames.py --quick    # smoke run, ~1 min

It encodes its own videos with PyAV (no system ffmpeg needed): every frame carries its
own index as a 16-bit barcode along the top edge, so a returned frame can be identified
even where two libraries' pixel conversions round differently. Each method is checked
against a full sequential PyAV decode, bit for bit and by barcode, on every call. Methods
are interleaved within each repetition (rotating their order) so that load from other
work on the machine hits all of them alike; cells are medians. The Markdown table goes
into the ``## Frame extraction`` section of ``--out`` (other sections are kept).

Peers are used if importable: ``pip install decord`` and ``pip install --no-deps
torchcodec==0.13.0`` (which needs FFmpeg's shared libraries, e.g. ``apt-get install
ffmpeg``); they are benchmark-only, not dependencies of atriom.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import _common  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

from atriom.reader import FrameReader  # noqa: E402

BITS = 16
#: 1-minute load averages sampled during the run, reported with the table.
LOADS: list[float] = []
SECTION = "## Frame extraction"

# -- videos -----------------------------------------------------------------------------


def barcode(frame: np.ndarray, index: int) -> np.ndarray:
    """Burn ``index`` into the top band of ``frame``: 16 black/white blocks, MSB first."""
    height, width = frame.shape[:2]
    block, band = width // BITS, max(8, height // 16)
    for bit in range(BITS):
        on = (index >> (BITS - 1 - bit)) & 1
        frame[:band, bit * block : (bit + 1) * block] = 255 if on else 0
    return frame


def read_barcode(frame: np.ndarray) -> int:
    height, width = frame.shape[:2]
    block, band = width // BITS, max(8, height // 16)
    value = 0
    for bit in range(BITS):
        patch = frame[
            band // 4 : 3 * band // 4, bit * block + block // 4 : (bit + 1) * block - block // 4
        ]
        value = (value << 1) | int(patch.mean() > 127)
    return value


def scenes(n: int, width: int, height: int, seed: int = 0) -> Iterator[np.ndarray]:
    """Panning textured scenes with fresh noise per frame and a cut every 40-110 frames."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : height + 64, 0 : width + 64].astype(np.float32)
    made = 0
    while made < n:
        length = int(rng.integers(40, 110))
        fx, fy = rng.uniform(0.01, 0.08, 2)
        phase = rng.uniform(0, 6.28)
        base = np.stack(
            [
                127 + 100 * np.sin(xx * fx + phase),
                127 + 100 * np.sin(yy * fy + 2 * phase),
                127 + 100 * np.sin((xx + yy) * fx * 0.7),
            ],
            axis=-1,
        ).astype(np.uint8)
        vx, vy = (int(v) for v in rng.integers(-3, 4, 2))
        for k in range(min(length, n - made)):
            ox, oy = (k * vx) % 64, (k * vy) % 64
            img = base[oy : oy + height, ox : ox + width].copy()
            img[::2, ::2] //= 2
            img[::2, ::2] += rng.integers(0, 24, img[::2, ::2].shape, dtype=np.uint8)
            yield barcode(img, made)
            made += 1


@dataclass(frozen=True)
class Video:
    name: str
    file: str
    codec: str
    width: int
    height: int
    options: dict[str, str] = field(default_factory=dict)
    gop: int = 0


VIDEOS = [
    Video("mp4v GOP 12", "mp4v_gop12.mp4", "mpeg4", 640, 480, {"qscale": "3"}, gop=12),
    Video(
        "H.264 GOP 250, B-frames, no scene cuts",
        "h264_gop250_nosc.mp4",
        "libx264",
        640,
        480,
        {"crf": "20", "preset": "medium", "x264-params": "keyint=250:bframes=3:scenecut=0"},
    ),
    Video(
        "H.264 GOP 250, B-frames, scene cuts",
        "h264_gop250_sc.mp4",
        "libx264",
        640,
        480,
        {"crf": "20", "preset": "medium", "x264-params": "keyint=250:bframes=3"},
    ),
    Video(
        "H.264 GOP 30, B-frames",
        "h264_gop30.mp4",
        "libx264",
        640,
        480,
        {"crf": "20", "preset": "medium", "x264-params": "keyint=30:bframes=3"},
    ),
    Video(
        "H.264 128×128",
        "h264_128.mp4",
        "libx264",
        128,
        128,
        {"crf": "20", "preset": "medium", "x264-params": "keyint=250:bframes=3"},
    ),
]


def encode(video: Video, path: Path, frames: int) -> None:
    import av

    tmp = path.with_suffix(".tmp" + path.suffix)
    with av.open(str(tmp), mode="w") as container:
        stream = container.add_stream(video.codec, rate=Fraction(30))
        stream.width, stream.height, stream.pix_fmt = video.width, video.height, "yuv420p"
        if video.gop:
            stream.codec_context.gop_size = video.gop
        stream.options = dict(video.options)
        for image in scenes(frames, video.width, video.height):
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    os.replace(tmp, path)


@dataclass
class Reference:
    crcs: list[int]
    keyframes: int
    frames: int


def reference(path: Path) -> Reference:
    """Full sequential PyAV decode: the definition of frame ``i``."""
    import av

    crcs: list[int] = []
    keys = 0
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            rgb = frame.to_ndarray(format="rgb24")
            if read_barcode(rgb) != index:
                raise SystemExit(f"{path}: frame {index} does not carry its barcode")
            crcs.append(zlib.crc32(rgb))
            keys += bool(frame.key_frame)
    return Reference(crcs, keys, len(crcs))


# -- methods ----------------------------------------------------------------------------


def seed_loop(path: Path, indices: list[int]) -> np.ndarray:
    """The seed's way: seek by frame number, read one frame, per wanted index."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    frames = []
    for index in indices:
        cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, bgr = cap.read()
        if not ok:
            raise RuntimeError(f"OpenCV could not read frame {index}")
        frames.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    cap.release()
    return np.stack(frames)


def opencv_walk(path: Path, indices: list[int]) -> np.ndarray:
    """OpenCV forward walk: grab() every frame, retrieve() only the wanted ones."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    wanted = set(indices)
    got: dict[int, np.ndarray] = {}
    for index in range(max(indices) + 1):
        if not cap.grab():
            raise RuntimeError(f"OpenCV could not grab frame {index}")
        if index in wanted:
            ok, bgr = cap.retrieve()
            if not ok:
                raise RuntimeError(f"OpenCV could not retrieve frame {index}")
            got[index] = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    cap.release()
    return np.stack([got[i] for i in indices])


def pyav_decode(path: Path, indices: list[int]) -> np.ndarray:
    """PyAV as documented: decode forward, keep the wanted frames, stop at the last one."""
    import av

    wanted, last = set(indices), max(indices)
    got: dict[int, np.ndarray] = {}
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index in wanted:
                got[index] = frame.to_ndarray(format="rgb24")
            if index >= last:
                break
    return np.stack([got[i] for i in indices])


def decord_batch(path: Path, indices: list[int]) -> np.ndarray:
    import decord

    reader = decord.VideoReader(str(path), ctx=decord.cpu(0))
    return reader.get_batch(list(indices)).asnumpy()


def torchcodec_exact(path: Path, indices: list[int]) -> np.ndarray:
    from torchcodec.decoders import VideoDecoder

    decoder = VideoDecoder(str(path), seek_mode="exact", dimension_order="NHWC")
    return decoder.get_frames_at(list(indices)).data.numpy()


def atriom_reader(path: Path, indices: list[int]) -> np.ndarray:
    with FrameReader(path) as reader:
        return reader.read(indices)


SEED = "seed loop (OpenCV)"
READER = "FrameReader"
METHODS: dict[str, Callable[[Path, list[int]], np.ndarray]] = {
    SEED: seed_loop,
    "OpenCV walk": opencv_walk,
    "PyAV decode": pyav_decode,
    "decord": decord_batch,
    "torchcodec": torchcodec_exact,
    READER: atriom_reader,
}


def available_methods() -> tuple[dict[str, Callable], dict[str, str]]:
    """Methods whose library imports, and why the others were left out."""
    methods, missing = {}, {}
    for name, fn in METHODS.items():
        module = {"decord": "decord", "torchcodec": "torchcodec.decoders"}.get(name)
        if module:
            try:
                __import__(module)
            except Exception as exc:  # any import failure means "not installed here"
                missing[name] = f"{type(exc).__name__}: {exc}".splitlines()[0][:120]
                continue
        methods[name] = fn
    return methods, missing


def workloads(n: int, seed: int = 0) -> dict[str, list[int]]:
    rng = np.random.default_rng(seed)
    return {
        "16 uniform": [int(i) for i in np.linspace(0, n - 1, 16).round()],
        "64 random (shuffled)": [int(i) for i in rng.choice(n, 64, replace=False)],
        "every 4th": list(range(0, n, 4)),
        "all frames": list(range(n)),
    }


# -- measuring --------------------------------------------------------------------------


@dataclass
class Cell:
    times: list[float] = field(default_factory=list)
    wrong_pixels: int = 0
    wrong_index: int = 0
    error: str = ""

    @property
    def median(self) -> float:
        return statistics.median(self.times) if self.times else float("nan")


def check(out: np.ndarray, indices: list[int], ref: Reference) -> tuple[int, int]:
    if len(out) != len(indices):
        return len(indices), len(indices)
    pixels = sum(
        zlib.crc32(np.ascontiguousarray(f)) != ref.crcs[i]
        for f, i in zip(out, indices, strict=True)
    )
    index = sum(read_barcode(f) != i for f, i in zip(out, indices, strict=True))
    return int(pixels), int(index)


def measure(
    videos: list[tuple[Video, Path, Reference]],
    methods: dict[str, Callable],
    reps: int,
    only: set[tuple[str, str]] | None,
) -> dict[tuple[str, str, str], Cell]:
    cells: dict[tuple[str, str, str], Cell] = {}
    names = list(methods)
    total = reps * len(videos)
    step = 0
    for rep in range(reps):
        order = names[rep % len(names) :] + names[: rep % len(names)]
        for video, path, ref in videos:
            step += 1
            LOADS.append(os.getloadavg()[0])
            print(f"[{step}/{total}] rep {rep + 1}/{reps} {video.name}", flush=True)
            for load, indices in workloads(ref.frames).items():
                if only and (video.name, load) not in only:
                    continue
                for name in order:
                    cell = cells.setdefault((video.name, load, name), Cell())
                    if cell.error:
                        continue
                    gc.collect()
                    start = time.perf_counter()
                    try:
                        out = methods[name](path, indices)
                    except Exception as exc:  # a peer failing is a result, not a crash
                        cell.error = f"{type(exc).__name__}: {exc}".splitlines()[0][:100]
                        continue
                    cell.times.append(time.perf_counter() - start)
                    pixels, index = check(out, indices, ref)
                    cell.wrong_pixels = max(cell.wrong_pixels, pixels)
                    cell.wrong_index = max(cell.wrong_index, index)
                    del out
    return cells


# -- reporting --------------------------------------------------------------------------


def versions() -> dict[str, str]:
    import av
    import cv2

    found = {"av": av.__version__, "FFmpeg (PyAV)": _ffmpeg_version(av), "opencv": cv2.__version__}
    for name, module in (("decord", "decord"), ("torchcodec", "torchcodec")):
        try:
            found[name] = __import__(module).__version__
        except Exception as exc:
            found[name] = f"not available ({type(exc).__name__})"
    found["numpy"] = np.__version__
    found["python"] = platform.python_version()
    return found


def _ffmpeg_version(av) -> str:
    info = getattr(av, "ffmpeg_version_info", None)
    if info:
        return str(info)
    libavcodec = av.library_versions.get("libavcodec")
    return f"libavcodec {'.'.join(map(str, libavcodec))}" if libavcodec else "?"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def fmt_ms(seconds: float) -> str:
    ms = seconds * 1000
    return f"{ms:,.0f}" if ms >= 10 else f"{ms:.1f}"


def render(
    cells: dict[tuple[str, str, str], Cell],
    videos: list[tuple[Video, Path, Reference]],
    methods: dict[str, Callable],
    missing: dict[str, str],
    args: argparse.Namespace,
    command: str,
    started: dt.datetime,
    wall: float,
    loads: list[float],
) -> tuple[str, list[str]]:
    names = list(methods)
    peers = [n for n in names if n != READER]
    lines = [
        "### Re-measured cells" if args.only else SECTION,
        "",
        f"Produced by `{command}` on {started:%Y-%m-%d %H:%M} UTC ({wall / 60:.1f} min).",
        "",
        f"Machine: {os.cpu_count()} cores, {cpu_model()}, {platform.system()} "
        f"{platform.release()}; load average during the run "
        f"{min(loads):.1f}–{max(loads):.1f} (the machine was shared with other work; methods "
        "are interleaved within each repetition so load hits them alike).",
        "",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in versions().items()) + ".",
        "",
        f"Videos: {args.frames} frames at 30 fps, encoded by PyAV, each frame carrying its "
        "index as a barcode. Cells: median ms of "
        f"{args.reps} interleaved runs, each call opening the file. "
        "`× seed` = seed loop time / FrameReader time; `/ best peer` = FrameReader time / the "
        "fastest other method (seed loop included).",
        "",
    ]
    if missing:
        lines += ["Not measured: " + "; ".join(f"{k} ({v})" for k, v in missing.items()), ""]
    header = ["video", "workload", *peers, f"**{READER}**", "× seed", "/ best peer"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * 2 + "---:|" * (len(header) - 2)]
    misses: list[str] = []
    for video, _, ref in videos:
        for load in workloads(ref.frames):
            if not any(cells.get((video.name, load, name)) for name in names):
                continue  # not measured in this run (--only)
            row = [f"{video.name}", load]
            times = {}
            for name in names:
                cell = cells.get((video.name, load, name))
                if cell is None or not cell.times:
                    times[name] = None
                    continue
                times[name] = cell.median
            for name in peers:
                cell = cells.get((video.name, load, name))
                row.append(cell.error[:40] if cell and cell.error else _t(times[name]))
            reader = times.get(READER)
            row.append(f"**{_t(reader)}**")
            seed = times.get(SEED)
            best = min((t for n, t in times.items() if n != READER and t), default=None)
            speedup = seed / reader if seed and reader else None
            ratio = reader / best if best and reader else None
            row.append(f"{speedup:.1f}×" if speedup else "–")
            row.append(f"{ratio:.2f}" if ratio else "–")
            lines.append("| " + " | ".join(row) + " |")
            if reader is None:
                misses.append(f"{video.name} / {load}: reader did not run")
                continue
            if speedup is not None and speedup < 1:
                misses.append(f"{video.name} / {load}: slower than the seed loop ({speedup:.2f}×)")
            dense = load in ("all frames", "every 4th")
            if dense and video.codec == "libx264" and speedup is not None and speedup < 10:
                misses.append(f"{video.name} / {load}: only {speedup:.1f}× the seed loop")
            if ratio is not None and ratio > 1.15:
                misses.append(f"{video.name} / {load}: {ratio:.2f}× the fastest peer")
    lines += [
        "",
        "Correctness (frames not bit-identical to a full sequential PyAV decode / "
        "frames whose barcode is not the index asked for; worst call, all cells):",
        "",
    ]
    lines += ["| method | " + " | ".join(v.name for v, _, _ in videos) + " |"]
    lines += ["|---|" + "---:|" * len(videos)]
    for name in names:
        row = [name]
        for video, _, ref in videos:
            pixels = index = 0
            errors = []
            for load in workloads(ref.frames):
                cell = cells.get((video.name, load, name))
                if cell is None:
                    continue
                pixels += cell.wrong_pixels
                index += cell.wrong_index
                if cell.error:
                    errors.append(load)
            row.append(
                f"{pixels} / {index}" + (f" (failed: {', '.join(errors)})" if errors else "")
            )
            if name == READER and (pixels or index):
                misses.append(f"{video.name}: FrameReader returned wrong frames")
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "Keyframes per video: " + ", ".join(f"{v.name}: {r.keyframes}" for v, _, r in videos) + ".",
    ]
    lines += [
        "",
        "Acceptance (reader ≥ seed everywhere, ≥ 10× seed on dense H.264, ≤ 1.15× the "
        "fastest peer, no wrong frames): " + ("**all held**." if not misses else "**missed**:"),
    ]
    lines += [f"- {m}" for m in misses]
    return "\n".join(lines) + "\n", misses


def _t(seconds: float | None) -> str:
    return "–" if seconds is None else fmt_ms(seconds)


def write_section(out: Path, section: str, append: bool = False) -> None:
    """Our section of ``out`` (replaced, or added to with ``append``)."""
    _common.write_section(out, SECTION, section, append=append)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: short videos, 2 reps")
    parser.add_argument("--reps", type=int, help="interleaved repetitions (default 7; quick 2)")
    parser.add_argument("--frames", type=int, help="frames per video (default 900; quick 120)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "benchmarks.md")
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    parser.add_argument("--videos-dir", type=Path, help="where to keep the encoded videos")
    parser.add_argument(
        "--only",
        action="append",
        metavar="VIDEO/WORKLOAD",
        help="re-measure just these cells, e.g. 'H.264 GOP 30, B-frames/every 4th'; the "
        "table is added under '### Re-measured cells' instead of replacing the section",
    )
    parser.add_argument("--methods", help="comma-separated subset of methods")
    args = parser.parse_args(argv)
    args.reps = args.reps or (2 if args.quick else 7)
    args.frames = args.frames or (120 if args.quick else 900)
    given = sys.argv[1:] if argv is None else argv
    command = shlex.join([".venv/bin/python", "benchmarks/frames.py", *given])
    started = dt.datetime.now(dt.timezone.utc)
    t0 = time.perf_counter()

    methods, missing = available_methods()
    if args.methods:
        keep = {m.strip() for m in args.methods.split(",")}
        methods = {k: v for k, v in methods.items() if k in keep or k in (SEED, READER)}
    only = {tuple(o.split("/", 1)) for o in args.only} if args.only else None

    tmp = None
    if args.videos_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix="atriom-frames-")
        directory = Path(tmp.name)
    else:
        directory = args.videos_dir
        directory.mkdir(parents=True, exist_ok=True)
    videos = []
    for video in VIDEOS:
        if only and not any(v == video.name for v, _ in only):
            continue
        path = directory / f"{args.frames}_{video.file}"
        if not path.exists():
            print(f"encoding {video.name} -> {path}", flush=True)
            encode(video, path, args.frames)
        videos.append((video, path, reference(path)))

    # One untimed call per method so that imports and first-touch memory do not land in a cell.
    warm_video = videos[0]
    for fn in methods.values():
        with contextlib.suppress(Exception):
            fn(warm_video[1], list(range(min(warm_video[2].frames, 60))))

    cells = measure(videos, methods, args.reps, only)
    section, misses = render(
        cells, videos, methods, missing, args, command, started, time.perf_counter() - t0, LOADS
    )
    print(section)
    if not args.no_write:
        write_section(args.out, section, append=bool(args.only))
        print(f"wrote {args.out}")
    print("acceptance:", "all targets held" if not misses else f"{len(misses)} missed")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
