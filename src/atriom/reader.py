"""Exact, fast frame reading: any list of frame indices from any video PyAV can decode.

*Frame index* means position in presentation (display) order counting from 0: the i-th
frame a full sequential decode yields. Getting exactly that frame without decoding the
whole file is where naive readers go wrong (``cv2.CAP_PROP_POS_FRAMES`` and timestamp
arithmetic break on B-frames, open GOPs, variable frame rate and lying headers), and
decoding the whole file is where the exact ones get slow. This reader does both:

* **Index.** On open it demuxes the video stream once, without decoding (a few ms per
  file): every packet's pts, keyframe flag and whether it is *disposable* (an H.264
  slice no other frame references). Display index ``i`` is the packet with the i-th
  smallest pts; the frame count is the number of displayable packets, checked by decoding
  the last GOP (never the container header, which may be wrong or absent).
* **Plan.** The wanted frames are taken in decode order. For each, the reader either
  walks on from where the decoder is, or seeks to the keyframe at or before it, whichever
  decodes less: walking costs the packets in between (disposable ones not wanted are not
  decoded at all), seeking costs :data:`SEEK_COST` plus the packets from that keyframe.
  The choice therefore follows the stream's GOP structure, not a fixed gap: dense requests
  and long GOPs walk, sparse requests in short GOPs seek.
* **Exactness.** Frames are matched to requests by pts, not by counting, so a seek landing
  early, reordered B-frames, open-GOP leading frames (planned from the previous keyframe)
  and irregular timestamps cannot shift an index. A seek is checked against the index
  (the first packet after it must be the keyframe asked for, or one before it), the
  keyframe must decode as an intra frame, and every packet fed must be the one the index
  expects. Anything unexpected (missing or duplicate pts, a keyframe flag that lies, a
  frame that does not show up) makes the reader fall back to a plain sequential decode,
  which is exact by definition. Decoder failures become :class:`~atriom.errors.VideoError`.

Backend: PyAV, chosen from the benchmark (``benchmarks/frames.py``, results in
``docs/benchmarks.md``). OpenCV hides what exactness and speed need (packet timestamps,
keyframe positions, which frames are disposable): its seek-per-frame loop was 2-50x slower
and its forward walk decodes everything. decord re-seeks on random requests (10x slower
there). torchcodec is about as fast (it converts straight into its output tensor) but
cannot be a dependency: its CPU build is pinned to one torch release and needs a system
FFmpeg. PyAV ships its own FFmpeg in the wheel.

``av`` is imported inside the functions that need it, so importing this module is cheap.
"""

from __future__ import annotations

import bisect
import mmap
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from atriom.errors import VideoError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

__all__ = ["SEEK_COST", "SLICE_THREADS_FROM", "SMALL_PAGES_FROM", "FrameReader", "read_frames"]

#: What one seek costs, in decoded frames. The demuxer seek itself is an index lookup
#: (measured 0.01-0.03 ms against 0.17-0.9 ms to decode one frame of the benchmark's
#: videos) and the decoder is drained, not re-run, so a seek pays off as soon as it skips
#: one frame that walking would have decoded; 1 keeps a margin for containers that seek
#: by scanning.
SEEK_COST = 1.0

#: Frames of at least this many pixels decode on FFmpeg slice threads by default: on 2
#: idle cores 640x480 H.264 decodes 25-30 % faster, while 128x128 (a slice or two per
#: frame) decodes nearly 2x slower -- the threads' hand-offs cost more than they share.
SLICE_THREADS_FROM = 640 * 360 // 2

#: Errors PyAV raises for bad input; all of them become :class:`VideoError`.
_DECODE_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, RuntimeError, EOFError)


class _Inconsistent(Exception):
    """The stream does not behave as its packet index says: fall back to sequential."""


class _BadKeyframe(Exception):
    """A packet flagged as keyframe did not decode as a random-access point."""

    def __init__(self, key: int) -> None:
        super().__init__(key)
        self.key = key


