"""FrameReader: exact frames by display index on every codec/container where seeking is hard.

Every video here is encoded for the test with PyAV, and every frame carries its own index
as an 8-bit barcode, so a wrong frame is caught both bit for bit (against a full
sequential decode, the definition of "frame i") and by reading the barcode back.
"""

from __future__ import annotations

import pickle
import struct
from fractions import Fraction
from itertools import pairwise
from pathlib import Path

import av
import numpy as np
import pytest

from atriom.errors import VideoError
from atriom.reader import FrameReader, read_frames

W, H, BITS = 128, 64, 8
X264_CLOSED = {"crf": "12", "x264-params": "keyint=24:bframes=3:b-pyramid=normal:scenecut=0"}
X264_OPEN = {"crf": "12", "x264-params": "keyint=20:bframes=3:open-gop=1:scenecut=0"}


def _images(n: int, width: int = W, height: int = H):
    """Moving gradient plus noise (so P/B frames carry real residuals), barcode on top."""
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:height, 0:width]
    block = width // BITS
    for i in range(n):
        img = np.stack([xx * 2 + 3 * i, yy * 3 + i, xx + yy + 5 * i], -1) % 256
        img = (img // 2 + rng.integers(0, 16, img.shape)).astype(np.uint8)
        for bit in range(BITS):
            img[:16, bit * block : (bit + 1) * block] = 255 * ((i >> (BITS - 1 - bit)) & 1)
        yield img


def _barcode(frame: np.ndarray) -> int:
    block = frame.shape[1] // BITS
    value = 0
    for bit in range(BITS):
        value = (value << 1) | int(
            frame[4:12, bit * block + 4 : (bit + 1) * block - 4].mean() > 127
        )
    return value


def _encode(
    path: Path,
    codec: str,
    n: int,
    options: dict[str, str] | None = None,
    gop: int | None = None,
    b_frames: int | None = None,
    vfr: bool = False,
    fmt: str | None = None,
    size: tuple[int, int] = (W, H),
) -> Path:
    rng = np.random.default_rng(2)
    with av.open(str(path), mode="w", format=fmt) as container:
        stream = container.add_stream(codec, rate=30)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        if gop:
            stream.codec_context.gop_size = gop
        if b_frames is not None:
            stream.codec_context.max_b_frames = b_frames
        if options:
            stream.options = options
        if vfr:
            stream.codec_context.time_base = stream.time_base = Fraction(1, 1000)
        clock = 0
        for img in _images(n, *size):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            if vfr:  # irregular gaps of 15..89 ms
                frame.pts, frame.time_base = clock, Fraction(1, 1000)
                clock += int(rng.integers(15, 90))
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def _reference(path: Path) -> np.ndarray:
    """A full sequential decode: frame i is the i-th frame it yields."""
    with av.open(str(path)) as container:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    assert [_barcode(f) for f in frames] == list(range(len(frames))), "test video is broken"
    return frames


def _packets(path: Path) -> list[av.Packet]:
    with av.open(str(path)) as container:
        return [p for p in container.demux(video=0) if p.size]


VIDEOS = {
    "h264-bframes-closed-gop.mp4": dict(codec="libx264", n=80, options=X264_CLOSED),
    "h264-open-gop.mkv": dict(codec="libx264", n=70, options=X264_OPEN),
    "vp9.webm": dict(codec="libvpx-vp9", n=50, gop=16, options={"cpu-used": "8", "crf": "10"}),
    "vp9.mkv": dict(codec="libvpx-vp9", n=40, gop=12, options={"cpu-used": "8", "crf": "10"}),
    "mpeg4-bframes.avi": dict(codec="mpeg4", n=60, gop=12, b_frames=2, options={"qscale": "2"}),
    "h264-vfr.mp4": dict(codec="libx264", n=70, options=X264_CLOSED, vfr=True),
    "h264-vfr.mkv": dict(codec="libx264", n=50, options=X264_OPEN, vfr=True),
    # Big frames: a large request crosses SMALL_PAGES_FROM.
    "h264-320x240.mp4": dict(codec="libx264", n=30, options=X264_CLOSED, size=(320, 240)),
    # Raw Annex B H.264 has no timestamps at all: the reader must fall back to decoding.
    "h264-raw.h264": dict(codec="libx264", n=40, options=X264_CLOSED, fmt="h264"),
}


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, tuple[Path, np.ndarray]]:
    root = tmp_path_factory.mktemp("videos")
    made = {}
    for name, spec in VIDEOS.items():
        path = _encode(root / name, **spec)
        made[name] = (path, _reference(path))
    return made


