import numpy as np
import pytest

from atriom.errors import VideoError
from atriom.io import sha256_file
from atriom.reader import read_frames
from atriom.reservoir.synthetic import PATTERNS, SyntheticVideos
from atriom.video import probe, write_video


def _numbered_clip(n=20, size=32):
    """Frames whose brightness encodes their own index."""
    return [np.full((size, size, 3), 10 * i, dtype=np.uint8) for i in range(n)]


@pytest.fixture(scope="module")
def numbered(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("v") / "n.mp4", _numbered_clip(), fps=10, crf=0)


def _index_of(frame):
    return round(float(frame.mean()) / 10)


def test_probe_counts_frames_and_reads_header(numbered):
    info = probe(numbered)
    assert (info.codec, info.frames, info.width, info.height) == ("h264", 20, 32, 32)
    assert info.fps == pytest.approx(10.0)
    assert info.duration == pytest.approx(2.0)


def test_read_frames_exact_in_requested_order_with_duplicates(numbered):
    frames = read_frames(numbered, [7, 0, 19, 7])
    assert frames.shape == (4, 32, 32, 3) and frames.dtype == np.uint8
    assert [_index_of(f) for f in frames] == [7, 0, 19, 7]


@pytest.mark.parametrize(("indices", "message"), [([-1], "negative"), ([20], "out of range")])
def test_bad_indices_are_typed_errors(numbered, indices, message):
    assert read_frames(numbered, []).shape[0] == 0  # nothing asked, nothing decoded
    with pytest.raises(VideoError, match=message):
        read_frames(numbered, indices)


def test_unreadable_files_are_typed_errors(tmp_path, numbered):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "text.mp4"
    text.write_text("not a video at all")
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(numbered.read_bytes()[:300])
    for path, message in [
        (empty, "empty"),
        (text, "not a readable video"),
        (tmp_path / "missing.mp4", "no such file"),
    ]:
        with pytest.raises(VideoError, match=message):
            probe(path)
    with pytest.raises(VideoError):
        probe(truncated)


def test_synthetic_clips_are_deterministic_and_real_h264(tmp_path):
    source = SyntheticVideos(
        classes=["linear", "circular"], clips_per_class=2, num_frames=8, size=32, fps=8
    )
    a = source.collect(tmp_path / "a", seed=3)
    b = source.collect(tmp_path / "b", seed=3)
    c = source.collect(tmp_path / "c", seed=4)
    assert [sha256_file(x.path) for x in a] == [sha256_file(x.path) for x in b]
    assert [sha256_file(x.path) for x in a] != [sha256_file(x.path) for x in c]
    assert {x.label for x in a} == {"linear", "circular"}
    assert probe(a[0].path).codec == "h264" and probe(a[0].path).frames == 8
    assert 0.0 <= a[0].meta["difficulty"] <= 1.0


def test_more_clips_leave_existing_clips_unchanged(tmp_path):
    few = SyntheticVideos(
        classes=["linear", "jitter"], clips_per_class=1, num_frames=6, size=32, fps=8
    )
    more = SyntheticVideos(
        classes=["linear", "jitter"], clips_per_class=3, num_frames=6, size=32, fps=8
    )
    a = {x.path.name: sha256_file(x.path) for x in few.collect(tmp_path / "a", seed=0)}
    b = {x.path.name: sha256_file(x.path) for x in more.collect(tmp_path / "b", seed=0)}
    assert all(b[name] == digest for name, digest in a.items())


@pytest.mark.parametrize("pattern", sorted(PATTERNS))
def test_trajectories_stay_inside_the_frame(pattern):
    rng = np.random.default_rng(0)
    for _ in range(50):
        path = PATTERNS[pattern](rng, 16, 64, 3.5, 9)
        assert path.shape == (16, 2)
        assert path.min() >= 0 and path.max() <= 63


def test_one_frame_does_not_reveal_the_class():
    """Positions of a single frame are spread over the canvas for every class."""
    rng = np.random.default_rng(1)
    for pattern in PATTERNS.values():
        starts = np.array([pattern(rng, 16, 64, 2.5, 7)[0] for _ in range(200)])
        assert starts.std(axis=0).min() > 8


def test_unknown_class_is_a_config_error():
    from atriom.errors import ConfigError

    with pytest.raises(ConfigError, match="bogus"):
        SyntheticVideos(
            classes=["linear", "bogus"], clips_per_class=1, num_frames=4, size=32, fps=8
        )