@dataclass
class _Run:
    """Decode packets ``start..end`` (decode order) after seeking to keyframe ``start``."""

    start: int
    end: int
    #: pts -> display index of the frames this run must deliver.
    wanted: dict[int, int] = field(default_factory=dict)


#: Outputs at least this large get their own pre-populated mapping, see :func:`_empty`.
SMALL_PAGES_FROM = 64 << 20


def _empty(shape: tuple[int, ...]) -> np.ndarray:
    """An uninitialised ``uint8`` array for the frames, mapped up front when it is large.

    NumPy asks Linux for transparent huge pages on arrays over 4 MB. Where the kernel then
    compacts memory to find them (``defrag=madvise``, the common default), first touches
    stall: reading 900 640x480 frames spent 0.5-2.2 s in the kernel that way against 0.3 s
    on small pages, and the stalls made timings swing 2x between runs. A private anonymous
    mapping populated in one call (``MAP_POPULATE``) uses small pages and costs less than
    faulting them in one by one (measured 0.20 s against 0.27 s for 830 MB). Below
    :data:`SMALL_PAGES_FROM` populating costs more than it saves (16 frames, 15 MB: 32.5
    against 28.0 ms); from 200 MB on the stalls are back (225 frames: 217 against 481 ms
    in the frames benchmark) and at 791 MB populating wins outright (856 against 1,066 ms).
    The mapping is freed with the array. Elsewhere (no ``MAP_POPULATE``) it is a plain
    ``np.empty``.
    """
    size = int(np.prod(shape))
    if size < SMALL_PAGES_FROM or not hasattr(mmap, "MAP_POPULATE"):
        return np.empty(shape, dtype=np.uint8)
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | mmap.MAP_POPULATE
    return np.frombuffer(mmap.mmap(-1, size, flags=flags), dtype=np.uint8).reshape(shape)


class _Sink:
    """Where decoded frames go: converted straight into their slot of the output array.

    Only wanted frames are converted, once each, with one shared converter. (Converting on
    a helper thread while the next frame decodes was tried: on 2 shared cores it was 25 %
    slower than doing both on the caller's thread, so there is none.)
    """

    def __init__(self, wanted: list[int], convert, shape: tuple[int, int]) -> None:
        self.wanted = wanted
        self.convert = convert
        self.shape = shape
        self.first: dict[int, int] = {}
        for slot, index in enumerate(wanted):
            self.first.setdefault(index, slot)
        self.filled: set[int] = set()
        self.out: np.ndarray | None = None

    def put(self, index: int, frame: Any) -> None:
        if self.out is None:
            height, width = self.shape if all(self.shape) else (frame.height, frame.width)
            self.out = _empty((len(self.wanted), height, width, 3))
        self.out[self.first[index]] = self.convert(frame)
        self.filled.add(index)

    def finish(self) -> np.ndarray:
        out = self.out
        assert out is not None
        for slot, index in enumerate(self.wanted):
            first = self.first[index]
            if first != slot:
                out[slot] = out[first]
        return out


def _auto_threads() -> int:
    """1 inside a torch DataLoader worker process (the workers share the cores), else 0
    (FFmpeg: one per core)."""
    data = sys.modules.get("torch.utils.data")
    if data is not None and data.get_worker_info() is not None:
        return 1
    return 0


def _errors() -> tuple[type[BaseException], ...]:
    import av

    return (av.FFmpegError, *_DECODE_ERRORS)


def _h264_disposable(extradata: bytes | None):
    """A test for "this H.264 packet holds only non-reference slices", or None.

    Such a packet can be left undecoded when its frame is not wanted: no other frame
    refers to it (``nal_ref_idc == 0``). Only the length-prefixed (avcC) layout of MP4 and
    Matroska is parsed; anything unexpected in a packet counts as "needed".
    """
    if not extradata or len(extradata) < 7 or extradata[0] != 1:
        return None
    size_len = (extradata[4] & 3) + 1
    slices = {1, 2, 3, 4}
    harmless = {6, 9, 10, 12}  # SEI, access unit delimiter, end of sequence, filler

    def disposable(data: memoryview) -> bool:
        offset, end, saw_slice = 0, len(data), False
        while offset + size_len < end:
            size = int.from_bytes(data[offset : offset + size_len], "big")
            offset += size_len
            if size <= 0 or offset + size > end:
                return False
            header = data[offset]
            kind = header & 0x1F
            if kind in slices:
                if header & 0x60:  # nal_ref_idc != 0: a reference picture
                    return False
                saw_slice = True
            elif kind not in harmless:
                return False
            offset += size
        return saw_slice and offset == end

    return disposable