@pytest.mark.parametrize("name", list(VIDEOS))
def test_exact_frames_in_asked_order_with_duplicates(videos, name):
    path, ref = videos[name]
    n = len(ref)
    rng = np.random.default_rng(7)
    asked = [n - 1, 0, *rng.integers(0, n, 30).tolist(), 5, 5, n // 2, 1]
    with FrameReader(path) as reader:
        assert reader.num_frames == n
        out = reader.read(asked)
        assert out.shape == (len(asked), *ref.shape[1:]) and out.dtype == np.uint8
        assert [_barcode(f) for f in out] == asked
        np.testing.assert_array_equal(out, ref[asked])
        # A second request on the same reader (decoder state carried over) and every frame.
        np.testing.assert_array_equal(reader.read(range(n)), ref)
        np.testing.assert_array_equal(reader.read(range(n - 1, -1, -3)), ref[n - 1 :: -3])
        # Every file with timestamps is served by seeking, not by the sequential fallback.
        assert reader.indexed == (name != "h264-raw.h264")


def test_sparse_sorted_requests_in_every_gop(videos):
    """One frame just after each keyframe and one just before the next: seek-heavy plans."""
    path, ref = videos["h264-open-gop.mkv"]
    with FrameReader(path) as reader:
        keys = list(reader.keyframes)
        asked = sorted({k + d for k in keys for d in (-2, -1, 0, 1) if 0 <= k + d < len(ref)})
        np.testing.assert_array_equal(reader.read(asked), ref[asked])
        assert reader.indexed


def test_the_hard_cases_are_really_in_the_videos(videos):
    """Guard the test data: B-frame reordering, open GOPs and irregular timestamps exist."""
    closed = _packets(videos["h264-bframes-closed-gop.mp4"][0])
    assert any(p.pts < q.pts for q, p in pairwise(closed))  # reordered
    assert sum(p.is_keyframe for p in closed) >= 3

    opened = _packets(videos["h264-open-gop.mkv"][0])
    leading = [
        j
        for j, p in enumerate(opened)
        if j and any(q.is_keyframe and q.pts > p.pts for q in opened[:j] if q is not opened[0])
    ]
    assert leading, "no open-GOP leading frames (decoded after a keyframe, shown before it)"

    for name in ("h264-vfr.mp4", "h264-vfr.mkv"):
        pts = sorted(p.pts for p in _packets(videos[name][0]))
        assert len(set(np.diff(pts).tolist())) > 5, f"{name} is not variable frame rate"

    avi = _packets(videos["mpeg4-bframes.avi"][0])
    assert any(p.pts < q.pts for q, p in pairwise(avi))


def test_plan_seeks_in_short_gops_and_walks_in_long_ones(videos, tmp_path):
    short = _encode(tmp_path / "short.mp4", "mpeg4", 96, gop=12, options={"qscale": "4"})
    with FrameReader(short) as reader:
        keys = reader.keyframes
        assert len(keys) >= 8
        sparse = [k + 1 for k in keys[1:8]]  # one frame in each of several GOPs
        plan = reader.plan(sparse)
        assert [start for start, _ in plan] == list(keys[1:8])  # a seek per GOP
        assert sum(count for _, count in plan) == 2 * len(sparse)  # keyframe + the frame
        # Dense request: one walk from the start, nothing decoded twice.
        assert reader.plan(range(0, 96, 2)) == [(0, 95)]
    path, ref = videos["h264-bframes-closed-gop.mp4"]
    with FrameReader(path) as reader:
        assert len(reader.keyframes) >= 3
        within_gop = [3, 9, 15]
        ((start, decoded),) = reader.plan(within_gop)
        assert start == 0
        assert decoded < 16  # disposable B-frames that nobody asked for are not decoded
        np.testing.assert_array_equal(reader.read(within_gop), ref[within_gop])


@pytest.mark.parametrize("b_frames", [0, 2])
def test_lying_keyframe_flags_do_not_give_wrong_frames(tmp_path, b_frames):
    """An MP4 without its sync-sample table: every frame claims to be a keyframe.

    Seeking to such a "keyframe" decodes a P- or B-frame without its references. The reader
    must notice (the frame does not decode as intra, or keyframes are out of display order)
    and still return exact frames.
    """
    path = _encode(
        tmp_path / "ok.mp4", "mpeg4", 60, gop=12, b_frames=b_frames, options={"qscale": "2"}
    )
    ref = _reference(path)
    data = path.read_bytes()
    assert data.count(b"stss") == 1
    liar = tmp_path / "liar.mp4"
    liar.write_bytes(data.replace(b"stss", b"free"))  # the box is skipped as padding
    assert all(p.is_keyframe for p in _packets(liar))
    asked = [37, 5, 22, 59, 0, 11, 37, 49]
    with FrameReader(liar) as reader:
        np.testing.assert_array_equal(reader.read(asked), ref[asked])
        np.testing.assert_array_equal(reader.read([30, 31, 2]), ref[[30, 31, 2]])
        assert reader.num_frames == len(ref)


def test_frame_count_comes_from_decoding_when_the_header_is_wrong(videos, tmp_path):
    path, ref = videos["mpeg4-bframes.avi"]
    data = bytearray(path.read_bytes())
    struct.pack_into("<I", data, data.index(b"avih") + 8 + 16, 999)  # dwTotalFrames
    struct.pack_into("<I", data, data.index(b"strh") + 8 + 32, 999)  # dwLength
    patched = tmp_path / "lies.avi"
    patched.write_bytes(bytes(data))
    with av.open(str(patched)) as container:
        assert container.streams.video[0].frames == 999  # the header really lies
    with FrameReader(patched) as reader:
        assert reader.header_frames == 999
        assert reader.num_frames == len(ref)
        np.testing.assert_array_equal(reader.read([len(ref) - 1]), ref[-1:])
        with pytest.raises(VideoError, match=f"has {len(ref)} frames"):
            reader.read([len(ref)])

    mkv = videos["h264-open-gop.mkv"][0]  # Matroska has no frame count at all
    with FrameReader(mkv) as reader:
        assert reader.header_frames == 0
        assert reader.num_frames == len(videos["h264-open-gop.mkv"][1])


@pytest.mark.parametrize("name", ["h264-bframes-closed-gop.mp4", "h264-raw.h264"])
def test_bad_indices_are_typed_errors(videos, name):
    path, ref = videos[name]
    n = len(ref)
    with FrameReader(path) as reader:
        with pytest.raises(
            VideoError, match=rf"{path.name}.*index {n} is out of range.*{n} frames"
        ):
            reader.read([0, n])
        with pytest.raises(VideoError, match=rf"{path.name}.*negative frame index -1"):
            reader.read([3, -1])
        with pytest.raises(VideoError, match="integers"):
            reader.read([1.5])
        # The reader stays usable after refusing a request.
        np.testing.assert_array_equal(reader.read([n - 1]), ref[-1:])
        assert reader.read([]).shape == (0, *ref.shape[1:])


def test_unreadable_files_are_typed_errors(videos, tmp_path):
    good = videos["h264-bframes-closed-gop.mp4"][0]
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video, just text with a video's name\n" * 20)
    truncated = tmp_path / "truncated.mp4"  # moov atom (the index) is at the end: cut off
    truncated.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    cases = [
        (tmp_path / "missing.mp4", "no such file"),
        (empty, "empty"),
        (text, "not a readable video"),
        (truncated, "not a readable video"),
        (tmp_path, "not a file"),
    ]
    for path, message in cases:
        with pytest.raises(VideoError, match=message) as info:
            FrameReader(path)
        assert str(path) in str(info.value)
        with pytest.raises(VideoError, match=message):
            read_frames(path, [0])


def test_truncated_file_with_index_up_front(tmp_path):
    """faststart MP4 cut short: the index promises frames whose data is gone."""
    path = tmp_path / "faststart.mp4"
    with av.open(str(path), mode="w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=30)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        stream.options = X264_CLOSED
        for img in _images(60):
            for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[: int(path.stat().st_size * 0.6)])
    ref = _reference(path)
    with FrameReader(cut) as reader:
        np.testing.assert_array_equal(reader.read([0, 2]), ref[[0, 2]])  # what is there
        with pytest.raises(VideoError, match=r"cut\.mp4.*(damaged|truncated)"):
            reader.read([59])


def test_pil_output_and_convenience_function(videos):
    path, ref = videos["vp9.webm"]
    images = read_frames(path, [4, 1, 4], as_pil=True)
    assert [im.size for im in images] == [(W, H)] * 3
    np.testing.assert_array_equal(np.stack([np.asarray(im) for im in images]), ref[[4, 1, 4]])
    np.testing.assert_array_equal(read_frames(path, np.array([2, 3])), ref[[2, 3]])


def test_large_requests_and_decoder_threads(videos, monkeypatch):
    """Past SMALL_PAGES_FROM the output is a separate mapping; FFmpeg slice threads or not."""
    path, ref = videos["h264-320x240.mp4"]
    asked = list(range(len(ref))) * 5 + [7]  # 151 frames of 320x240: 35 MB
    monkeypatch.setattr("atriom.reader.SMALL_PAGES_FROM", 16 << 20)
    with (
        FrameReader(path, decoder_threads=0) as threaded,
        FrameReader(path, decoder_threads=1) as single,
    ):
        big = threaded.read(asked)
        assert big.nbytes >= 16 << 20 and big.flags.writeable and big.flags.c_contiguous
        np.testing.assert_array_equal(big, ref[asked])
        big[0] = 0  # the caller owns it
        np.testing.assert_array_equal(single.read(asked[:40]), ref[asked[:40]])


class _ThreadsSeen:
    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int) -> int:
        from atriom.reader import _auto_threads

        return _auto_threads()


def test_default_decoder_threads_are_one_inside_dataloader_workers():
    """Workers share the cores: their readers decode on one thread; the main process on all."""
    import torch

    from atriom.reader import _auto_threads

    assert _auto_threads() == 0
    loader = torch.utils.data.DataLoader(_ThreadsSeen(), batch_size=None, num_workers=1)
    assert [int(x) for x in loader] == [1, 1]


def test_reader_pickles_by_reopening(videos):
    """DataLoader workers receive Datasets by pickle: a reader must survive the trip."""
    path, ref = videos["h264-open-gop.mkv"]
    with FrameReader(path) as reader:
        reader.read([3])
        clone = pickle.loads(pickle.dumps(reader))
    with clone:
        np.testing.assert_array_equal(clone.read([9, 2]), ref[[9, 2]])


def test_closed_reader_refuses_politely(videos):
    path, _ = videos["vp9.mkv"]
    reader = FrameReader(path)
    reader.close()
    with pytest.raises(VideoError, match="closed"):
        reader.read([0])
