"""The on-the-fly ClipDataset: shapes, dtypes, sampling, augmentation, views, cache."""

import numpy as np
import pytest
import torch

from atriom.conduit.dataset import ClipDataset, FrameCache
from atriom.conduit.sampling import eval_views, train_indices
from atriom.conduit.splits import group_key, split_clips
from atriom.errors import DataError
from atriom.reader import read_frames
from atriom.video import write_video

PREP = {"image_size": 32, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.25, 0.25, 0.25]}
SAMPLER = {
    "num_frames": 4,
    "stride": 2,
    "train": "random_segment",
    "eval": "centred",
    "eval_clips": 1,
}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds")
    for i in range(3):
        # Frame t has brightness 10 * t: indices can be read back from the pixels.
        write_video(
            root / f"v{i}.mp4",
            [np.full((48, 48, 3), 10 * t, np.uint8) for t in range(20)],
            fps=10,
            crf=0,
        )
    return root


def _rows(sampler=SAMPLER, split="test"):
    rows = []
    for i in range(3):
        first, end = (4, 16) if i == 2 else (0, 20)
        views = [[first + j for j in v] for v in eval_views(end - first, sampler)]
        rows.append(
            {
                "id": i,
                "split": split,
                "path": f"v{i}.mp4",
                "sha256": f"{i:064d}",
                "label_id": i % 2,
                "video_frames": 20,
                "first_frame": first,
                "end_frame": end,
                "views": views,
            }
        )
    return rows


def _index(sampler=SAMPLER, **extra):
    return {
        "sampler": sampler,
        "samples": _rows(sampler, "train") + _rows(sampler, "test"),
        **extra,
    }


def test_eval_items_shapes_dtypes_and_normalisation(clips):
    ds = ClipDataset.from_index(_index(), "test", clips, PREP, seed=0)
    item = ds[0]
    assert (
        item["pixel_values"].shape == (4, 3, 32, 32) and item["pixel_values"].dtype == torch.float32
    )
    assert item["labels"].dtype == torch.int64 and int(item["sample"]) == 0
    # The centred view of 20 frames is 6, 8, 10, 12, normalised with mean .5 and std .25.
    assert ds.frame_indices(0) == [6, 8, 10, 12]
    decoded = torch.from_numpy(read_frames(clips / "v0.mp4", [6, 8, 10, 12])).float() / 255.0
    expected = (decoded.mean(dim=(1, 2, 3)) - 0.5) / 0.25
    assert torch.allclose(item["pixel_values"].mean(dim=(1, 2, 3)), expected, atol=1e-3)
    assert (expected.diff() > 0.2).all()  # brightness grows with the index: the right frames


def test_train_items_stay_inside_segment_bounds_and_repeat_per_seed(clips):
    ds = ClipDataset.from_index(_index(), "train", clips, PREP, seed=3)
    draws = {tuple(ds.frame_indices(2)) for ds.epoch in range(30)}
    assert all(4 <= f < 16 for draw in draws for f in draw) and len(draws) > 1
    again = ClipDataset.from_index(_index(), "train", clips, PREP, seed=3)
    again.set_epoch(5)
    ds.set_epoch(5)
    assert ds.frame_indices(0) == again.frame_indices(0)
    assert torch.equal(ds[0]["pixel_values"], again[0]["pixel_values"])


def _train_row(frames: int, view: list[int]) -> dict:
    """A clip-index row for ``v0.mp4`` (``frames`` long, one evaluation view)."""
    return {
        "id": 0,
        "split": "train",
        "path": "v0.mp4",
        "sha256": "0" * 64,
        "label_id": 0,
        "video_frames": frames,
        "first_frame": 0,
        "end_frame": frames,
        "views": [view],
    }


