"""Label-preserving clip transforms and test-time augmentation (atriom.conduit.transforms)."""

import pytest
import torch

from atriom.conduit.transforms import (
    TRANSFORMS,
    apply,
    check_names,
    combinations,
    tta_logits,
)
from atriom.errors import ConfigError


def _clip(batch: int = 2, frames: int = 3, size: int = 4) -> torch.Tensor:
    n = batch * frames * 3 * size * size
    return torch.arange(n, dtype=torch.float32).reshape(batch, frames, 3, size, size)


def test_each_transform_moves_pixels_exactly():
    clip = _clip()
    b, t, c, y, x = 1, 2, 1, 0, 3
    assert TRANSFORMS["hflip"](clip)[b, t, c, y, x] == clip[b, t, c, y, 3 - x]
    assert TRANSFORMS["vflip"](clip)[b, t, c, y, x] == clip[b, t, c, 3 - y, x]
    assert TRANSFORMS["transpose"](clip)[b, t, c, y, x] == clip[b, t, c, x, y]
    assert TRANSFORMS["reverse"](clip)[b, t, c, y, x] == clip[b, 2 - t, c, y, x]
    # A single clip (T, C, H, W) reverses along its own time axis too.
    assert torch.equal(TRANSFORMS["reverse"](clip[0]), clip[0].flip(0))


@pytest.mark.parametrize("name", sorted(TRANSFORMS))
def test_transforms_are_involutions_that_change_the_clip(name):
    clip = _clip()
    once = TRANSFORMS[name](clip)
    assert not torch.equal(once, clip)
    assert torch.equal(TRANSFORMS[name](once), clip)


def test_flips_and_transpose_span_the_eight_symmetries_of_a_square():
    clip = _clip(batch=1, frames=1)
    views = {
        tuple(apply(clip, combo).flatten().tolist())
        for combo in combinations(["hflip", "vflip", "transpose"])
    }
    assert len(views) == 8
    rotated = torch.rot90(clip, 1, dims=(-2, -1))
    assert tuple(rotated.flatten().tolist()) in views


def test_combinations_are_every_subset_identity_first():
    combos = combinations(["hflip", "reverse"])
    assert combos == [(), ("hflip",), ("reverse",), ("hflip", "reverse")]
    assert len(combinations(sorted(TRANSFORMS))) == 2 ** len(TRANSFORMS)
    assert combinations([]) == [()]


class _Linear(torch.nn.Module):
    """Logits = a fixed linear map of the flattened clip (sensitive to every transform)."""

    def __init__(self, features: int, classes: int = 3):
        super().__init__()
        self.weight = torch.randn(classes, features, generator=torch.Generator().manual_seed(0))

    def forward(self, pixel_values):
        from types import SimpleNamespace

        return SimpleNamespace(logits=pixel_values.flatten(1) @ self.weight.T)


def test_tta_logits_average_every_view():
    clip = _clip()
    model = _Linear(clip[0].numel())
    names = ["hflip", "transpose", "reverse"]
    expected = torch.stack(
        [model(apply(clip, combo)).logits for combo in combinations(names)]
    ).mean(0)
    assert torch.allclose(tta_logits(model, clip, names), expected)
    assert torch.equal(tta_logits(model, clip, []), model(clip).logits)
    assert not torch.allclose(tta_logits(model, clip, names), model(clip).logits)


def test_unknown_or_repeated_transform_names_the_key():
    assert check_names(["hflip", "reverse"], "conduit.augment.test_time") == ["hflip", "reverse"]
    with pytest.raises(ConfigError, match=r"conduit\.augment\.test_time.*'rotate'"):
        check_names(["hflip", "rotate"], "conduit.augment.test_time")
    with pytest.raises(ConfigError, match="twice"):
        check_names(["hflip", "hflip"], "conduit.augment.test_time")