class FrameReader:
    """Exact frames of one video by display index, decoding as little as the GOPs allow.

    Use as a context manager (or call :meth:`close`)::

        with FrameReader("clip.mp4") as reader:
            frames = reader.read([0, 40, 12, 40])   # (4, H, W, 3) uint8 RGB, as asked

    One reader serves one thread; it can be pickled (it reopens the file on unpickling), so
    a Dataset holding readers works with DataLoader worker processes. Everything runs on the
    caller's thread. ``decoder_threads`` is FFmpeg's *slice* thread count (slice threads
    decode parts of one frame together: no added latency, nothing held across a seek):
    ``None``, the default, means one per core (``0``) in the main process for frames of at
    least :data:`SLICE_THREADS_FROM` pixels, else 1 (small frames, and inside DataLoader
    worker processes, which already share the cores); 25-30 % faster on dense 640x480
    H.264 requests on 2 idle cores.
    """

    def __init__(self, path: str | os.PathLike[str], *, decoder_threads: int | None = None) -> None:
        self.path = Path(path)
        self._decoder_threads = decoder_threads
        self._container: Any = None
        self._stream: Any = None
        self._reformatter: Any = None
        self._demuxer: Iterator[Any] | None = None
        self._lookahead: Any = None
        self._num_frames: int | None = None
        self._sequential = False
        self._check: dict[str, Any] | None = None
        self._open()
        try:
            self._build_index()
        except BaseException:
            self.close()
            raise

    # -- opening and indexing ------------------------------------------------------------

    def _fail(self, what: str, exc: BaseException | None = None) -> VideoError:
        detail = f" ({exc})" if exc is not None and str(exc) else ""
        return VideoError(f"{self.path}: {what}{detail}", path=self.path, reason=what.split(";")[0])

    def _open(self) -> None:
        import av

        path = self.path
        if not path.exists():
            raise VideoError(
                f"{path}: no such file; check the path.", path=path, reason="missing file"
            )
        if not path.is_file():
            raise VideoError(
                f"{path}: not a file; pass the path of a video file.",
                path=path,
                reason="not a file",
            )
        if path.stat().st_size == 0:
            raise VideoError(
                f"{path}: file is empty (0 bytes); re-copy or remove it.",
                path=path,
                reason="empty file (0 bytes)",
            )
        try:
            container = av.open(str(path))
        except _errors() as exc:
            raise self._fail(
                "not a readable video: truncated, damaged or not a video at all; "
                "re-copy or re-encode it",
                exc,
            ) from exc
        if not container.streams.video:
            container.close()
            raise VideoError(
                f"{path}: holds no video stream; pass a video file.",
                path=path,
                reason="no video stream",
            )
        self._container = container
        self._stream = stream = container.streams.video[0]
        context = stream.codec_context
        threads = self._decoder_threads
        if threads is None:
            small = (context.width or 0) * (context.height or 0) < SLICE_THREADS_FROM
            threads = 1 if small else _auto_threads()
        if threads != 1:
            context.thread_type = "SLICE"
        context.thread_count = max(int(threads), 0)
        self._demuxer = None
        self._lookahead = None

    def _reopen(self) -> None:
        """Back to the first packet with a fresh decoder: the one seek that cannot miss."""
        if self._container is not None:
            self._container.close()
        self._open()

    def _build_index(self) -> None:
        stream = self._stream
        context = stream.codec_context
        self.width, self.height = int(context.width), int(context.height)
        self.codec = str(context.name)
        #: Frame count the container header claims (0 when it has none); informational.
        self.header_frames = int(stream.frames or 0)
        self.time_base = stream.time_base
        rate = stream.average_rate or stream.base_rate or stream.guessed_rate
        #: Frames per second the stream declares (average rate; 0.0 when unknown).
        self.fps = float(rate) if rate else 0.0
        disposable = (
            _h264_disposable(bytes(context.extradata or b"")) if self.codec == "h264" else None
        )
        pts: list[int | None] = []
        keys: list[bool] = []
        skippable: list[bool] = []
        shown: list[bool] = []
        dts: list[int | None] = []
        try:
            for packet in self._container.demux(stream):
                if packet.size == 0:
                    continue  # the demuxer's end-of-stream marker
                pts.append(packet.pts)
                dts.append(packet.dts)
                keys.append(bool(packet.is_keyframe))
                shown.append(not packet.is_discard)
                skip = bool(packet.is_disposable) and not packet.is_keyframe
                if not skip and disposable is not None and not packet.is_keyframe:
                    skip = disposable(memoryview(packet))
                skippable.append(skip)
        except _errors() as exc:
            raise self._fail(
                f"reading the stream failed after {len(pts)} packet(s): the file is "
                "truncated or damaged; re-copy or re-encode it",
                exc,
            ) from exc
        if not pts:
            raise VideoError(
                f"{self.path}: no video frames in the file; re-encode or remove it.",
                path=self.path,
                reason="no video frames",
            )
        self._pts = pts
        self._dts = dts
        self._keys = keys
        self._skippable = skippable
        self._shown = shown
        self._demuxer = None  # the scan consumed it; the first read seeks
        self._index_sequential_check()

    def _index_sequential_check(self) -> None:
        """Decide whether the packet index can be trusted for seeking; build the maps."""
        pts = self._pts
        valid = all(p is not None for p in pts)
        if valid:
            shown_pts = [p for p, s in zip(pts, self._shown, strict=True) if s]
            valid = len(set(pts)) == len(pts) and bool(shown_pts) and self._keys[0]
        if valid:
            key_packets = [j for j, k in enumerate(self._keys) if k]
            key_pts = [pts[j] for j in key_packets]
            # Keyframes in decode order must be in display order, and nothing may be
            # displayed before the first one (it would be a broken open-GOP leading frame
            # that a full decode may or may not yield).
            valid = key_pts == sorted(key_pts) and min(shown_pts) >= key_pts[0]
        if not valid:
            self._sequential = True
            self._display: list[int] = []
            self.keyframes: tuple[int, ...] = (0,)
            return
        order = sorted((p, j) for j, p in enumerate(pts) if self._shown[j])
        self._display = [j for _, j in order]  # display index -> packet
        self._packet_of_pts = {p: j for j, p in enumerate(pts)}
        self._index_of = {j: i for i, j in enumerate(self._display)}
        self._key_packets = key_packets
        self._key_pts = key_pts
        self._trusted = [True] * len(key_packets)
        self.keyframes = tuple(self._index_of[j] for j in key_packets if j in self._index_of)
        # Decoding cost prefix sums: a packet costs 1 unless it may be left undecoded.
        self._cost = [0, *accumulate(0 if s else 1 for s in self._skippable)]

    # -- public API ----------------------------------------------------------------------

    @property
    def num_frames(self) -> int:
        """Exact frame count, established by decoding (never the header's claim)."""
        if self._num_frames is None:
            self._num_frames = self._count_frames()
        return self._num_frames

    @property
    def indexed(self) -> bool:
        """True while the packet index is trusted for seeking; False once the reader has
        fallen back to sequential decoding (no timestamps, or the index proved wrong)."""
        return not self._sequential

    def __len__(self) -> int:
        return self.num_frames

    def read(
        self, indices: Iterable[int] | np.ndarray, as_pil: bool = False
    ) -> np.ndarray | list[Image.Image]:
        """Frames ``indices`` (display order, from 0) as RGB ``uint8 (N, H, W, 3)``.

        Order is as asked and duplicates are allowed. ``as_pil=True`` returns a list of
        PIL images instead. Raises :class:`VideoError` for negative or out-of-range indices
        and for files that fail to decode.
        """
        wanted = self._check_indices(indices)
        if not wanted:
            out = np.empty((0, self.height, self.width, 3), dtype=np.uint8)
            return [] if as_pil else out
        if self._container is None:
            raise VideoError(f"{self.path}: the reader is closed; open a new FrameReader.")
        unique = sorted(set(wanted))
        if not self._sequential and unique[-1] >= len(self._display):
            self._raise_out_of_range(unique[-1])
        sink = _Sink(wanted, self._to_rgb, (self.height, self.width))
        try:
            self._read_unique(unique, sink)
            out = sink.finish()
        except _errors() as exc:  # from the converter; decoding errors are handled inside
            raise self._fail("converting frames to RGB failed; re-encode the video", exc) from exc
        if as_pil:
            from PIL import Image

            return [Image.fromarray(frame) for frame in out]
        return out

    def plan(self, indices: Iterable[int] | np.ndarray) -> list[tuple[int, int]]:
        """How :meth:`read` would decode ``indices``: one ``(keyframe, packets)`` per seek.

        ``keyframe`` is the display index decoding starts from and ``packets`` the number
        of packets fed to the decoder from there (disposable ones nobody asked for are not
        decoded, so not counted). For looking at the walk/seek choice; reads nothing.
        """
        wanted = self._check_indices(indices)
        if not wanted:
            return []
        if self._sequential:
            return [(0, max(wanted) + 1)]
        unique = sorted(set(wanted))
        if unique[-1] >= len(self._display):
            self._raise_out_of_range(unique[-1])
        runs = self._plan(sorted(self._display[i] for i in unique))
        return [
            (
                self._index_of[run.start],
                sum(
                    1
                    for j in range(run.start, run.end + 1)
                    if not self._skippable[j] or self._pts[j] in run.wanted
                ),
            )
            for run in runs
        ]

    def close(self) -> None:
        """Release the file and the decoder."""
        if self._container is not None:
            self._container.close()
            self._container = None
            self._demuxer = None
            self._lookahead = None

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "decoder_threads": self._decoder_threads}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["path"], decoder_threads=state["decoder_threads"])  # type: ignore[misc]

    def __enter__(self) -> FrameReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FrameReader({str(self.path)!r}, codec={self.codec}, {self.width}x{self.height})"

    # -- helpers -------------------------------------------------------------------------

    def _check_indices(self, indices: Iterable[int] | np.ndarray) -> list[int]:
        array = np.asarray(list(indices) if not isinstance(indices, np.ndarray) else indices)
        if array.size == 0:
            return []
        if array.ndim != 1 or not np.issubdtype(array.dtype, np.integer):
            raise VideoError(
                f"{self.path}: frame indices must be a flat list of integers, got {array.dtype}"
                f" with shape {array.shape}."
            )
        wanted = [int(i) for i in array]
        low = min(wanted)
        if low < 0:
            raise VideoError(
                f"{self.path}: negative frame index {low}; indices count from 0 "
                "(use num_frames - 1 for the last frame)."
            )
        return wanted

    def _raise_out_of_range(self, index: int) -> None:
        total = self.num_frames
        if index >= total:
            raise VideoError(
                f"{self.path}: frame index {index} is out of range: the video has {total} "
                f"frames (0..{total - 1})."
            )

    def _to_rgb(self, frame: Any) -> np.ndarray:
        """One shared converter: building an SwsContext per frame costs as much as decoding."""
        if self._reformatter is None:
            from av.video.reformatter import VideoReformatter

            self._reformatter = VideoReformatter()
        # threads=1: swscale's own slice threads cost more in wake-ups than they save at
        # these sizes (measured: 9 vs 17 us per 128x128 frame, 137 vs 159 us at 640x480).
        rgb = self._reformatter.reformat(
            frame,
            width=self.width or None,
            height=self.height or None,
            format="rgb24",
            threads=1,
        )
        return rgb.to_ndarray()

    # -- decoding ------------------------------------------------------------------------

    def _read_unique(self, unique: list[int], sink: _Sink) -> None:
        if not self._sequential:
            try:
                return self._read_indexed(unique, sink)
            except _Inconsistent:
                self._sequential = True  # the index lied once; never trust it again
                self._num_frames = None
            except _errors():
                # A seek into a stream the decoder cannot start mid-way: decode it whole,
                # which raises a VideoError itself if the file really is damaged.
                self._sequential = True
                self._num_frames = None
            sink.filled.clear()
        self._read_sequential(unique, sink)

    def _next_packet(self) -> Any:
        """The next non-empty video packet, or None at the end of the stream."""
        if self._lookahead is not None:
            packet, self._lookahead = self._lookahead, None
            return packet
        if self._demuxer is None:
            self._demuxer = self._container.demux(self._stream)
        for packet in self._demuxer:
            if packet.size:
                return packet
        return None

    def _keyframe_for(self, j: int) -> int:
        """Position (in ``_key_packets``) of the trusted keyframe to decode packet ``j`` from."""
        m = bisect.bisect_right(self._key_pts, self._pts[j]) - 1
        while m >= 0 and (self._key_packets[m] > j or not self._trusted[m]):
            m -= 1
        if m < 0:
            raise _Inconsistent
        return m

    def _plan(self, packets: list[int]) -> list[_Run]:
        """Group wanted packets (sorted by decode position) into seek-then-walk runs."""
        cost = self._cost
        runs: list[_Run] = []
        for j in packets:
            m = self._keyframe_for(j)
            key = self._key_packets[m]
            run = runs[-1] if runs else None
            if run is not None and run.start <= key:
                walk = cost[j + 1] - cost[run.end + 1] if j > run.end else 0
                seek = SEEK_COST + cost[j + 1] - cost[key]
                if walk <= seek:
                    run.end = max(run.end, j)
                    run.wanted[self._pts[j]] = self._index_of[j]
                    continue
            runs.append(_Run(start=key, end=j, wanted={self._pts[j]: self._index_of[j]}))
        return runs

    def _read_indexed(self, unique: list[int], sink: _Sink) -> None:
        packets = sorted(self._display[i] for i in unique)
        pending = packets
        for _ in range(len(self._key_packets) + 1):
            try:
                for run in self._plan(pending):
                    self._decode_run(run, sink)
                self._drain(sink)
                break
            except _BadKeyframe as bad:
                self._trusted[bad.key] = False
                self._check = None  # drop the decoder state and whatever it still holds
                self._reopen()
                pending = [j for j in packets if self._index_of[j] not in sink.filled]
        if len(sink.filled) != len(unique):
            raise _Inconsistent

    def _seek(self, key: int) -> None:
        """Position the demuxer so that the next packet is keyframe packet ``key``."""
        target = self._key_packets[key]
        for attempt in range(3):
            if attempt == 2:
                self._reopen()
                landed = 0
                packet = self._next_packet()
            else:
                # Seek by the keyframe's dts (<= its pts): MP4 indexes by dts, Matroska by
                # pts; either way we land on this keyframe or an earlier one.
                back = key - attempt * 4
                j = self._key_packets[max(back, 0)]
                ts = self._dts[j] if self._dts[j] is not None else self._pts[j]
                self._container.seek(ts, stream=self._stream, backward=True)
                self._demuxer = None
                self._lookahead = None
                packet = self._next_packet()
                landed = self._packet_of_pts.get(packet.pts) if packet is not None else None
                if landed is None or landed > target:
                    continue
            while packet is not None and landed < target:
                packet = self._next_packet()
                landed += 1
            if packet is None or packet.pts != self._pts[target]:
                raise _Inconsistent
            self._lookahead = packet
            return
        raise _Inconsistent  # pragma: no cover - the last attempt always reopens

    def _decode_run(self, run: _Run, sink: _Sink) -> None:
        self._drain(sink)
        m = bisect.bisect_left(self._key_packets, run.start)
        self._seek(m)
        context = self._stream.codec_context
        key_pts = self._pts[run.start]
        check = {"key_pts": key_pts, "key": m, "wanted": run.wanted}
        self._check = check
        for j in range(run.start, run.end + 1):
            packet = self._next_packet()
            if packet is None or packet.pts != self._pts[j]:
                raise _Inconsistent
            if self._skippable[j] and self._pts[j] not in run.wanted:
                continue
            for frame in context.decode(packet):
                self._take(frame, sink)

    def _take(self, frame: Any, sink: _Sink | None) -> None:
        check = self._check
        pts = frame.pts
        # The keyframe must decode as intra (AV_PICTURE_TYPE_I == 1), or its flag lied.
        if pts == check["key_pts"] and not (frame.key_frame or int(frame.pict_type) == 1):
            raise _BadKeyframe(check["key"])
        index = check["wanted"].get(pts)
        if index is not None and sink is not None and index not in sink.filled:
            if frame.is_corrupt and check["key"] > 0:
                raise _BadKeyframe(check["key"])
            sink.put(index, frame)

    def _drain(self, sink: _Sink | None) -> None:
        """Flush the decoder: frames still in its reorder buffer may be wanted ones."""
        if self._check is None:
            return
        context = self._stream.codec_context
        try:
            for frame in context.decode(None):
                self._take(frame, sink)
        finally:
            context.flush_buffers()
            self._check = None

    def _read_sequential(self, unique: list[int], sink: _Sink) -> None:
        """Decode from the start, counting frames: exact by definition, used as fallback."""
        last = unique[-1]

        def keep(index: int, frame: Any) -> None:
            if index in sink.first:
                sink.put(index, frame)

        count = self._decode_all(keep, last)
        if last >= count:
            self._num_frames = count
            self._raise_out_of_range(last)

    def _decode_all(self, visit, stop: int | None = None) -> int:
        """Decode from the first packet; call ``visit(i, frame)``; return frames seen."""
        self._check = None
        self._reopen()
        context = self._stream.codec_context
        count = 0
        try:
            while True:
                packet = self._next_packet()
                for frame in context.decode(packet):
                    visit(count, frame)
                    count += 1
                    if stop is not None and count > stop:
                        return count
                if packet is None:
                    return count
        except _errors() as exc:
            raise self._fail(
                f"decoding failed after {count} frame(s): the file is damaged or truncated; "
                "re-copy or re-encode it",
                exc,
            ) from exc
        finally:
            self._demuxer = None
            self._lookahead = None
            context.flush_buffers()

    def _count_frames(self) -> int:
        if self._sequential:
            return self._decode_all(lambda i, frame: None)
        try:
            return self._verify_tail()
        except (_Inconsistent, _BadKeyframe, *_errors()):
            self._sequential = True
            return self._decode_all(lambda i, frame: None)

    def _verify_tail(self) -> int:
        """Decode the last GOP: every displayable packet from its keyframe on must show up.

        The count of displayable packets is then the frame count a full decode would give,
        at the cost of one GOP rather than the whole file.
        """
        m = len(self._key_packets) - 1
        while m > 0 and not self._trusted[m]:
            m -= 1
        start = self._key_packets[m]
        key_pts = self._pts[start]
        expected = {
            p
            for j, p in enumerate(self._pts)
            if j >= start and p >= key_pts and self._shown[j]  # type: ignore[operator]
        }
        seen: set[int] = set()
        self._drain(None)
        self._seek(m)
        context = self._stream.codec_context
        try:
            while True:
                packet = self._next_packet()
                for frame in context.decode(packet):
                    seen.add(frame.pts)
                if packet is None:
                    break
        finally:
            self._demuxer = None
            self._lookahead = None
            context.flush_buffers()
        if not expected <= seen:
            raise _Inconsistent
        return len(self._display)


def read_frames(
    path: str | os.PathLike[str], indices: Sequence[int] | np.ndarray, as_pil: bool = False
) -> np.ndarray | list[Image.Image]:
    """Exact frames ``indices`` of ``path`` (display order, from 0): see :class:`FrameReader`."""
    with FrameReader(path) as reader:
        return reader.read(indices, as_pil=as_pil)