def test_augmentation_flips_and_jitters_training_clips_only(tmp_path):
    frame = np.zeros((32, 32, 3), np.uint8)
    frame[:, :8] = 200  # bright stripe on the left
    write_video(tmp_path / "v0.mp4", [frame] * 6, fps=5, crf=0)
    row = _train_row(frames=6, view=[0, 1])
    sampler = {**SAMPLER, "num_frames": 2, "stride": 1}
    flipped = ClipDataset(
        [row],
        tmp_path,
        sampler=sampler,
        train=True,
        augment={"hflip": 1.0, "brightness": 0.0},
        **_prep(),
    )
    plain = ClipDataset(
        [row], tmp_path, sampler=sampler, train=False, augment={"hflip": 1.0}, **_prep()
    )
    left = lambda x: x["pixel_values"][..., :8].mean().item()  # noqa: E731
    assert left(flipped[0]) < left(plain[0])


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("vflip", lambda v: v.flip(-2)),
        ("transpose", lambda v: v.transpose(-1, -2)),
        ("reverse", lambda v: v.flip(0)),
        ("hflip", lambda v: v.flip(-1)),
    ],
)
def test_each_augmentation_transforms_the_training_clip(tmp_path, name, expected):
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(4)]
    write_video(tmp_path / "v0.mp4", frames, fps=5, crf=0)
    row = _train_row(frames=4, view=[0, 1, 2, 3])
    sampler = {**SAMPLER, "num_frames": 4, "stride": 1}
    off = {"hflip": 0.0, "vflip": 0.0, "transpose": 0.0, "reverse": 0.0, "brightness": 0.0}
    always = ClipDataset(
        [row], tmp_path, sampler=sampler, train=True, augment={**off, name: 1.0}, **_prep()
    )
    never = ClipDataset([row], tmp_path, sampler=sampler, train=True, augment=off, **_prep())
    plain = never[0]["pixel_values"]
    assert torch.equal(always[0]["pixel_values"], expected(plain).contiguous())
    assert not torch.equal(always[0]["pixel_values"], plain)


def _prep():
    return {"image_size": 32, "mean": [0.5] * 3, "std": [0.5] * 3}


def test_multi_clip_views_expand_evaluation_items(clips):
    sampler = {**SAMPLER, "eval": "multi_clip", "eval_clips": 3}
    ds = ClipDataset.from_index(_index(sampler), "test", clips, PREP, seed=0)
    assert len(ds) == 9
    assert [int(ds[i]["sample"]) for i in range(9)] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert ds.frame_indices(0) != ds.frame_indices(1)


def test_frame_cache_round_trip_and_keying(clips, tmp_path):
    cache = FrameCache(tmp_path / "cache")
    frames = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    cache.put("ab" * 32, [1, 2], frames)
    assert np.array_equal(cache.get("ab" * 32, [1, 2]), frames)
    assert cache.get("ab" * 32, [1, 3]) is None and cache.get("cd" * 32, [1, 2]) is None
    index = _index(frame_cache={"enabled": True, "dir": "cache"})
    ds = ClipDataset.from_index(index, "test", clips, PREP, seed=0)
    first = ds[0]["pixel_values"]
    assert len(list((clips / "cache").rglob("*.npy"))) == 1
    assert torch.equal(ds[0]["pixel_values"], first)


def test_uniform_sampler_ignores_the_rng():
    sampler = {**SAMPLER, "train": "uniform"}
    a = train_indices(20, sampler, np.random.default_rng(0))
    assert a == train_indices(20, sampler, np.random.default_rng(1)) == [2, 7, 12, 17]


def test_group_by_keeps_a_group_in_one_split():
    clips = [
        {
            "id": f"v{v}#{s}",
            "path": f"v{v}.mp4",
            "label": "ab"[v % 2],
            "meta": {"source": f"rec{v // 4}"},
        }
        for v in range(80)
        for s in range(3)
    ]
    fractions = {"train": 0.6, "val": 0.2, "test": 0.2}
    by_path = split_clips(clips, "s", fractions, "path")
    by_source = split_clips(clips, "s", fractions, "meta.source")
    for splits, key in ((by_path, "path"), (by_source, "meta.source")):
        owner = {}
        for split, members in splits.items():
            for clip in members:
                assert owner.setdefault(group_key(clip, key), split) == split
    with pytest.raises(DataError, match=r"group_by='meta\.nope'"):
        split_clips(clips, "s", fractions, "meta.nope")
