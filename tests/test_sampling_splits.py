import numpy as np
import pytest

from atriom.conduit import sampling
from atriom.conduit.splits import SPLITS, assign, split_clips
from atriom.errors import DataError

FRACTIONS = {"train": 0.7, "val": 0.15, "test": 0.15}


def test_centred_segment():
    assert sampling.centred(16, 8, 2) == [0, 2, 4, 6, 8, 10, 12, 14]
    assert sampling.centred(20, 4, 2) == [6, 8, 10, 12]
    assert sampling.centred(5, 4, 2) == [0, 2, 4, 4]  # short video: last frame repeats


def test_uniform_spreads_over_the_video():
    assert sampling.uniform(100, 4) == [12, 37, 62, 87]
    assert sampling.uniform(3, 5) == [0, 0, 1, 2, 2]


def test_random_segment_is_seeded_and_in_range():
    a = sampling.random_segment(30, 8, 2, np.random.default_rng(0))
    b = sampling.random_segment(30, 8, 2, np.random.default_rng(0))
    assert a == b
    starts = {sampling.random_segment(30, 8, 2, np.random.default_rng(s))[0] for s in range(200)}
    assert starts == set(range(0, 30 - 15 + 1))


def test_multi_clip_covers_start_to_end():
    clips = sampling.multi_clip(40, 4, 2, 3)
    assert [c[0] for c in clips] == [0, 16, 33]
    assert clips[-1][-1] == 39


@pytest.mark.parametrize("bad", [(0, 4, 1), (10, 0, 1), (10, 4, 0)])
def test_sampling_rejects_nonsense(bad):
    with pytest.raises(ValueError):
        sampling.centred(*bad)


def _clips(per_class, classes=("a", "b", "c")):
    return [
        {"path": f"videos/{c}/{c}_{i:04d}.mp4", "label": c}
        for c in classes
        for i in range(per_class)
    ]


def test_split_is_deterministic_and_roughly_proportional():
    clips = _clips(400)
    a = split_clips(clips, "s", FRACTIONS)
    b = split_clips(list(reversed(clips)), "s", FRACTIONS)
    assert {k: sorted(c["path"] for c in v) for k, v in a.items()} == {
        k: sorted(c["path"] for c in v) for k, v in b.items()
    }
    for split, fraction in FRACTIONS.items():
        for label in "abc":
            share = sum(c["label"] == label for c in a[split]) / 400
            assert share == pytest.approx(fraction, abs=0.06)


def test_adding_files_never_moves_other_files():
    before = {c["path"]: assign("s", c["path"], FRACTIONS) for c in _clips(50)}
    after_clips = _clips(80) + _clips(5, classes=("d",))
    after = {c["path"]: assign("s", c["path"], FRACTIONS) for c in after_clips}
    assert all(after[path] == split for path, split in before.items())


def test_salt_draws_another_split():
    clips = _clips(50)
    a = split_clips(clips, "one", FRACTIONS)
    b = split_clips(clips, "two", FRACTIONS)
    assert a["test"] != b["test"]


def test_empty_class_in_a_split_is_a_clear_error():
    with pytest.raises(DataError, match=r"(train|val|test)/[abc]"):
        split_clips(_clips(2), "s", FRACTIONS)
    assert set(SPLITS) == {"train", "val", "test"}
