"""The built-in pretrained base: the shipped files, and the script that makes them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from atriom.models import builtin_model_path

MAX_BYTES = 5 * 1024 * 1024


def _load_and_forward(path: Path, num_labels: int = 5):
    import torch
    from transformers import VideoMAEForVideoClassification

    model = VideoMAEForVideoClassification.from_pretrained(
        path, num_labels=num_labels, ignore_mismatched_sizes=True
    )
    config = model.config
    pixels = torch.zeros(
        2, config.num_frames, config.num_channels, config.image_size, config.image_size
    )
    with torch.no_grad():
        logits = model(pixel_values=pixels).logits
    assert logits.shape == (2, num_labels)
    assert torch.isfinite(logits).all()
    return model


def test_builtin_model_ships_loadable_small_and_documented():
    path = builtin_model_path()
    assert path == builtin_model_path("tiny_videomae")
    for name in (
        "config.json",
        "model.safetensors",
        "preprocessor_config.json",
        "provenance.json",
        "README.md",
    ):
        assert (path / name).is_file(), name
    total = sum(p.stat().st_size for p in path.iterdir() if p.is_file())
    assert total <= MAX_BYTES, f"{path} holds {total} bytes; the package ships it"

    model = _load_and_forward(path)
    assert model.config.use_mean_pooling
    leaves = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    assert {"query", "value"} <= leaves  # what LoRA adapts

    processor = json.loads((path / "preprocessor_config.json").read_text())
    assert len(processor["image_mean"]) == len(processor["image_std"]) == 3

    provenance = json.loads((path / "provenance.json").read_text())
    assert isinstance(provenance["seed"], int)
    assert "atriom.models.pretrain" in provenance["command"]
    assert f"--seed {provenance['seed']}" in provenance["command"]
    assert provenance["licence"] == "Apache-2.0"
    assert provenance["final"]["val"]["accuracy"] > 0.5


def test_builtin_model_path_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown built-in model"):
        builtin_model_path("no_such_model")


@pytest.mark.slow
def test_pretrain_quick_run_saves_a_loadable_base(tmp_path):
    out = tmp_path / "base"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "atriom.models.pretrain",
            "--quick",
            "--seed",
            "3",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("config.json", "model.safetensors", "preprocessor_config.json", "provenance.json"):
        assert (out / name).is_file(), name
    _load_and_forward(out)
    provenance = json.loads((out / "provenance.json").read_text())
    assert provenance["seed"] == 3 and provenance["epochs"] == 1
    assert "--quick" in provenance["command"]
    # The pretext head is not shipped: the downstream head is always fresh.
    from safetensors import safe_open

    with safe_open(out / "model.safetensors", "pt") as weights:
        assert not [k for k in weights.keys() if k.startswith("classifier")]  # noqa: SIM118


@pytest.mark.slow
def test_arch_option_changes_the_saved_base_not_the_module_default(tmp_path):
    from atriom.models import pretrain

    before = dict(pretrain.ARCHITECTURE)
    out = tmp_path / "small"
    arch = '{"hidden_size": 64, "intermediate_size": 128, "num_attention_heads": 2}'
    assert pretrain.main(["--quick", "--seed", "1", "--arch", arch, "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert (config["hidden_size"], config["intermediate_size"]) == (64, 128)
    assert json.loads((out / "provenance.json").read_text())["architecture"]["hidden_size"] == 64
    assert before == pretrain.ARCHITECTURE  # a second run in this process gets the default
    _load_and_forward(out)
